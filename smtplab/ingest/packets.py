"""Packets out of pcap and pcapng files, streamed, without third-party packet libraries.

Theory of operation
-------------------
A capture file is a header and a sequence of records. The classic **pcap** format has one
link type for the whole file and a 16-octet header per packet (seconds, micro- or nanoseconds,
captured and original length), in the writer's byte order, told by the magic number. **pcapng**
is a sequence of blocks: a Section Header (byte order), Interface Descriptions (each with its
link type and timestamp resolution), and Enhanced or Simple Packet blocks referring to them.

:func:`read_packets` yields :class:`Packet` records one at a time, so memory stays bounded
whatever the file's size. A record that cannot be read (a length running past the end, a
truncated last packet) ends the file or is skipped, and :class:`CaptureProblems` says how
many and where (packet numbers count from 1, as in Wireshark).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

PCAP_MAGIC = {  # magic -> (byte order, timestamp units per second)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_INTERFACE, _OLD_PACKET, _SIMPLE_PACKET, _ENHANCED_PACKET = 1, 2, 3, 6  # pcapng block types
_BLOCK_LIMIT = 256 * 1024 * 1024  # no real block is this big: the length field is garbage


class CaptureError(ValueError):
    """The file is not a capture this reader understands (said once, with the file's name)."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One captured frame: its number in the file (from 1), time, link type and octets."""

    number: int
    time: float | None  # None: the format gives it none (a Simple Packet Block) or nonsense
    linktype: int
    data: bytes


@dataclass
class CaptureProblems:
    """What could not be used, with the first few examples (packet numbers)."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, what: str, where: str, limit: int = 5) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
        if len(self.examples) < limit:
            self.examples.append(f"{where}: {what}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def is_capture(head: bytes) -> bool:
    """Whether the first octets of a file are a pcap or pcapng header."""
    return head[:4] in PCAP_MAGIC or head[:4] == PCAPNG_MAGIC


def read_packets(stream: IO[bytes], name: str, problems: CaptureProblems) -> Iterator[Packet]:
    """The packets of a pcap or pcapng ``stream`` (``name`` is for messages)."""
    magic = stream.read(4)
    if magic in PCAP_MAGIC:
        yield from _pcap(stream, magic, name, problems)
    elif magic == PCAPNG_MAGIC:
        yield from _pcapng(stream, name, problems)
    else:
        raise CaptureError(f"{name}: not a pcap or pcapng capture (it starts {magic!r})")


def _pcap(
    stream: IO[bytes], magic: bytes, name: str, problems: CaptureProblems
) -> Iterator[Packet]:
    order, per_second = PCAP_MAGIC[magic]
    header = stream.read(20)
    if len(header) < 20:
        raise CaptureError(f"{name}: the pcap header is cut short")
    *_, snaplen, linktype = struct.unpack(order + "HHiIII", header)
    linktype &= 0x0FFFFFFF
    record = struct.Struct(order + "IIII")
    number = 0
    while True:
        head = stream.read(16)
        if not head:
            return
        number += 1
        if len(head) < 16:
            problems.add("packet header cut short (truncated file)", f"{name} packet {number}")
            return
        seconds, fraction, captured, original = record.unpack(head)
        # More octets than the packet had, or than the capture kept: a damaged length, after
        # which no record boundary can be trusted.
        if captured > _BLOCK_LIMIT or captured > original or (snaplen and captured > snaplen):
            problems.add(
                "impossible packet length: rest of file skipped", f"{name} packet {number}"
            )
            return
        data = stream.read(captured)
        if len(data) < captured:
            problems.add("packet cut short (truncated file)", f"{name} packet {number}")
            return
        yield Packet(number, _time(seconds + fraction / per_second), linktype, data)


def _pcapng(stream: IO[bytes], name: str, problems: CaptureProblems) -> Iterator[Packet]:
    order = "<"
    interfaces: list[tuple[int, int]] = []  # (link type, timestamp units per second)
    number = 0
    header = PCAPNG_MAGIC + stream.read(4)  # the first block's type was read already
    while header:
        prefix = b""
        if header[:4] == PCAPNG_MAGIC:
            # A section header: its byte-order magic, after the length, says how to read both.
            prefix = stream.read(4)
            if prefix not in _BYTE_ORDER:
                if number == 0:
                    raise CaptureError(f"{name}: pcapng section header has no byte-order magic")
                problems.add("section header without byte-order magic: rest skipped",
                             f"{name} after packet {number}")  # fmt: skip
                return
            order = _BYTE_ORDER[prefix]
            interfaces = []  # a new section numbers its interfaces afresh
        if len(header) < 8:
            problems.add("block header cut short (truncated file)", f"{name} after packet {number}")
            return
        block_type, length = struct.unpack(order + "II", header)
        if length < 12 + len(prefix) or length % 4 or length > _BLOCK_LIMIT:
            problems.add("impossible block length: rest of file skipped",
                         f"{name} after packet {number}")  # fmt: skip
            return
        body = stream.read(length - 8 - len(prefix))
        if len(body) < length - 8 - len(prefix):
            problems.add("block cut short (truncated file)", f"{name} after packet {number}")
            return
        if len(body) < _SHORTEST.get(block_type, 4):
            number += block_type in (_ENHANCED_PACKET, _OLD_PACKET, _SIMPLE_PACKET)
            problems.add("block too short for its type", f"{name} block after packet {number}")
        elif block_type == _ENHANCED_PACKET:  # nearly every block: the short way
            number += 1
            interface, high, low, captured = struct.unpack(order + "IIII", body[:16])
            if interface < len(interfaces):
                linktype, per_second = interfaces[interface]
                seconds, units = divmod((high << 32) | low, per_second)
                yield Packet(
                    number, seconds + units / per_second, linktype, body[20 : 20 + captured]
                )
            else:
                problems.add("packet of an unknown interface", f"{name} packet {number}")
        elif block_type == _INTERFACE:
            interfaces.append(_interface(body[:-4], order))
        elif block_type in (_OLD_PACKET, _SIMPLE_PACKET):
            number += 1
            packet = _packet(block_type, prefix + body[:-4], order, interfaces, number)
            if packet is None:
                problems.add("packet of an unknown interface", f"{name} packet {number}")
            else:
                yield packet
        header = stream.read(8)


#: The least body (with its 4-octet trailer) of each block type this reader looks into.
_SHORTEST = {_ENHANCED_PACKET: 24, _OLD_PACKET: 24, _SIMPLE_PACKET: 8, _INTERFACE: 12}
#: Times pandas can hold (1677-2262); a stamp outside is damage, not a date.
_EARLIEST, _LATEST = -9.2e9, 9.2e9


def _time(seconds: float) -> float | None:
    return seconds if _EARLIEST < seconds < _LATEST else None


# The magic 0x1A2B3C4D as the writer's byte order stores it.
_BYTE_ORDER = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}


def _interface(body: bytes, order: str) -> tuple[int, int]:
    linktype = struct.unpack(order + "H", body[:2])[0]
    per_second = 1_000_000  # timestamp units per second; the default is microseconds
    options = body[8:]
    while len(options) >= 4:
        code, size = struct.unpack(order + "HH", options[:4])
        value = options[4 : 4 + size]
        if code == 0:
            break
        if code == 9 and value:  # if_tsresol: a power of 10, or of 2 with the high bit set
            exponent = value[0] & 0x7F
            per_second = 2**exponent if value[0] & 0x80 else 10**exponent
        options = options[4 + size + (-size % 4) :]
    return linktype, per_second


def _packet(
    block_type: int, body: bytes, order: str, interfaces: list[tuple[int, int]], number: int
) -> Packet | None:
    """A Simple Packet Block (no timestamp), or the obsolete Packet Block."""
    if block_type == _SIMPLE_PACKET:
        if not interfaces:
            return None
        linktype, _ = interfaces[0]
        original = struct.unpack(order + "I", body[:4])[0]
        return Packet(number, None, linktype, body[4 : 4 + original])  # SPBs have no time
    interface, _, high, low, captured = struct.unpack(order + "HHIII", body[:16])
    if interface >= len(interfaces):
        return None
    linktype, per_second = interfaces[interface]
    seconds, units = divmod((high << 32) | low, per_second)
    return Packet(number, _time(seconds + units / per_second), linktype, body[20 : 20 + captured])
