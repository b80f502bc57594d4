"""Reading replies, as a client does (RFC 5321 4.2, RFC 3463, RFC 2034).

A reply is one or more lines ``code-text`` ending with a line ``code text`` (or just ``code``).
Every line of one reply carries the same code (4.2.1). An enhanced status code, when the server
uses them (ENHANCEDSTATUSCODES, RFC 2034), starts the text of each line; the parser takes it
from the first line and strips it from every line that repeats it.

A client should be liberal here (a reply line ending in a bare LF is accepted), but a line that
is not a reply at all is the server's error: :class:`RemoteProtocolError`.
"""

from __future__ import annotations

import re
from typing import NoReturn

from smtplab.protocol.errors import RemoteProtocolError
from smtplab.protocol.events import Reply, is_enhanced_code

_REPLY_CODE = re.compile(rb"[2-5][0-5][0-9]")
# One complete, well-formed reply: "code-text" lines with the same code (the backreference),
# then "code text" or "code". The usual content of the buffer, parsed in one match.
_WHOLE_REPLY = re.compile(rb"([2-5][0-5][0-9])(?:-[^\r\n]*\r?\n\1)*(?: ([^\r\n]*))?\r?\n")
_SEPARATORS = (b" ", b"-", b"")

#: A reply line may be 512 octets, CRLF included (RFC 5321 4.5.3.1.5). Servers write longer
#: texts, so a client is liberal, up to what smtplib accepts (counted the same way); a longer
#: line is an error.
MAX_REPLY_LINE = 8192
#: Lines in one reply (a long EHLO reply has 20; an EXPN list may have hundreds).
MAX_REPLY_LINES = 1000
#: Octets in one reply, all its lines together.
MAX_REPLY_SIZE = 64 * 1024

# What the parser does with the lines after a malformed one (see ReplyParser).
_READ, _SKIP_GARBAGE, _SKIP_REPLY = "read", "skip garbage", "skip reply"


