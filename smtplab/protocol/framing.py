"""Line framing: command lines and message content, byte-exact (RFC 5321 2.3.8, 4.1.1.4, 4.5.2).

Theory of operation
-------------------
SMTP lines end with CRLF and nothing else: "a bare CR or LF is never a line end" (2.3.8,
4.1.1.4). The end of message data is ``<CRLF>.<CRLF>`` and nothing else; treating ``<LF>.<LF>``
or ``<LF>.<CRLF>`` as the end is what made the 2023 "SMTP smuggling" attacks work
(CVE-2023-51764, CVE-2023-51765, CVE-2023-51766). What a server does with a bare CR or LF is the
:class:`LineEndings` setting:

* ``reject`` (default): in a command, a bare LF ends the (bad) line, which is answered
  ``500 5.5.2`` and not executed; a bare CR spoils the line it is in. In data, the message
  is read to its real end and then rejected with ``554 5.6.0``. The session goes on.
* ``normalize``: a bare CR or LF counts as CRLF for commands and inside message lines, but
  it never ends the data: only a real ``<CRLF>.<CRLF>`` does, and only lines that follow a
  real CRLF lose a leading transparency dot.
* ``keep``: a bare CR or LF is ordinary content.

Limits (4.5.3.1): a command line is at most ``max_command_line`` octets with its CRLF (512),
a text line at most ``max_text_line`` (1000, not counting a transparency dot). An overlong
line is discarded as it arrives, so memory stays bounded whatever the peer sends.

Both readers take bytes from a shared :class:`InputBuffer` and leave what they do not use in
it, so a server can switch from commands to data (or to TLS) at an exact byte.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import NamedTuple


class LineEndings(Enum):
    """How a server treats a bare CR or LF (one not part of CRLF)."""

    REJECT = "reject"
    NORMALIZE = "normalize"
    KEEP = "keep"


class Problem(Enum):
    """Why a line cannot be used as it is."""

    TOO_LONG = "too long"
    BARE_LF = "bare LF"
    BARE_CR = "bare CR"
    TOO_LARGE = "message too large"
    BAD_UTF8 = "invalid UTF-8"


class InputBuffer:
    """Received bytes not yet consumed, plus whether the peer has closed its side."""

    __slots__ = ("data", "eof")

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False

    def feed(self, data: bytes) -> None:
        if data:
            self.data += data
        else:
            self.eof = True

    def take_all(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


class CommandLine(NamedTuple):
    """One command line without its line end, and the problem with it, if any.

    A named tuple: one is made per command, and a tuple is built several times faster than a
    frozen dataclass."""

    content: bytes
    problem: Problem | None = None


class CommandLineReader:
    """Cuts command lines out of an :class:`InputBuffer`.

    Linear in what it reads: each call searches only bytes no earlier search has looked at
    (``_scan``), and for the one byte sequence that can end a line under the setting (CRLF or
    a bare LF in ``reject``; CRLF in ``keep``; any CR or LF in ``normalize``), so a stream of
    bare CRs or LFs costs what a stream of letters costs."""

    def __init__(self, max_length: int, endings: LineEndings) -> None:
        self.max_length = max_length
        self.endings = endings
        self._scan = 0  # bytes at the start of the buffer already searched: no line end there
        self._discarding = False  # inside an overlong line whose start was thrown away

    def next_line(self, buf: InputBuffer) -> CommandLine | None:
        data = buf.data
        if not data:
            return None  # nothing to read (an empty buffer holds no line, even at EOF)
        endings = self.endings
        problem = None
        if endings is LineEndings.REJECT:
            # Every line ends at an LF: a CRLF's, or a bare one, which spoils the line.
            end = data.find(b"\n", self._scan)
            if end < 0:
                return self._overflow(buf)
            if end and data[end - 1] == 0x0D:
                end, terminator = end - 1, 2
            else:
                terminator, problem = 1, Problem.BARE_LF
        elif endings is LineEndings.KEEP:
            end, terminator = data.find(b"\r\n", self._scan), 2  # bare CR and LF are content
            if end < 0:
                return self._overflow(buf)
        else:  # normalize: any CR or LF ends a line, CRLF counting as one line end
            end = find_line_break(data, self._scan)
            if end < 0 or (end + 1 == len(data) and data[end] == 0x0D):
                return self._overflow(buf)  # (a CR at the end may be half of a CRLF)
            terminator = 2 if data[end] == 0x0D and data[end + 1] == 0x0A else 1
        too_long = self._discarding or end + 2 > self.max_length
        content = bytes(data[: min(end, 80) if too_long else end])
        del data[: end + terminator]
        self._scan = 0
        self._discarding = False
        if too_long:
            return CommandLine(content, Problem.TOO_LONG)
        if problem is None and endings is LineEndings.REJECT and b"\r" in content:
            problem = Problem.BARE_CR
        return CommandLine(content, problem)

    def _overflow(self, buf: InputBuffer) -> CommandLine | None:
        """No complete line yet (always None): drop an overlong partial line, keeping a short
        prefix. A CR at the end stays: it may be the first half of the line's CRLF."""
        data = buf.data
        keep_cr = data.endswith(b"\r")
        if len(data) - keep_cr + 2 > self.max_length and len(data) > 80:
            del data[80 : len(data) - keep_cr]  # keep the start of the line for the transcript
            self._discarding = True
        self._scan = len(data) - keep_cr
        if buf.eof and data:
            # The peer closed in the middle of a line: that line never ended, so it is no command.
            data.clear()
            self._scan = 0
            self._discarding = False
        return None


