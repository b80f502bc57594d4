"""From captured frames to TCP byte streams: link, IP and TCP headers, then reassembly.

Theory of operation
-------------------
:func:`tcp_segment` peels the link layer (Ethernet with VLAN tags, Linux cooked v1 and v2,
BSD loopback, raw IP), IPv4 or IPv6 and TCP off a frame; anything else (ARP, UDP, an IP
fragment) is ``None`` with the reason noted.

:class:`Reassembly` puts one direction of a connection back in order, the way a receiving TCP
does: octets are delivered once every octet before them has arrived. A retransmission or an
overlapping segment delivers only what is new; a segment that arrives early waits for the gap
before it to fill, in a heap ordered by its offset in the stream, so that each segment costs
O(log n) however many wait. A gap that never fills (a packet the capture missed) is skipped
once the capture reader knows it is lost (:meth:`Reassembly.lost`, :meth:`Reassembly.skip`)
or when the connection ends, and said. Sequence numbers are compared modulo 2**32 (RFC 9293 3.4). A
connection whose handshake was not captured starts at the first segment seen.

What waits is bounded: when more than :data:`MAX_WAITING_OCTETS` octets or
:data:`MAX_WAITING_SEGMENTS` segments wait behind a gap, the gap is given up on as lost
(:meth:`Reassembly.overdue`), however the capture was made, so a stream whose gap never fills
(a hostile or broken capture) cannot hold the rest of the stream in memory. A TCP receive
window rarely holds that much, so a real gap fills long before.
"""

from __future__ import annotations

import heapq
import socket
import struct
from dataclasses import dataclass
from typing import Generic, TypeVar

from smtplab.ingest.packets import CaptureProblems, Packet

_ETHERNET, _LINUX_SLL, _LINUX_SLL2 = 1, 113, 276
_NULL, _LOOP = 0, 108
_RAW = (12, 14, 101)
_RAW_IPV4, _RAW_IPV6 = 228, 229
_IPV4, _IPV6, _VLAN_TAGS = 0x0800, 0x86DD, (0x8100, 0x88A8, 0x9100)
_V6_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options: skipped over
SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10
_MOD = 1 << 32
#: Octets of one direction that may wait behind a gap before the gap is taken as lost.
MAX_WAITING_OCTETS = 4 * 1024 * 1024
#: Segments that may wait behind a gap, however small (each costs memory beyond its octets).
MAX_WAITING_SEGMENTS = 4096
Stamp = TypeVar("Stamp")  # what the caller keeps with each segment's octets (its time, ...)


@dataclass(frozen=True, slots=True)
class Segment:
    """The TCP part of one frame. Addresses are (IP address octets, port): turned into text
    (:func:`address_text`) only for the few connections that turn out to be SMTP."""

    number: int
    time: float | None
    source: tuple[bytes, int]
    destination: tuple[bytes, int]
    seq: int
    ack: int
    flags: int
    payload: bytes


def tcp_segment(packet: Packet, problems: CaptureProblems, name: str) -> Segment | None:
    """The TCP segment in ``packet``, or None (noted in ``problems`` when it is damaged)."""
    ip = _ip_packet(packet.linktype, packet.data)
    if ip is None:
        return None  # not IP (ARP, ...): not our business, not a problem
    version = ip[0] >> 4 if ip else 0
    if version == 4:
        header_length = (ip[0] & 0x0F) * 4
        if len(ip) < 20 or header_length < 20:
            problems.add("IPv4 header cut short", _where(name, packet))
            return None
        total, fragment, protocol = struct.unpack("!H2xH1xB", ip[2:10])
        if protocol != 6:
            return None
        if fragment & 0x3FFF:  # more fragments, or a fragment offset
            problems.add("IP fragment (not reassembled)", _where(name, packet))
            return None
        source, destination = ip[12:16], ip[16:20]
        tcp = ip[header_length:total] if total else ip[header_length:]
    elif version == 6:
        if len(ip) < 40:
            problems.add("IPv6 header cut short", _where(name, packet))
            return None
        payload_length, next_header = struct.unpack("!HB", ip[4:7])
        source, destination = ip[8:24], ip[24:40]
        rest = ip[40 : 40 + payload_length] if payload_length else ip[40:]
        while next_header in _V6_EXTENSIONS and len(rest) >= 8:
            next_header, rest = rest[0], rest[(rest[1] + 1) * 8 :]
        if next_header == 44:
            problems.add("IPv6 fragment (not reassembled)", _where(name, packet))
            return None
        if next_header != 6:
            return None
        tcp = rest
    else:
        problems.add("not an IPv4 or IPv6 packet", _where(name, packet))
        return None
    if len(tcp) < 20:
        problems.add("TCP header cut short", _where(name, packet))
        return None
    source_port, destination_port, seq, ack, offset, flags = struct.unpack("!HHIIBB", tcp[:14])
    data_offset = (offset >> 4) * 4
    if data_offset < 20 or data_offset > len(tcp):
        problems.add("bad TCP data offset", _where(name, packet))
        return None
    return Segment(
        packet.number,
        packet.time,
        (source, source_port),
        (destination, destination_port),
        seq,
        ack,
        flags,
        tcp[data_offset:],
    )


