"""Message blocks read as they arrive: counted, never held whole.

An observer of a conversation's bytes (:mod:`smtplab.protocol.observer`) must not keep a
message until it ends: a hostile client's ``BDAT 999999999999`` or a 10 MB message would stay
in memory for as long as it lasts. What a transcript row needs of a block is its size, its
lines and its start (the row's preview), and all three are worked out as the octets arrive,
each octet looked at a bounded number of times:

* :class:`Block` counts octets and CRLFs and keeps the first ``keep`` octets;
* :class:`DotStuffed` reads DATA content (RFC 5321 4.5.2): it finds the ``<CRLF>.<CRLF>`` that
  ends it, removes the dot that starts a line (dot-stuffing) and hands the rest to a Block.
  It holds back at most the 4 octets that might be the start of that end, so nothing of the
  end is ever counted as content.

A big piece is read in steps of :data:`STEP` octets, so what is allocated while reading is
bounded too, not only what is kept.
"""

from __future__ import annotations

#: The end of DATA content: the line end of its last line, a dot, a line end (RFC 5321 4.1.1.4).
DATA_END = b"\r\n.\r\n"
#: Octets read at a time: a bigger piece is read in steps, so the copies made while reading
#: it (the search window, the unstuffed octets) stay this small however big the piece.
STEP = 64 * 1024
_CRLF = b"\r\n"
_HELD = len(DATA_END) - 1  # octets that may start an end whose rest has not arrived


class Block:
    """One message block (DATA content without its stuffing, or a BDAT chunk) as it arrives:
    ``size`` octets and ``lines`` CRLFs so far, and ``head``, its first ``keep`` octets."""

    __slots__ = ("_cr", "head", "keep", "lines", "size")

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.head = bytearray()
        self.size = 0
        self.lines = 0
        self._cr = False  # the last octet was a CR: a LF first in the next piece ends a line

    def add(self, octets: bytes | bytearray) -> None:
        """The block's next ``octets``."""
        if not octets:
            return
        if len(self.head) < self.keep:
            self.head += octets[: self.keep - len(self.head)]
        self.size += len(octets)
        self.lines += octets.count(_CRLF) + (self._cr and octets[0] == 0x0A)
        self._cr = octets[-1] == 0x0D


class DotStuffed:
    """DATA content read as it arrives: :meth:`feed` it the client's octets until it says
    where the content ended; :attr:`block` counts the content, unstuffed."""

    __slots__ = ("_before", "_held", "block")

    def __init__(self, keep: int) -> None:
        self.block = Block(keep)
        # The last two octets counted. At first, the line end before the content: its first
        # line is a line too, so a dot that starts it is stuffing and ".<CRLF>" ends it.
        self._before = _CRLF
        self._held = b""  # octets not counted yet: they may be the start of the end

    def feed(self, data: bytes | bytearray) -> int:
        """Read ``data``; how many of its octets the content took, its end included, or -1
        when it took all of them and has not ended (the rest is the client's next units)."""
        for start in range(0, len(data), STEP):
            taken = self._step(data[start : start + STEP])
            if taken >= 0:
                return start + taken
        return -1

    def _step(self, data: bytes | bytearray) -> int:
        """:meth:`feed` for at most :data:`STEP` octets."""
        window = self._before + self._held + data  # searched: what is new and 6 octets before
        end = window.find(DATA_END)
        if end < 0:
            cut = max(len(window) - _HELD, 2)
            self._count(window[2:cut])
            self._held = window[cut:]
            return -1
        # The content ends with the line end before the dot. The end was not in the window
        # before, so it ends inside ``data``, after the octets that came before it.
        self._count(window[2 : end + 2])
        self._held = b""
        return end + len(DATA_END) - (len(window) - len(data))

    def finish(self) -> Block:
        """The content ended without its end being seen (a capture lost it): count what was
        held back too."""
        self._count(self._held)
        self._held = b""
        return self.block

    def _count(self, stuffed: bytes) -> None:
        """Count the next ``stuffed`` octets, none of which can be part of the end."""
        if not stuffed:
            return
        joined = self._before + stuffed
        # RFC 5321 4.5.2: a dot that starts a line was added by the sender; the two octets
        # before ``stuffed`` tell whether its first octet starts a line.
        self.block.add(joined.replace(b"\r\n.", _CRLF)[2:])
        self._before = joined[-2:]
