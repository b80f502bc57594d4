"""BDAT framing: message content in counted chunks (RFC 3030, the CHUNKING extension).

Theory of operation
-------------------
``BDAT <chunk-size> [LAST]`` is followed, right after its CRLF, by exactly ``chunk-size``
octets of message content (RFC 3030 2). Nothing in them is a command, a line end or an end of
data: no dot-stuffing, no ``<CRLF>.<CRLF>``, which is why CHUNKING is immune to the end-of-data
smuggling that DATA invites. The server replies once per BDAT, after its octets.

Because the octet count frames the stream, a server must read a chunk even when it refuses
the BDAT (out of sequence, over the size limit, after an earlier failed chunk): otherwise the
chunk's content would be read as commands. Only a BDAT whose size cannot be parsed leaves the
framing unknown; its line gets 501 and what follows is read as commands again.

:class:`ChunkReader` takes one chunk's octets from the shared input buffer;
:class:`ChunkedMessage` adds chunks up, within the size limit. When the LAST chunk has arrived,
:func:`check_content` applies the same line rules as DATA (RFC 5321 4.5.3.1.6 line length,
bare CR/LF under the server's :class:`~smtplab.protocol.framing.LineEndings` setting) unless the
message was declared ``BODY=BINARYMIME`` (RFC 3030 3), whose content is arbitrary octets.
"""

from __future__ import annotations

import re

from smtplab.protocol.framing import ANY_EOL, InputBuffer, LineEndings, Problem, only_crlf

_BDAT_ARGUMENT = re.compile(r"([0-9]{1,18})(?: +(LAST))? *", re.IGNORECASE)


def parse_bdat(argument: str) -> tuple[int, bool] | None:
    """``"1000 LAST"`` -> ``(1000, True)``; ``None`` when it is not ``chunk-size [LAST]``.

    RFC 3030 4: ``bdat-cmd ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF``,
    ``chunk-size ::= 1*DIGIT``, ``end-marker ::= "LAST"`` (case-insensitive, as all keywords).
    """
    match = _BDAT_ARGUMENT.fullmatch(argument)
    if match is None:
        return None
    return int(match.group(1)), match.group(2) is not None


def bdat_line(size: int, last: bool) -> bytes:
    """The command line announcing a chunk of ``size`` octets."""
    return f"BDAT {size} LAST\r\n".encode() if last else f"BDAT {size}\r\n".encode()


class ChunkReader:
    """Takes exactly ``size`` octets from an :class:`InputBuffer`, keeping them or not."""

    __slots__ = ("_keep", "_parts", "remaining")

    def __init__(self, size: int, keep: bool) -> None:
        self.remaining = size
        self._keep = keep  # False: the chunk is refused; its octets are read and dropped
        self._parts: list[bytes] = []

    def read(self, buf: InputBuffer) -> bytes | None:
        """The whole chunk once it has arrived (``b""`` if not kept), else ``None``."""
        data = buf.data
        if self.remaining:
            take = min(self.remaining, len(data))
            if self._keep:
                self._parts.append(bytes(data[:take]))
            del data[:take]
            self.remaining -= take
        if self.remaining:
            return None
        return b"".join(self._parts)


class ChunkedMessage:
    """The chunks of one message accepted so far (RFC 3030 2)."""

    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.parts.append(chunk)
        self.size += len(chunk)

    def content(self) -> bytes:
        return b"".join(self.parts)


def check_content(
    content: bytes, max_text_line: int, endings: LineEndings
) -> tuple[bytes, Problem | None]:
    """``content`` as DATA's rules would accept it, or the problem that makes it unacceptable.

    A bare CR or LF is refused (``reject``), turned into CRLF (``normalize``) or kept
    (``keep``); a line longer than ``max_text_line`` octets with its CRLF is refused
    (RFC 5321 4.5.3.1.6). A last line without CRLF is allowed: the chunk count ends the data.
    """
    if not only_crlf(content):
        if endings is LineEndings.REJECT:
            crlf = content.count(b"\r\n")
            return b"", Problem.BARE_LF if content.count(b"\n") > crlf else Problem.BARE_CR
        if endings is LineEndings.NORMALIZE:
            content = ANY_EOL.sub(b"\r\n", content)
    lines = content.split(b"\r\n")
    if max(map(len, lines)) + 2 > max_text_line:
        return b"", Problem.TOO_LONG
    return content, None
