"""The in-process transport: a client and a server wired by memory, on a virtual clock.

No sockets, no threads, no real time: a byte written by one side is handed to the other at
once, and time moves only when the transport says so (a fixed one-way network delay per
transfer, a fixed processing time per server reply). Two runs of the same session give the same
transcript to the nanosecond, which is what makes notebooks and tests deterministic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

#: Where lab time starts unless told otherwise: 2026-01-05 09:00:00 UTC (a Monday morning).
DEFAULT_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def to_ns(seconds: float) -> int:
    """Seconds as whole nanoseconds."""
    return round(seconds * 1_000_000_000)


class VirtualClock:
    """A clock that moves only when :meth:`advance` is called. Times are POSIX seconds."""

    def __init__(self, start: datetime | float = DEFAULT_START) -> None:
        if isinstance(start, datetime):
            if start.tzinfo is None:
                raise ValueError("give the start time a timezone, e.g. datetime(..., tzinfo=UTC)")
            start = start.timestamp()
        # Whole nanoseconds, so that a thousand 1 ms steps make exactly one second.
        self._ns = to_ns(float(start))

    def now(self) -> float:
        return self._ns / 1_000_000_000

    __call__ = now  # the clock is passed around as a plain "what time is it" function

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        self._ns += to_ns(seconds)

    def advance_ns(self, nanoseconds: int) -> None:
        """Move on by a whole number of nanoseconds (no rounding: a link's delay, each time)."""
        self._ns += nanoseconds

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)


class ServerEnd(Protocol):
    """What the in-process link needs of a server (a :class:`~smtplab.server.ServerSession`)."""

    @property
    def closed(self) -> bool: ...

    def start(self) -> None: ...

    def receive(self, data: bytes) -> None: ...

    def data_to_send(self) -> bytes: ...


class InProcessLink:
    """Carries bytes between a client and a server in memory, advancing a virtual clock.

    Each transfer takes ``network_delay`` seconds of virtual time. The server answers
    synchronously, so :meth:`exchange` returns every byte the server sent in response.
    """

    def __init__(self, server: ServerEnd, clock: VirtualClock, network_delay: float = 0.001):
        if network_delay < 0:
            raise ValueError("a network delay cannot be negative")
        self.server = server
        self.clock = clock
        self.network_delay = network_delay
        self._delay_ns = to_ns(network_delay)

    @property
    def closed(self) -> bool:
        return self.server.closed

    def open(self) -> bytes:
        """Connect: the server greets; returns the greeting's bytes."""
        self.clock.advance(self.network_delay)
        self.server.start()
        return self._from_server()

    def exchange(self, data: bytes) -> bytes:
        """Send ``data`` to the server; return what it sent back."""
        server, clock = self.server, self.clock
        if data and not server.closed:
            clock.advance_ns(self._delay_ns)
            server.receive(data)
        out = server.data_to_send()
        if out:
            clock.advance_ns(self._delay_ns)
        return out

    def read(self) -> bytes:
        """Anything more the server sent (in-process it answers at once: usually nothing)."""
        return self._from_server()

    def expect_reply(self) -> None:
        """Nothing to do: in-process the server answers at once."""

    def close(self, reason: str = "") -> None:
        """The client closes its side (a no-op once the server has closed); the server's
        transcript records the close, so ``reason`` is not kept."""
        if not self.server.closed:
            self.clock.advance(self.network_delay)
            self.server.receive(b"")

    def _from_server(self) -> bytes:
        out = self.server.data_to_send()
        if out:
            self.clock.advance_ns(self._delay_ns)
        return out