_LINE_BREAK = re.compile(rb"[\r\n]")


def find_line_break(data: bytearray | bytes, start: int) -> int:
    """The index of the first CR or LF in ``data`` at or after ``start``, or -1.

    One pass that stops at the first line break found (two ``find`` calls, one per byte,
    would each run to the end of the buffer when that byte is absent: quadratic over a
    stream of the other one)."""
    found = _LINE_BREAK.search(data, start)
    return found.start() if found is not None else -1


_BARE = re.compile(rb"[\r\n]")


def only_crlf(data: bytes) -> bool:
    """Whether every CR and LF in ``data`` is part of a CRLF (no bare line ends)."""
    crlfs = data.count(b"\r\n")
    return data.count(b"\n") == crlfs and data.count(b"\r") == crlfs


class DataEnd(NamedTuple):
    """The final ``<CRLF>.<CRLF>`` was read; the message is complete."""

    content: bytes
    size: int
    line_count: int
    problem: Problem | None


#: When a message has several problems, the one it is answered with: the same whatever order
#: they came in, so the reply depends on the bytes only, never on how TCP split them.
PROBLEM_ORDER = (Problem.BARE_LF, Problem.BARE_CR, Problem.TOO_LONG, Problem.TOO_LARGE)


class DataReader:
    """Reads message content up to ``<CRLF>.<CRLF>``, undoing dot-stuffing (4.5.2).

    The reader always starts at the beginning of a line (right after the DATA command's CRLF),
    so the first line of content may itself be the terminating ``.``. Complete lines are taken
    a block at a time; a line longer than ``max_text_line`` is taken as it arrives (its
    octets counted and checked, then dropped), so memory stays bounded. Every octet is
    counted and checked exactly once however the input was split, so the size, the line count
    and the problem found are the same for the same bytes.
    """

    def __init__(self, max_text_line: int, max_size: int | None, endings: LineEndings) -> None:
        self.max_text_line = max_text_line
        self.max_size = max_size
        self.endings = endings
        self._parts: list[bytes] = []
        self._size = 0
        self._lines = 0
        self._problems: set[Problem] = set()
        self._scan = 0  # bytes at the start of the buffer already searched: no CRLF there
        self._in_line = False  # the start of the current line was taken already (overlong)
        self._piece = 0  # octets of the current line (its last piece, normalize) taken so far

    def read(self, buf: InputBuffer) -> DataEnd | None:
        """Consume complete lines from ``buf``; return :class:`DataEnd` at the final dot."""
        data = buf.data
        # Only bytes not searched before (RFC 5321 2.3.8: CRLF alone ends a line).
        last = data.rfind(b"\r\n", max(self._scan - 1, 0))
        if last < 0:
            self._scan = len(data)
            self._bound_partial_line(data)
            return None
        if self._in_line:  # the rest of an overlong line: never the final dot
            first = data.find(b"\r\n")
            self._add_text(bytes(data[:first]))
            self._end_line()
            del data[: first + 2]
            self._scan = 0
            return self.read(buf)
        # The buffer starts at a line start. Its complete lines, each with its CRLF:
        block = bytes(data[: last + 2])
        if block.startswith(b".\r\n"):
            dot = 0
        else:
            dot = block.find(b"\r\n.\r\n")
            dot = dot + 2 if dot >= 0 else -1
        self._scan = 0
        if dot >= 0:  # the line "." ends the data (4.1.1.4); what follows stays in buf
            self._add_block(block[:dot])
            del data[: dot + 3]
            return self._end()
        self._add_block(block)
        del data[: last + 2]
        self._scan = len(data)
        self._bound_partial_line(data)
        return None

    def _add_block(self, block: bytes) -> None:
        """Add complete lines (each ending in CRLF), in bulk when no bare CR or LF is there."""
        if not block:
            return
        if not only_crlf(block) and self.endings is not LineEndings.KEEP:
            for line in block[:-2].split(b"\r\n"):
                self._add_text(line)
                self._end_line()
            return
        # Transparency (4.5.2): the first dot of every line that starts with one is deleted.
        body = block[1:] if block[:1] == b"." else block
        body = body.replace(b"\r\n.", b"\r\n")
        self._lines += block.count(b"\r\n")
        if max(map(len, body.split(b"\r\n"))) + 2 > self.max_text_line:
            self._fail(Problem.TOO_LONG)
        self._size += len(body)
        self._check_size()
        if not self._problems:
            self._parts.append(body)

    def _add_text(self, text: bytes) -> None:
        """Add octets of the current line (no CRLF in them): its start, middle or end."""
        if not self._in_line and text[:1] == b".":
            text = text[1:]  # transparency: the server deletes a line's first dot (4.5.2)
        self._in_line = True
        if self.endings is not LineEndings.KEEP and (b"\n" in text or b"\r" in text):
            if self.endings is LineEndings.REJECT:
                self._fail(Problem.BARE_LF if b"\n" in text else Problem.BARE_CR)
            else:  # normalize: each bare CR or LF ends a line of its own
                pieces = _BARE.split(text)
                self._grow_piece(len(pieces[0]))  # the end of the current line
                self._lines += len(pieces) - 1
                self._piece = 0
                self._grow_piece(max(map(len, pieces[1:])))  # the longest of the others
                self._piece = len(pieces[-1])  # the start of the next line
                text = b"\r\n".join(pieces)
                self._size += len(text)
                self._keep(text)
                return
        self._grow_piece(len(text))
        self._size += len(text)
        self._keep(text)

    def _grow_piece(self, length: int) -> None:
        self._piece += length
        if self._piece + 2 > self.max_text_line:
            self._fail(Problem.TOO_LONG)

    def _end_line(self) -> None:
        """The current line's CRLF."""
        self._lines += 1
        self._size += 2
        self._keep(b"\r\n")
        self._in_line = False
        self._piece = 0

    def _keep(self, text: bytes) -> None:
        self._check_size()
        if not self._problems:
            self._parts.append(text)

    def _check_size(self) -> None:
        if self.max_size is not None and self._size > self.max_size:
            self._fail(Problem.TOO_LARGE)

    def _fail(self, problem: Problem) -> None:
        self._problems.add(problem)
        self._parts.clear()  # the message will be rejected: keep nothing of it

    def _bound_partial_line(self, data: bytearray) -> None:
        """Take an unfinished line longer than a text line may be, keeping memory bounded.

        A trailing CR stays: it may be the first half of the line's CRLF."""
        keep_cr = data.endswith(b"\r")
        if len(data) - keep_cr <= self.max_text_line + 2:
            return
        self._add_text(bytes(data[: len(data) - keep_cr]))
        del data[: len(data) - keep_cr]
        self._scan = len(data)

    def _end(self) -> DataEnd:
        content = b"".join(self._parts)
        problem = next((p for p in PROBLEM_ORDER if p in self._problems), None)
        return DataEnd(content, self._size, self._lines, problem)


def dot_stuff(content: bytes) -> bytes:
    """Prepare message content for DATA: CRLF line ends, leading dots doubled, final dot added.

    Bare LF and bare CR become CRLF first (as Python's ``smtplib`` does), so the result can
    never contain an early end of data (RFC 5321 4.5.2).
    """
    # Already CRLF throughout (the usual case): skip the slower regular expression.
    text = content if only_crlf(content) else ANY_EOL.sub(b"\r\n", content)
    if text and not text.endswith(b"\r\n"):
        text += b"\r\n"
    if text.startswith(b"."):
        text = b"." + text
    return text.replace(b"\r\n.", b"\r\n..") + b".\r\n"


ANY_EOL = re.compile(rb"\r\n|\r|\n")
"""Any line end, CRLF or bare: ``ANY_EOL.sub(b"\\r\\n", data)`` normalises them."""