class ReplyParser:
    """Accumulates reply lines; :meth:`next_reply` returns each complete :class:`Reply`.

    Memory is bounded whatever the server sends: a line may be :data:`MAX_REPLY_LINE` octets,
    a reply :data:`MAX_REPLY_LINES` lines and :data:`MAX_REPLY_SIZE` octets. A reply that
    breaks a limit or the syntax raises :class:`RemoteProtocolError` once, when that is
    known; the rest of it is discarded as it arrives, without another error: the rest of an
    overlong line, then the lines of a multi-line reply up to its last line, or lines that
    are no reply lines at all up to the next one that is. So a reader that logs the error and
    reads on logs each bad reply once, not once per line. Feed what one read returned, then
    call :meth:`next_reply` until it returns None: the buffer then holds at most one
    incomplete line.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # octets at the buffer's start already searched for LF (none there)
        self._lines: list[tuple[int, str]] = []  # the lines of the reply so far
        self._size = 0  # their octets
        self._mode = _READ
        self._in_long_line = False  # discarding the rest of an overlong line

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def pending(self) -> bool:
        """Part of a reply has been received but not its last line."""
        return bool(self._buffer) or bool(self._lines) or self._in_long_line

    @property
    def buffered(self) -> int:
        """Octets held: the incomplete line and the lines of the reply so far."""
        return len(self._buffer) + self._size

    def next_reply(self) -> Reply | None:
        """The next complete reply, or None until more is fed.

        Raises :class:`RemoteProtocolError` once for each malformed reply (see the class)."""
        buffer = self._buffer
        if not buffer:
            return None
        if (
            self._mode == _READ
            and not self._lines
            and not self._in_long_line
            and len(buffer) <= MAX_REPLY_LINE
            and buffer[-1:] == b"\n"
        ):
            # The common case: the buffer holds exactly one reply.
            raw = bytes(buffer)
            reply = _whole_reply(raw)
            if reply is not None:
                buffer.clear()
                self._scanned = 0
                return reply
        while True:
            end = buffer.find(b"\n", self._scanned)
            if self._in_long_line:  # the rest of an overlong line: discarded as it arrives
                if end < 0:
                    buffer.clear()
                    self._scanned = 0
                    return None
                del buffer[: end + 1]
                self._scanned = 0
                self._in_long_line = False
                continue
            if end < 0 and len(buffer) < MAX_REPLY_LINE:
                self._scanned = len(buffer)  # search only new octets next time
                return None
            if end < 0 or end >= MAX_REPLY_LINE:  # the line and its LF: more than the limit
                self._long_line(end)
                continue
            raw = bytes(buffer[:end])
            del buffer[: end + 1]
            self._scanned = 0
            reply = self._line(raw[:-1] if raw[-1:] == b"\r" else raw)
            if reply is not None:
                return reply

    def _line(self, raw: bytes) -> Reply | None:
        """Take one line (without its line end); the reply if it was the last line."""
        kind = _kind(raw)
        if self._skipped(kind):
            return None
        if kind is None:
            self._fail(raw, f"not an SMTP reply line: {raw[:80]!r}")
        if b"\r" in raw:
            self._fail(raw, f"bare CR in a reply line (RFC 5321 2.3.8): {raw[:80]!r}")
        code = int(raw[:3])
        lines = self._lines
        if lines and lines[0][0] != code:
            self._fail(
                raw,
                f"reply line with code {code} inside a {lines[0][0]} reply "
                "(RFC 5321 4.2.1: every line of a reply has the same code)",
            )
        if self._size + len(raw) + 2 > MAX_REPLY_SIZE:
            self._fail(raw, f"reply longer than {MAX_REPLY_SIZE} octets")
        text = raw[4:].decode("utf-8", errors="replace")
        if kind == "last":
            if not lines:  # the common case: a one-line reply
                return build_reply(code, [text])
            texts = [line for _, line in lines] + [text]
            self._lines, self._size = [], 0
            return build_reply(code, texts)
        if len(lines) + 1 >= MAX_REPLY_LINES:  # this line and a last one: too many
            self._fail(raw, f"reply of more than {MAX_REPLY_LINES} lines")
        lines.append((code, text))
        self._size += len(raw) + 2
        return None

    def _long_line(self, end: int) -> None:
        """The line at the buffer's start is longer than any reply line may be (``end``: its
        LF, -1 while it has not come): discard it and report it (or skip it; see the class)."""
        buffer = self._buffer
        head = bytes(buffer[:4])
        if end < 0:
            buffer.clear()
            self._in_long_line = True
        else:
            del buffer[: end + 1]
        self._scanned = 0
        if not self._skipped(_kind(head)):
            self._fail(head, f"reply line longer than {MAX_REPLY_LINE} octets")

    def _skipped(self, kind: str | None) -> bool:
        """Whether a line of ``kind`` is part of a bad reply already reported (then it is
        skipped); the bad reply ends with its last line, or before the next reply line."""
        mode = self._mode
        if mode == _READ:
            return False
        if kind is None or (mode == _SKIP_REPLY and kind == "more"):
            return True
        self._mode = _READ
        return mode == _SKIP_REPLY  # the bad reply's last line is skipped too

    def _fail(self, raw: bytes, message: str) -> NoReturn:
        """Report a malformed reply once; skip the rest of it (see the class docstring)."""
        kind = _kind(raw)
        if kind == "more" or (self._lines and kind is None):
            self._mode = _SKIP_REPLY  # up to the last line of this reply
        elif kind is None:
            self._mode = _SKIP_GARBAGE  # up to the next reply line
        # else: the bad line was the reply's last line; the next line starts a new one
        self._lines, self._size = [], 0
        raise RemoteProtocolError(message)


def _kind(raw: bytes) -> str | None:
    """``"more"`` for a line ``code-...``, ``"last"`` for ``code text`` or ``code``, None for
    a line that is no reply line at all (RFC 5321 4.2)."""
    separator = raw[3:4]
    if separator not in _SEPARATORS or not _REPLY_CODE.fullmatch(raw[:3]):
        return None
    return "more" if separator == b"-" else "last"


def _whole_reply(raw: bytes) -> Reply | None:
    """The reply ``raw`` is, if it is exactly one well-formed reply."""
    match = _WHOLE_REPLY.fullmatch(raw)
    if match is None:
        return None
    line_count = raw.count(b"\n")
    if line_count == 1:
        texts = [(match[2] or b"").decode("utf-8", errors="replace")]
    elif line_count <= MAX_REPLY_LINES:
        text = raw.decode("utf-8", errors="replace").replace("\r\n", "\n")
        texts = [line[4:] for line in text.split("\n")[:-1]]  # each without "250-"
    else:
        return None  # the line-by-line path reports it
    return build_reply(int(match[1]), texts)


def build_reply(code: int, lines: list[str]) -> Reply:
    """A :class:`Reply` from its code and the text of its lines, taking the enhanced code out."""
    enhanced = None
    first = lines[0]
    candidate = first.split(" ", 1)[0] if first[1:2] == "." else ""
    if candidate and is_enhanced_code(candidate):
        # Kept even when its class differs from the code's: analysis flags that.
        enhanced = candidate
        prefix = enhanced + " "
        if len(lines) == 1:  # the usual case, without building a new list
            return Reply(code, _strip(first, prefix, enhanced), enhanced)
        lines = [_strip(line, prefix, enhanced) for line in lines]
    return Reply(code, "\n".join(lines), enhanced)


def _strip(line: str, prefix: str, enhanced: str) -> str:
    """``line`` without the enhanced code repeated at its start."""
    if line.startswith(prefix):
        return line[len(prefix) :]
    return "" if line == enhanced else line


def parse_reply(data: bytes) -> Reply:
    """Parse exactly one complete reply, e.g. ``parse_reply(b"250 2.1.5 OK\\r\\n")``."""
    parser = ReplyParser()
    parser.feed(data if data.endswith(b"\n") else data + b"\r\n")
    reply = parser.next_reply()
    if reply is None or parser.pending:
        raise ValueError(f"not exactly one complete SMTP reply: {data[:80]!r}")
    return reply