def _where(name: str, packet: Packet) -> str:
    return f"{name} packet {packet.number}"  # only for a packet with a problem: rare


def address_text(address: tuple[bytes, int]) -> str:
    """``(octets, port)`` as the transcript writes an endpoint: ``host:port``, ``[v6]:port``."""
    host, port = address
    if len(host) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, host)}:{port}"
    return f"[{socket.inet_ntop(socket.AF_INET6, host)}]:{port}"


def _ip_packet(linktype: int, frame: bytes) -> bytes | None:
    """The IP packet inside a link-layer frame, or None when it holds no IP."""
    if linktype == _ETHERNET:
        offset, ethertype = 14, frame[12:14]
        kind = int.from_bytes(ethertype, "big") if len(ethertype) == 2 else 0
        while kind in _VLAN_TAGS and len(frame) >= offset + 4:
            kind = int.from_bytes(frame[offset + 2 : offset + 4], "big")
            offset += 4
        return frame[offset:] if kind in (_IPV4, _IPV6) else None
    if linktype == _LINUX_SLL:
        kind = int.from_bytes(frame[14:16], "big")
        return frame[16:] if kind in (_IPV4, _IPV6) else None
    if linktype == _LINUX_SLL2:
        kind = int.from_bytes(frame[0:2], "big")
        return frame[20:] if kind in (_IPV4, _IPV6) else None
    if linktype in (_NULL, _LOOP):
        family = frame[:4]
        # BSD loopback: the address family in the writer's byte order (LOOP: big-endian).
        value = max(int.from_bytes(family, "little"), int.from_bytes(family, "big"))
        return frame[4:] if value in (2, 24, 28, 30) else None
    if linktype in (*_RAW, _RAW_IPV4, _RAW_IPV6):
        return frame
    return None


