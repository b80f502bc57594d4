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


_new_tuple = tuple.__new__  # builds a named tuple without the Python-level __new__


class CommandLine(NamedTuple):
    """One command line without its line end, and the problem with it, if any.

    A named tuple: one is made per command, and a tuple is built several times faster than a
    frozen dataclass."""

    content: bytes
    problem: Problem | None = None


class CommandLineReader:
    """Cuts command lines out of an :class:`InputBuffer`."""

    def __init__(self, max_length: int, endings: LineEndings) -> None:
        self.max_length = max_length
        self.endings = endings
        self._scan = 0  # bytes at the start of the buffer already known to hold no line end
        self._discarding = False  # inside an overlong line whose start was thrown away
        self._bare_cr = False  # the current line holds a bare CR (reject mode)

    def next_line(self, buf: InputBuffer) -> CommandLine | None:
        data = buf.data
        if not data:
            return None  # nothing to read (an empty buffer holds no line, even at EOF)
        pos = self._scan
        if not pos and not self._discarding:  # fast path: a plain line ending in CRLF
            end = data.find(b"\r\n", 0, self.max_length + 1)
            if end >= 0 and data.find(b"\n", 0, end) < 0 and data.find(b"\r", 0, end) < 0:
                content = bytes(data[:end])
                del data[: end + 2]
                if end + 2 > self.max_length:
                    return CommandLine(content[:80], Problem.TOO_LONG)
                return _new_tuple(CommandLine, (content, None))  # CommandLine(content), faster
        while True:
            end = _find_line_break(data, pos)
            if end < 0:
                self._scan = len(data)
                return self._overflow(buf)
            byte = data[end]
            if byte == 0x0D:  # CR
                if end + 1 == len(data):  # cannot tell CRLF from bare CR yet
                    self._scan = end
                    return self._overflow(buf)
                if data[end + 1] == 0x0A:
                    return self._finish(buf, end, 2)
                if self.endings is LineEndings.NORMALIZE:
                    return self._finish(buf, end, 1)
                if self.endings is LineEndings.REJECT:
                    self._bare_cr = True
                pos = end + 1
                continue
            # A bare LF.
            if self.endings is LineEndings.KEEP:
                pos = end + 1
                continue
            problem = Problem.BARE_LF if self.endings is LineEndings.REJECT else None
            return self._finish(buf, end, 1, problem)

    def _finish(
        self, buf: InputBuffer, end: int, terminator: int, problem: Problem | None = None
    ) -> CommandLine:
        content = bytes(buf.data[:end])
        del buf.data[: end + terminator]
        if self._discarding or len(content) + 2 > self.max_length:
            problem = Problem.TOO_LONG
        elif self._bare_cr and problem is None:
            problem = Problem.BARE_CR
        self._scan = 0
        self._discarding = False
        self._bare_cr = False
        return CommandLine(content if problem is not Problem.TOO_LONG else content[:80], problem)

    def _overflow(self, buf: InputBuffer) -> CommandLine | None:
        """No complete line yet: drop an overlong partial line, keeping a short prefix."""
        keep_cr = buf.data.endswith(b"\r")  # maybe the first half of the CRLF: not content
        if len(buf.data) - keep_cr + 2 > self.max_length and len(buf.data) > 80:
            del buf.data[80:]  # keep the start of the line for the transcript
            self._discarding = True
            if keep_cr:
                buf.data += b"\r"
            self._scan = len(buf.data) - (1 if keep_cr else 0)
        if buf.eof and buf.data:
            # The peer closed in the middle of a line: that line never ended, so it is no command.
            buf.data.clear()
            self._scan = 0
            self._discarding = False
        return None


def _find_line_break(data: bytearray, start: int) -> int:
    cr = data.find(b"\r", start)
    lf = data.find(b"\n", start)
    if cr < 0:
        return lf
    if lf < 0:
        return cr
    return min(cr, lf)


_BARE = re.compile(rb"[\r\n]")


def only_crlf(data: bytes) -> bool:
    """Whether every CR and LF in ``data`` is part of a CRLF (no bare line ends)."""
    crlfs = data.count(b"\r\n")
    return data.count(b"\n") == crlfs and data.count(b"\r") == crlfs


#: Under ``normalize`` with no size limit, how much of a message may wait for its first CRLF.
NORMALIZE_BUFFER_LIMIT = 64 * 1024 * 1024


class DataEnd(NamedTuple):
    """The final ``<CRLF>.<CRLF>`` was read; the message is complete."""

    content: bytes
    size: int
    line_count: int
    problem: Problem | None


