"""SMTP sessions out of a pcap or pcapng capture: every TCP connection that speaks SMTP.

Theory of operation
-------------------
Packets are read one at a time (:mod:`smtplab.ingest.packets`), their TCP segments put back in
order per connection and direction (:mod:`smtplab.ingest.tcp_streams`), and each connection's
two byte streams fed, in capture order, to the same :class:`~smtplab.log.wire.WireRecorder` that
records smtplab's own TCP client: client octets are commands, message data after a 354, BDAT
chunks; server octets are replies, each paired with what it answers, pipelined or not. So a
captured session gives the very rows a live one does, with ``source`` ``pcap``.

The two directions are decoded in capture order, with one correction: a segment that
acknowledges data of the other side not decoded yet waits for it. Capture timestamps can put a
reply before the command it answers (two capture points, two CPUs), but the reply's ACK number
cannot lie about what its sender had received.

A segment the capture missed, though its receiver got it, leaves a gap that never fills.
It is skipped as soon as it is known to be lost, not merely late: the other side has
acknowledged it, and its own side has sent beyond it (a later segment, or a FIN further on:
Wireshark's "previous segment not captured"), or when more waits behind it than
:data:`~smtplab.ingest.tcp_streams.MAX_WAITING_OCTETS` or ``MAX_WAITING_SEGMENTS`` allow. The
skip is a :class:`_Lost` entry in the
side's data, ordered by the same ACK rule, so everything the other side said before receiving
the lost octets is decoded before it and everything after, after it; the wire recorder then
knows which replies or commands were lost (:mod:`smtplab.log.wire`). Each gap is a note row and
a counted problem naming the packet that showed it. Gaps nobody acknowledged are skipped
when the connection ends, as before.

Data that waits for the other side's octets is bounded by the same limits: when too much of a
side waits for octets of the other side that its ACKs say arrived but the capture never shows
(and that side sends nothing after them, which would prove them lost), those octets are given
up on as lost. So neither a gap that never fills nor an ACK of octets never captured keeps the
rest of a connection in memory, however long it lasts.

SMTP is recognised by what is said, not by the port: the side that opens the connection (its
SYN) is the client; without a captured handshake, the side whose first octets are a reply
(``220 ...``) is the server. A connection whose server side does not start with a reply is not
SMTP and is left out (counted). After a 220 to STARTTLS the rest is encrypted: one ``tls`` row
says so and nothing more of that connection is decoded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, NamedTuple

from smtplab.ingest.packets import CaptureProblems, read_packets
from smtplab.ingest.tcp_streams import (
    ACK,
    FIN,
    MAX_WAITING_OCTETS,
    MAX_WAITING_SEGMENTS,
    RST,
    SYN,
    Reassembly,
    Segment,
    address_text,
    seq_distance,
    tcp_segment,
)
from smtplab.log.recorder import Recorder
from smtplab.log.wire import WireRecorder
from smtplab.protocol.commands import COMMAND_VERBS

Address = tuple[bytes, int]  # IP address octets, port
_REPLY_START = re.compile(rb"[2-5][0-9][0-9](?:[ \-\r]|$)")
_UNDECIDED_LIMIT = 64 * 1024  # octets kept while telling SMTP from anything else
#: Connections followed at once. Past it, the tenth seen longest ago are ended early (a
#: note says so): a port scan or connections whose close was not captured cannot make the
#: reader keep every connection of the capture in memory.
MAX_OPEN_CONNECTIONS = 10_000
_DROPPED = "the capture reader stopped following this connection"
_HEAD = 16  # octets of each side's first words that tell it


class _Lost(NamedTuple):
    """Octets of one side the capture missed though the other side acknowledged them."""

    octets: int
    packet: int  # the packet that showed it (the first one after the gap, or the ACK)
    given_up: bool = False  # not proven lost: skipped because too much waited for it


#: Why octets were given up on (see :class:`_Lost`).
_GIVEN_UP = (
    f"given up on after more than {MAX_WAITING_OCTETS} octets or {MAX_WAITING_SEGMENTS}"
    " segments waited for them"
)


Stamp = tuple[float | None, int | None]  # a segment's time, and its ACK number if it has one


@dataclass
class _Connection:
    """One TCP connection of the capture, and its SMTP conversation once sides are known."""

    key: tuple[Address, Address]
    started: float | None
    client: Address | None = None
    streams: dict[Address, Reassembly[Stamp]] = field(default_factory=dict)
    # Data kept while the sides are unknown, what each side said first (up to _HEAD octets)
    # and how much is kept: all :meth:`CaptureReader._decide` looks at, so deciding costs the
    # same at the thousandth segment as at the first.
    waiting: list[tuple[Address, float | None, bytes | _Lost]] = field(default_factory=list)
    heads: dict[Address, bytes] = field(default_factory=dict)
    waiting_octets: int = 0
    blind: set[Address] = field(default_factory=set)  # sides whose first octets were lost
    wire: WireRecorder | None = None
    smtp: bool | None = None  # None: not decided yet
    handshake: bool = False
    fin_from: list[Address] = field(default_factory=list)
    reset_by: Address | None = None
    last_seen: float | None = 0.0  # the time of its latest segment
    # In-order data not decoded yet, in capture order: (side, time, octets or what was lost,
    # the other side's stream position it acknowledges, or None), and how far each side has
    # been decoded; the furthest ACK number each side has sent.
    held: list[tuple[Address, float | None, bytes | _Lost, int | None]] = field(
        default_factory=list
    )
    decoded: dict[Address, int] = field(default_factory=dict)
    acked: dict[Address, int] = field(default_factory=dict)
    gap: bool = False  # a side has sent past a gap in what the capture has of it
    held_octets: int = 0  # the octets in ``held`` after the last :meth:`_release`

    def stream(self, side: Address) -> Reassembly[Stamp]:
        if side not in self.streams:
            self.streams[side] = Reassembly()
        return self.streams[side]

    def other(self, side: Address) -> Address:
        return self.key[1] if side == self.key[0] else self.key[0]


class CaptureReader:
    """Reads one capture into transcript rows; :attr:`problems` says what was skipped."""

    def __init__(
        self,
        name: str,
        session_prefix: str,
        problems: CaptureProblems | None = None,
        ended: Callable[[list[tuple]], None] | None = None,  # type: ignore[type-arg]
    ) -> None:
        self.name = name
        self.prefix = session_prefix
        self.problems = problems if problems is not None else CaptureProblems()
        # Streaming: each session's rows go to ``ended`` when its connection is over, and are
        # forgotten; else they are all kept for read's answer.
        self._ended = ended
        self.recorders: list[Recorder] = []  # in the order they were recognised (not streaming)
        self._count = 0  # SMTP sessions so far
        self.not_smtp = 0  # TCP connections that turned out not to be SMTP
        self._open: dict[tuple[Address, Address], _Connection] = {}

    def read(self, stream: IO[bytes]) -> list[tuple]:  # type: ignore[type-arg]
        """Every row of every SMTP session in ``stream``, session by session."""
        for packet in read_packets(stream, self.name, self.problems):
            segment = tcp_segment(packet, self.problems, self.name)
            if segment is not None:
                self._segment(segment)
        for connection in list(self._open.values()):
            self._finish(connection, ended_with_capture=True)
        return [row for recorder in self.recorders for row in recorder.tuples]

    # -- connections ------------------------------------------------------------------------

    def _segment(self, segment: Segment) -> None:
        key = _key(segment.source, segment.destination)
        connection = self._open.get(key)
        opening = segment.flags & (SYN | ACK) == SYN
        if connection is not None and opening and (connection.fin_from or connection.reset_by):
            self._finish(connection)  # the same ports again: a new connection
            connection = None
        if connection is None:
            if not segment.payload and not segment.flags & SYN:
                return  # the last ACK of a finished connection, or a lone keep-alive
            connection = self._open[key] = _Connection(key, segment.time)
            if len(self._open) > MAX_OPEN_CONNECTIONS:
                self._drop_oldest(connection)
        side = segment.source
        connection.last_seen = segment.time
        if segment.flags & SYN:
            connection.stream(side).syn(segment.seq)
            connection.decoded[side] = (segment.seq + 1) % 2**32
            connection.handshake = True
            if opening:
                connection.client = side
        stream = connection.streams.get(side) or connection.stream(side)
        held = connection.held
        before, flags = len(held), segment.flags
        needs = segment.ack if flags & ACK else None
        stamp = (segment.time, needs)
        for (time, acked), data in stream.add(segment.seq, stamp, segment.payload, flags & FIN):
            held.append((side, time, data, acked))
        if needs is not None:
            connection.acked[side] = needs  # (an older one, reordered, only delays a skip)
        if connection.gap or stream.furthest > stream.offset:  # a gap: is it lost?
            self._skip_lost(connection, segment)
        if len(connection.held) > before:
            self._release(connection)
            if (
                len(connection.held) > MAX_WAITING_SEGMENTS
                or connection.held_octets > MAX_WAITING_OCTETS
            ):
                self._stop_waiting(connection, segment)
        if flags & RST:
            connection.reset_by = side
            self._finish(connection)
        elif flags & FIN:
            if side not in connection.fin_from:
                connection.fin_from.append(side)
            if len(connection.fin_from) == 2:
                self._finish(connection)

    def _drop_oldest(self, keep: _Connection) -> None:
        """Too many connections are open: end the tenth seen longest ago, as if the capture
        ended there, each with a note (sorting once per tenth keeps it cheap per connection)."""
        quiet = sorted(
            (c for c in self._open.values() if c is not keep),
            key=lambda c: float("-inf") if c.last_seen is None else c.last_seen,
        )
        for connection in quiet[: max(MAX_OPEN_CONNECTIONS // 10, 1)]:
            self._finish(connection, dropped=True)

    def _skip_lost(self, connection: _Connection, segment: Segment) -> None:
        """Skip what the capture missed of either side, once it is known to be lost: the
        other side acknowledged it and this side has sent beyond it (a later segment).

        Until then a gap may be a segment stamped late, not a lost one, and the data after
        it waits (as an ACK of data not seen yet makes the acknowledging side wait)."""
        connection.gap = False
        for side, stream in connection.streams.items():
            acked = connection.acked.get(connection.other(side))
            while True:
                octets = stream.lost(acked) if acked is not None else 0
                given_up = not octets
                if given_up:  # not known to be lost, but too much waits behind it
                    octets = stream.overdue()
                if not octets:
                    break
                lost = _Lost(octets, segment.number, given_up)
                connection.held.append((side, segment.time, lost, None))
                for (time, needs), data in stream.skip(octets):
                    connection.held.append((side, time, data, needs))
            if stream.furthest > stream.offset:
                connection.gap = True  # still a gap: look again at the next segment

    def _release(self, connection: _Connection, everything: bool = False) -> None:
        """Decode held data, in capture order, as far as acknowledgements allow (all of it
        when ``everything``: the connection is over)."""
        held = connection.held
        if len(held) == 1 and not everything:  # the usual case: one chunk, nothing before it
            side, time, data, needs = held[0]
            key = connection.key
            done = connection.decoded.get(key[1] if side == key[0] else key[0])
            if needs is None or done is None or seq_distance(needs, done) <= 0:
                held.clear()
                connection.held_octets = 0
                self._decode(connection, side, time, data)
                return
        progress = True
        while progress and connection.held:  # again while one side's data freed the other's
            progress = False
            blocked: set[Address] = set()
            remaining = []
            for side, time, data, needs in connection.held:
                other = connection.other(side)
                done = connection.decoded.get(other)
                waits = needs is not None and done is not None and seq_distance(needs, done) > 0
                if side in blocked or (waits and not everything):
                    blocked.add(side)  # a side's data stays in order behind what waits
                    remaining.append((side, time, data, needs))
                    continue
                self._decode(connection, side, time, data)
                progress = True
            connection.held = remaining
        connection.held_octets = sum(len(d) for _, _, d, _ in connection.held if type(d) is bytes)

    def _stop_waiting(self, connection: _Connection, segment: Segment) -> None:
        """Too much waits (see the module docstring): give up on the other side's octets that
        the first waiting data acknowledges, as lost. If that frees nothing (each side waits
        for the other, which no TCP does), decode what is held in capture order, and say so."""
        side, time, _, needs = connection.held[0]  # the first held data always waits
        other = connection.other(side)
        stream = connection.streams.get(other)
        octets = 0
        if stream is not None and needs is not None:
            octets = stream.lost(needs, proven=True)
        if stream is not None and octets:
            connection.held.append((other, time, _Lost(octets, segment.number, True), None))
            for (early_time, early_needs), data in stream.skip(octets):
                connection.held.append((other, early_time, data, early_needs))
            self._release(connection)
        if len(connection.held) > MAX_WAITING_SEGMENTS or (
            connection.held_octets > MAX_WAITING_OCTETS
        ):
            text = "ACK numbers that cannot be followed: the data that waited is read in"
            text += f" capture order from packet {segment.number} on"
            self.problems.add(text, f"{self.name} packet {segment.number}")
            if connection.wire is not None:
                connection.wire.recorder.note(segment.time, text)
            self._release(connection, everything=True)

    def _decode(
        self, connection: _Connection, side: Address, time: float | None, data: bytes | _Lost
    ) -> None:
        """Decode ``side``'s next octets and note how far that side is decoded."""
        self._data(connection, side, time, data)
        start = connection.decoded.get(side)
        if start is not None:
            size = data.octets if type(data) is _Lost else len(data)
            connection.decoded[side] = (start + size) % 2**32

    def _data(
        self, connection: _Connection, side: Address, time: float | None, data: bytes | _Lost
    ) -> None:
        if connection.smtp is False:
            return
        wire = connection.wire
        if wire is not None and type(data) is bytes:  # nearly always: straight to the recorder
            if side == connection.client:
                wire.sent(data, time)
            else:
                wire.received(data, time)
            return
        if wire is None:
            connection.waiting.append((side, time, data))
            if type(data) is _Lost and side not in connection.heads:
                connection.blind.add(side)
            if type(data) is bytes:
                connection.waiting_octets += len(data)
                head = connection.heads.get(side, b"")
                if len(head) < _HEAD:
                    connection.heads[side] = head + data[: _HEAD - len(head)]
            if not self._decide(connection):
                return
            waiting, connection.waiting = connection.waiting, []
            for early_side, early_time, early in waiting:
                self._feed(connection, early_side, early_time, early)
            return
        self._feed(connection, side, time, data)

    def _decide(self, connection: _Connection, ended: bool = False) -> bool:
        """Tell client from server and SMTP from anything else, once the data allows: the
        server's first line must be a reply, and the client's first word an SMTP verb (an
        FTP or HTTP session must not be read as mail, its passwords least of all)."""
        first = connection.heads  # the first few octets each side said
        if connection.waiting_octets > _UNDECIDED_LIMIT:
            return self._not_smtp(connection)
        if connection.client is None:
            for side, data in first.items():
                if len(data) >= 4 and _REPLY_START.match(data):
                    connection.client = connection.other(side)
        if connection.client is None:
            if len(first) == 2 and all(len(data) >= 4 for data in first.values()):
                return self._not_smtp(connection)  # both spoke, neither with a reply
            return False
        server = connection.other(connection.client)
        said, heard = first.get(connection.client), first.get(server)
        # A side whose first octets the capture lost cannot be judged by what follows them.
        blind = connection.blind
        no_reply = heard is not None and len(heard) >= 4 and not _REPLY_START.match(heard)
        if no_reply and server not in blind:
            return self._not_smtp(connection)
        if connection.client in blind:
            pass
        elif said is not None and (b" " in said or b"\r" in said or len(said) >= 8):
            if said.split(None, 1)[0].upper().decode("ascii", "replace") not in COMMAND_VERBS:
                return self._not_smtp(connection)
        elif not ended:
            return False  # the client has not said enough yet
        if heard is None or len(heard) < 4:
            if not ended:
                return False
            if heard is None:
                return self._not_smtp(connection)
        assert heard is not None
        connection.smtp = True
        self._count += 1
        recorder = Recorder(
            f"{self.prefix}-{self._count}",
            "pcap",
            address_text(connection.client),
            address_text(server),
        )
        if self._ended is None:
            self.recorders.append(recorder)
        connection.wire = WireRecorder(recorder, opaque_after_starttls=True)
        greeted_first = connection.waiting[0][0] == server and heard[:3] in (b"220", b"554")
        if connection.handshake or greeted_first:
            connection.wire.connected(connection.started)
        else:
            recorder.note(connection.started, "the capture starts in the middle of this session")
        return True

    def _not_smtp(self, connection: _Connection) -> bool:
        connection.smtp = False
        connection.waiting.clear()
        connection.waiting_octets = 0
        self.not_smtp += 1
        return False

    def _feed(
        self, connection: _Connection, side: Address, time: float | None, data: bytes | _Lost
    ) -> None:
        wire = connection.wire
        assert wire is not None
        if isinstance(data, _Lost):
            where = f"{self.name} packet {data.packet}"
            what = f"{data.octets} octets missing from the capture, "
            what += _GIVEN_UP if data.given_up else "skipped"
            self.problems.add(what, where)
            before = f"before packet {data.packet}"
            if data.given_up:
                before += f"; {_GIVEN_UP}"
            wire.lost(side == connection.client, data.octets, time, before)
        elif side == connection.client:
            wire.sent(data, time)
        else:
            wire.received(data, time)

    def _finish(
        self, connection: _Connection, ended_with_capture: bool = False, dropped: bool = False
    ) -> None:
        """The connection is over (closed, reset, the capture ended or, with ``dropped``, too
        many were open): decode what is left and end its session."""
        self._open.pop(connection.key, None)
        missing = 0
        for side, stream in connection.streams.items():
            for (time, _), octets in stream.skip_gaps():
                connection.held.append((side, time, octets, None))
            missing += stream.missing
        self._release(connection, everything=True)
        undecided = connection.wire is None and connection.smtp is None and connection.waiting
        if undecided and self._decide(connection, ended=True):  # a greeting and no more
            waiting, connection.waiting = connection.waiting, []
            for side, time, data in waiting:
                self._feed(connection, side, time, data)
        if connection.wire is None:
            if connection.smtp is None and connection.waiting:
                self.not_smtp += 1  # it said something, never recognisably SMTP
            return
        recorder, last = connection.wire.recorder, connection.last_seen
        if missing:
            recorder.note(last, f"{missing} octets missing from the capture were skipped")
            self.problems.add(
                f"{missing} octets missing from the capture, skipped",
                f"{self.name} {recorder.session}",
            )
        if dropped:
            connection.wire.interrupted(last)
            text = f"{_DROPPED}: more than {MAX_OPEN_CONNECTIONS} were open at once, and it"
            recorder.note(last, text + " had been quiet longest (what follows is a new session)")
            self.problems.add(
                f"{_DROPPED} (more than {MAX_OPEN_CONNECTIONS} open at once)",
                f"{self.name} {recorder.session}",
            )
        elif ended_with_capture:
            connection.wire.interrupted(last)
            recorder.note(last, "the capture ends before this connection closed")
        elif connection.reset_by is not None:
            by = "client" if connection.reset_by == connection.client else "server"
            connection.wire.closed(last, by, "connection reset (RST)")
        else:
            closer = connection.fin_from[0] if connection.fin_from else connection.client
            connection.wire.closed(last, "client" if closer == connection.client else "server")
        if self._ended is not None:
            self._ended(recorder.tuples)


def _key(a: Address, b: Address) -> tuple[Address, Address]:
    return (a, b) if a <= b else (b, a)
