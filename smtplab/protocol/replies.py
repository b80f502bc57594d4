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

from smtplab.protocol.errors import RemoteProtocolError
from smtplab.protocol.events import Reply, is_enhanced_code
from smtplab.protocol.memo import remember

_REPLY_CODE = re.compile(rb"[2-5][0-5][0-9]")
# One complete, well-formed reply: "code-text" lines with the same code (the backreference),
# then "code text" or "code". The usual content of the buffer, parsed in one match.
_WHOLE_REPLY = re.compile(rb"([2-5][0-5][0-9])(?:-[^\r\n]*\r?\n\1)*(?: ([^\r\n]*))?\r?\n")
_SEPARATORS = (b" ", b"-", b"")

#: A reply line may be 512 octets (4.5.3.1.5); accept far longer ones, but not without bound.
MAX_REPLY_LINE = 64 * 1024
#: Lines in one multi-line reply (a long EHLO reply has 20): a bound, so memory stays bounded.
MAX_REPLY_LINES = 1000

# Replies already parsed, by their exact bytes. A server says the same replies again and again
# (its greeting, its EHLO reply, 354, 221), and a Reply is immutable, so one parse serves every
# later copy. Bounded (replies of up to 2 KB, emptied when full), so replies that echo
# addresses cannot grow it.
_PARSED: dict[bytes, Reply] = {}
_PARSED_LIMIT = 1024
_PARSED_MAX_SIZE = 2048


class ReplyParser:
    """Accumulates reply lines; :meth:`next_reply` returns each complete :class:`Reply`."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._lines: list[tuple[int, str]] = []

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def known(self, data: bytes) -> Reply | None:
        """The reply ``data`` is, when nothing is pending and exactly these bytes were parsed
        as one reply before; else None, and ``data`` is not taken (feed it)."""
        if self._buffer or self._lines:
            return None
        return _PARSED.get(data)

    @property
    def pending(self) -> bool:
        """Part of a reply has been received but not its last line."""
        return bool(self._buffer) or bool(self._lines)

    def next_reply(self) -> Reply | None:
        buffer = self._buffer
        if not buffer:
            return None
        if not self._lines and len(buffer) <= MAX_REPLY_LINE and buffer[-1:] == b"\n":
            # The common case: the buffer holds exactly one reply.
            raw = bytes(buffer)
            reply = _PARSED.get(raw) or _whole_reply(raw)
            if reply is not None:
                buffer.clear()
                return reply
        while True:
            end = buffer.find(b"\n", 0, MAX_REPLY_LINE + 1)
            if end < 0:
                if len(buffer) > MAX_REPLY_LINE:
                    # Dropped, so that a caller who reads on is not handed the same bytes
                    # again (and again): what follows is no reply either.
                    buffer.clear()
                    self._lines = []
                    raise RemoteProtocolError(f"reply line longer than {MAX_REPLY_LINE} octets")
                return None
            raw = bytes(buffer[:end])
            del buffer[: end + 1]
            if raw[-1:] == b"\r":
                raw = raw[:-1]
            separator = raw[3:4]
            if separator not in _SEPARATORS or not _REPLY_CODE.fullmatch(raw[:3]):
                raise RemoteProtocolError(f"not an SMTP reply line: {raw[:80]!r}")
            if b"\r" in raw:
                raise RemoteProtocolError(f"bare CR in a reply line (RFC 5321 2.3.8): {raw[:80]!r}")
            code = int(raw[:3])
            lines = self._lines
            if lines and lines[0][0] != code:
                raise RemoteProtocolError(
                    f"reply line with code {code} inside a {lines[0][0]} reply "
                    "(RFC 5321 4.2.1: every line of a reply has the same code)"
                )
            text = raw[4:].decode("utf-8", errors="replace")
            if separator != b"-":
                if not lines:  # the common case: a one-line reply
                    return build_reply(code, [text])
                lines.append((code, text))
                self._lines = []
                return build_reply(code, [line for _, line in lines])
            lines.append((code, text))
            if len(lines) > MAX_REPLY_LINES:
                raise RemoteProtocolError(f"reply of more than {MAX_REPLY_LINES} lines")


def _whole_reply(raw: bytes) -> Reply | None:
    """The reply ``raw`` is, if it is exactly one well-formed reply (then remembered)."""
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
    reply = build_reply(int(match[1]), texts)
    if len(raw) <= _PARSED_MAX_SIZE:
        remember(_PARSED, raw, reply, _PARSED_LIMIT)
    return reply


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