class DataReader:
    """Reads message content up to ``<CRLF>.<CRLF>``, undoing dot-stuffing (4.5.2).

    The reader always starts at the beginning of a line (right after the DATA command's CRLF),
    so the first line of content may itself be the terminating ``.``.
    """

    def __init__(self, max_text_line: int, max_size: int | None, endings: LineEndings) -> None:
        self.max_text_line = max_text_line
        self.max_size = max_size
        self.endings = endings
        self._parts: list[bytes] = []
        self._size = 0
        self._lines = 0
        self._problem: Problem | None = None
        self._discarding = False  # inside an overlong line whose start was thrown away

    def read(self, buf: InputBuffer) -> DataEnd | None:
        """Consume complete lines from ``buf``; return :class:`DataEnd` at the final dot."""
        data = buf.data
        last = data.rfind(b"\r\n")
        if last < 0:
            self._bound_partial_line(buf)
            return None
        if self._discarding:  # the rest of an overlong line: never the final dot
            first = data.find(b"\r\n")
            self._discarding = False
            self._add_line(bytes(data[:first]), overlong=True)
            del data[: first + 2]
            return self.read(buf)
        # The buffer starts at a line start. Its complete lines, each with its CRLF:
        block = bytes(data[: last + 2])
        if block.startswith(b".\r\n"):
            dot = 0
        else:
            dot = block.find(b"\r\n.\r\n")
            dot = dot + 2 if dot >= 0 else -1
        if dot >= 0:  # the line "." ends the data (4.1.1.4); what follows stays in buf
            self._add_block(block[:dot])
            del data[: dot + 3]
            return self._end()
        self._add_block(block)
        del data[: last + 2]
        self._bound_partial_line(buf)
        return None

    def _add_block(self, block: bytes) -> None:
        """Add complete lines (each ending in CRLF), in bulk when no bare CR or LF is there."""
        if not block:
            return
        if not only_crlf(block) and self.endings is not LineEndings.KEEP:
            for line in block[:-2].split(b"\r\n"):
                self._add_line(line, overlong=False)
            return
        # Transparency (4.5.2): the first dot of every line that starts with one is deleted.
        body = block[1:] if block[:1] == b"." else block
        body = body.replace(b"\r\n.", b"\r\n")
        self._lines += block.count(b"\r\n")
        if max(map(len, body.split(b"\r\n"))) + 2 > self.max_text_line:
            self._fail(Problem.TOO_LONG)
        self._size += len(body)
        if self.max_size is not None and self._size > self.max_size:
            self._fail(Problem.TOO_LARGE)
        if self._problem is None:
            self._parts.append(body)

    def _add_line(self, line: bytes, overlong: bool) -> None:
        if line[:1] == b".":
            line = line[1:]  # transparency: the server deletes the first dot (4.5.2)
        pieces = [line]
        if self.endings is not LineEndings.KEEP and (b"\n" in line or b"\r" in line):
            if self.endings is LineEndings.REJECT:
                self._fail(Problem.BARE_LF if b"\n" in line else Problem.BARE_CR)
            else:  # normalize: each bare CR or LF ends a line of its own
                pieces = _BARE.split(line)
                line = b"\r\n".join(pieces)
        self._lines += len(pieces)
        if overlong or any(len(piece) + 2 > self.max_text_line for piece in pieces):
            self._fail(Problem.TOO_LONG)
        self._size += len(line) + 2
        if self.max_size is not None and self._size > self.max_size:
            self._fail(Problem.TOO_LARGE)
        if self._problem is None:
            self._parts.append(line + b"\r\n")

    def _fail(self, problem: Problem) -> None:
        if self._problem is None:
            self._problem = problem
            self._parts.clear()  # the message will be rejected: keep nothing of it

    def _bound_partial_line(self, buf: InputBuffer) -> None:
        """Throw away the middle of an overlong unfinished line, keeping memory bounded."""
        data = buf.data
        if len(data) <= self.max_text_line + 2:
            return
        problem = Problem.TOO_LONG
        if self.endings is LineEndings.NORMALIZE:
            # Bare line ends split the partial line into lines of their own: only the last
            # piece can be too long. The whole stays bounded by the size limit.
            last_break = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1))
            if len(data) - last_break - 1 <= self.max_text_line + 2:
                if len(data) <= (self.max_size or NORMALIZE_BUFFER_LIMIT) + self.max_text_line:
                    return
                problem = Problem.TOO_LARGE
        keep_cr = data.endswith(b"\r")
        self._size += len(data) - keep_cr
        del data[:]
        if keep_cr:
            data += b"\r"
        self._discarding = True
        self._fail(problem)

    def _end(self) -> DataEnd:
        content = b"".join(self._parts)
        return DataEnd(content, self._size, self._lines, self._problem)


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