class Reassembly(Generic[Stamp]):
    """One direction of a TCP connection, delivered in order (see the module docstring).

    Positions inside the class are *offsets*: octets from the start of the stream, never
    wrapping, so early segments wait in a heap ordered by offset and each segment costs
    O(log pending) however long a gap holds them back.
    """

    __slots__ = (
        "end", "furthest", "missing", "next_seq", "offset", "pending", "pending_octets", "starts"
    )  # fmt: skip

    def __init__(self) -> None:
        self.next_seq: int | None = None  # the sequence number of the next octet to deliver
        self.offset = 0  # that octet's offset in the stream
        self.furthest = 0  # the furthest offset any segment of this side has reached
        self.end: int | None = None  # the offset of its FIN, which takes a sequence number
        self.pending: dict[int, tuple[Stamp, bytes]] = {}  # early segments, by offset
        self.starts: list[int] = []  # a heap of the offsets in ``pending``
        self.pending_octets = 0  # the octets in ``pending``
        self.missing = 0  # octets skipped when the connection ended (:meth:`skip_gaps`)

    def syn(self, seq: int) -> None:
        """The SYN: data starts at the next sequence number."""
        self.next_seq = (seq + 1) % _MOD
        self.offset = self.furthest = 0
        self.end = None
        self.pending.clear()
        self.starts.clear()
        self.pending_octets = 0

    def add(
        self, seq: int, stamp: Stamp, payload: bytes, fin: int = 0
    ) -> list[tuple[Stamp, bytes]]:
        """A segment's payload; the data that is now in order, oldest first, each piece with
        the ``stamp`` given with its segment. ``fin``: true when the segment has a FIN."""
        if not payload:
            if (fin or seq != self.next_seq) and self.next_seq is not None:
                # A bare ACK or FIN still says how far this side is.
                reached = self.offset + seq_distance(seq, self.next_seq)
                if fin and self.end is None:
                    self.end = reached
                if self.end is not None:  # what follows the FIN is one number on, not data
                    reached = min(reached, self.end)
                self.furthest = max(self.furthest, reached)
            return []
        if seq == self.next_seq and not fin and not self.starts:  # the usual case: in order
            self.offset += len(payload)
            self.next_seq = (seq + len(payload)) % _MOD
            if self.offset > self.furthest:
                self.furthest = self.offset
            return [(stamp, payload)]
        if self.next_seq is None:
            self.next_seq = seq  # no handshake captured: start here
        start = self.offset + seq_distance(seq, self.next_seq)
        if fin and self.end is None:
            self.end = start + len(payload)
        self.furthest = max(self.furthest, start + len(payload))
        delivered: list[tuple[Stamp, bytes]] = []
        self._accept(start, stamp, payload, delivered)
        self._drain(delivered)
        return delivered

    def _accept(
        self,
        start: int,
        stamp: Stamp,
        payload: bytes,
        delivered: list[tuple[Stamp, bytes]],
    ) -> None:
        ahead = start - self.offset
        if ahead > 0:  # a gap before it: wait (keep the longer of two copies)
            kept = self.pending.get(start)
            if kept is None:
                heapq.heappush(self.starts, start)
                self.pending[start] = (stamp, payload)
                self.pending_octets += len(payload)
            elif len(kept[1]) < len(payload):
                self.pending[start] = (stamp, payload)
                self.pending_octets += len(payload) - len(kept[1])
            return
        if -ahead >= len(payload):
            return  # a retransmission with nothing new
        new = payload[-ahead:] if ahead else payload  # an overlap: keep the rest
        delivered.append((stamp, new))
        self._advance(len(new))

    def _advance(self, octets: int) -> None:
        assert self.next_seq is not None
        self.offset += octets
        self.next_seq = (self.next_seq + octets) % _MOD

    def _drain(self, delivered: list[tuple[Stamp, bytes]]) -> None:
        """Deliver the early segments now in reach (each looked at once, off the heap)."""
        starts = self.starts
        while starts and starts[0] <= self.offset:
            start = heapq.heappop(starts)
            early_stamp, early = self.pending.pop(start)
            self.pending_octets -= len(early)
            self._accept(start, early_stamp, early, delivered)

    def lost(self, acked: int, proven: bool = False) -> int:
        """How many octets from here the peer acknowledged (``acked``, its ACK number) that
        this side is known to have sent past, yet the capture does not have: 0 when none.

        Known to have sent: a later segment (waiting in the heap, or an empty one whose
        sequence number is further on). An ACK alone is no proof that the capture missed
        anything: the acknowledged segment may just be stamped later (see
        :mod:`smtplab.ingest.capture`), unless the caller has waited long enough for it
        (``proven``): then every acknowledged octet before the next segment counts."""
        if self.next_seq is None or (self.furthest <= self.offset and not proven):
            return 0
        covered = self.offset + seq_distance(acked, self.next_seq)
        reached = self.starts[0] if self.starts else (covered if proven else self.furthest)
        return max(min(covered, reached) - self.offset, 0)

    def overdue(self) -> int:
        """How many octets of the first gap to give up on because more waits behind it than
        :data:`MAX_WAITING_OCTETS` or :data:`MAX_WAITING_SEGMENTS` allow: 0 when it is not."""
        if not self.starts:
            return 0
        if self.pending_octets <= MAX_WAITING_OCTETS and len(self.starts) <= MAX_WAITING_SEGMENTS:
            return 0
        return self.starts[0] - self.offset

    def skip(self, octets: int) -> list[tuple[Stamp, bytes]]:
        """Jump ``octets`` the capture missed (see :meth:`lost`); the data now in order."""
        delivered: list[tuple[Stamp, bytes]] = []
        self._advance(octets)
        self._drain(delivered)
        return delivered

    def skip_gaps(self) -> list[tuple[Stamp, bytes]]:
        """The connection ended with segments still waiting: jump the gaps, deliver them."""
        delivered: list[tuple[Stamp, bytes]] = []
        while self.starts:
            gap = self.starts[0] - self.offset
            if gap > 0:
                self.missing += gap
                self._advance(gap)
            self._drain(delivered)
        return delivered


def seq_distance(seq: int, reference: int) -> int:
    """How far ``seq`` is ahead of ``reference`` (negative: behind), modulo 2**32."""
    difference = (seq - reference) % _MOD
    return difference - _MOD if difference >= _MOD // 2 else difference
