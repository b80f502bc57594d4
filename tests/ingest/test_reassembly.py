"""TCP reassembly in the capture reader, on captures built packet by packet: segments out of
order, retransmitted, overlapping, missing; connections without handshake or without close;
IPv6, VLAN tags and the Linux "any" device's cooked headers."""

from __future__ import annotations

import socket
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

import smtplab
from smtplab.ingest import IngestWarning
from smtplab.ingest.tcp_streams import Reassembly

CLIENT, SERVER = ("192.0.2.10", 40000), ("192.0.2.25", 2525)  # port 2525: not 25, on purpose
SYN, FIN, ACK, PSH, RST = 0x02, 0x01, 0x10, 0x08, 0x04

SERVER_SAYS = [
    b"220 mx.example.org ESMTP\r\n",
    b"250-mx.example.org\r\n250 PIPELINING\r\n",
    b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n354 go ahead\r\n",
    b"250 2.0.0 queued\r\n",
    b"221 2.0.0 bye\r\n",
]
CLIENT_SAYS = [
    b"EHLO client.example.net\r\n",
    b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n",
    b"Subject: reassembled\r\n\r\n..dot\r\nbody\r\n.\r\n",
    b"QUIT\r\n",
]


class Conversation:
    """TCP segments of one SMTP session, as (sender, seq, flags, payload), in send order."""

    def __init__(self, client=CLIENT, server=SERVER, handshake: bool = True) -> None:
        self.client, self.server = client, server
        self.seq = {client: 1000, server: 5000}
        # (sender, receiver, sequence number, acknowledgement number, flags, payload)
        self.segments: list[tuple[tuple[str, int], tuple[str, int], int, int, int, bytes]] = []
        if handshake:
            self.send(client, b"", SYN)
            self.send(server, b"", SYN | ACK)

    def send(self, side, payload: bytes, flags: int = ACK | PSH) -> None:
        other = self.server if side == self.client else self.client
        ack = self.seq[other] if flags & ACK else 0  # all the other side has sent so far
        self.segments.append((side, other, self.seq[side], ack, flags, payload))
        self.seq[side] = (self.seq[side] + len(payload) + (1 if flags & (SYN | FIN) else 0)) % 2**32

    def session(self, close: bool = True) -> Conversation:
        self.send(self.server, SERVER_SAYS[0])
        for said, answer in zip(CLIENT_SAYS, SERVER_SAYS[1:], strict=True):
            self.send(self.client, said)
            self.send(self.server, answer)
        if close:
            self.send(self.server, b"", FIN | ACK)
            self.send(self.client, b"", FIN | ACK)
        return self


def ethernet_frame(
    source, destination, seq: int, ack: int, flags: int, payload: bytes, vlan=False
) -> bytes:
    family = socket.AF_INET6 if ":" in source[0] else socket.AF_INET
    tcp = struct.pack("!HHIIBBHHH", source[1], destination[1], seq, ack, 5 << 4, flags, 65535, 0, 0)
    if family == socket.AF_INET:
        total = 20 + len(tcp) + len(payload)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0x4000, 64, 6, 0,
                         socket.inet_aton(source[0]), socket.inet_aton(destination[0]))  # fmt: skip
        kind = 0x0800
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp) + len(payload), 6, 64,
                         socket.inet_pton(family, source[0]),
                         socket.inet_pton(family, destination[0]))  # fmt: skip
        kind = 0x86DD
    tag = struct.pack("!HH", 0x8100, 7) if vlan else b""
    return b"\x00" * 12 + tag + struct.pack("!H", kind) + ip + tcp + payload


def write_pcap(path: Path, frames: list[bytes], linktype: int = 1) -> Path:
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for number, frame in enumerate(frames):
            out.write(struct.pack("<IIII", 1_800_000_000, number * 1000, len(frame), len(frame)))
            out.write(frame)
    return path


def pcap_of(path: Path, segments, vlan=False) -> Path:
    frames = [ethernet_frame(*segment, vlan=vlan) for segment in segments]
    return write_pcap(path, frames)


EXPECTED = [220, 250, 250, 250, 354, 250, 221]


def replies(frame: pd.DataFrame) -> list[int]:
    return [int(code) for code in frame[frame["kind"] == "reply"]["code"]]


def test_a_plain_session_on_any_port(tmp_path) -> None:
    frame = smtplab.read(pcap_of(tmp_path / "a.pcap", Conversation().session().segments))
    assert replies(frame) == EXPECTED
    assert frame["client"].iloc[0] == "192.0.2.10:40000"
    assert frame["server"].iloc[0] == "192.0.2.25:2525"
    data = frame[frame["kind"] == "data"].iloc[0]
    assert data["size"] == len(b"Subject: reassembled\r\n\r\n.dot\r\nbody\r\n")
    assert frame["kind"].iloc[-1] == "close" and frame["sender"].iloc[-1] == "server"


def test_replies_captured_before_their_commands_are_put_after_them(tmp_path) -> None:
    segments = Conversation().session().segments
    # The server's replies to the pipelined group, and to the message, were stamped before
    # the client's segments they answer (as two capture points or CPUs can do): their ACK
    # numbers say what they answer.
    segments[5], segments[6] = segments[6], segments[5]
    segments[7], segments[8] = segments[8], segments[7]
    frame = smtplab.read(pcap_of(tmp_path / "a.pcap", segments))
    assert replies(frame) == EXPECTED
    answered = frame[frame["kind"] == "reply"]["verb"].tolist()
    assert answered == ["CONNECT", "EHLO", "MAIL", "RCPT", "DATA", "DATA-END", "QUIT"]


def test_a_payload_split_and_delivered_backwards(tmp_path) -> None:
    conversation = Conversation()
    conversation.send(SERVER, SERVER_SAYS[0])
    start, line = conversation.seq[CLIENT], CLIENT_SAYS[0]
    for begin, end in ((12, len(line)), (5, 12), (0, 5)):  # the last piece first
        piece = line[begin:end]
        heard = conversation.seq[SERVER]  # the client has received the greeting
        conversation.segments.append((CLIENT, SERVER, start + begin, heard, ACK | PSH, piece))
    conversation.seq[CLIENT] = start + len(line)
    conversation.send(SERVER, SERVER_SAYS[1])
    frame = smtplab.read(pcap_of(tmp_path / "a.pcap", conversation.segments))
    assert frame[frame["kind"] == "command"]["argument"].tolist() == ["client.example.net"]


def test_retransmissions_and_overlaps_deliver_each_octet_once(tmp_path) -> None:
    segments = Conversation().session().segments
    side, other, seq, ack, flags, payload = segments[5]  # the pipelined MAIL/RCPT/DATA group
    overlapping = (side, other, seq + 10, ack, flags, payload[10:])  # a resend of its tail
    segments[6:6] = [segments[5], overlapping]  # the whole segment again, then its tail
    frame = smtplab.read(pcap_of(tmp_path / "a.pcap", segments))
    assert replies(frame) == EXPECTED
    assert frame[frame["kind"] == "command"]["verb"].tolist() == [
        "EHLO", "MAIL", "RCPT", "DATA", "QUIT",
    ]  # fmt: skip


def test_a_capture_that_starts_mid_connection(tmp_path) -> None:
    segments = Conversation(handshake=False).session().segments
    frame = smtplab.read(pcap_of(tmp_path / "a.pcap", segments))
    assert replies(frame) == EXPECTED  # the greeting still tells client from server
    without_greeting = [s for s in segments if s[5] != SERVER_SAYS[0]]
    frame = smtplab.read(pcap_of(tmp_path / "b.pcap", without_greeting))
    assert replies(frame) == EXPECTED[1:]
    assert "middle of this session" in frame["text"].iloc[0]


def test_a_connection_without_close_and_a_lost_segment(tmp_path) -> None:
    segments = Conversation().session(close=False).segments
    lost = next(i for i, s in enumerate(segments) if s[5] == CLIENT_SAYS[2])  # the message
    del segments[lost]
    missing = f"{len(CLIENT_SAYS[2])} octets missing"
    with pytest.warns(IngestWarning, match=missing):
        frame = smtplab.read(pcap_of(tmp_path / "a.pcap", segments))
    notes = " ".join(frame[frame["kind"] == "note"]["text"])
    assert missing in notes
    assert "capture ends before this connection closed" in notes


def test_a_reset_connection(tmp_path) -> None:
    conversation = Conversation()
    conversation.send(SERVER, SERVER_SAYS[0])
    conversation.send(CLIENT, CLIENT_SAYS[0])
    conversation.send(CLIENT, b"", RST)
    frame = smtplab.read(pcap_of(tmp_path / "a.pcap", conversation.segments))
    last = frame.iloc[-1]
    assert (last["kind"], last["sender"], last["text"]) == (
        "close",
        "client",
        "connection reset (RST)",
    )


def test_port_reuse_starts_a_new_session(tmp_path) -> None:
    first = Conversation().session().segments
    second = Conversation().session().segments  # same ports, same numbers, after the close
    frame = smtplab.read(pcap_of(tmp_path / "a.pcap", first + second))
    assert frame["session"].nunique() == 2


def test_ipv6_and_vlan_tags(tmp_path) -> None:
    v6 = Conversation(client=("2001:db8::10", 40000), server=("2001:db8::25", 25)).session()
    frame = smtplab.read(pcap_of(tmp_path / "v6.pcap", v6.segments))
    assert replies(frame) == EXPECTED and frame["server"].iloc[0] == "[2001:db8::25]:25"
    tagged = smtplab.read(pcap_of(tmp_path / "vlan.pcap", Conversation().session().segments, True))
    assert replies(tagged) == EXPECTED


def test_linux_cooked_capture(tmp_path) -> None:
    frames = []
    for segment in Conversation().session().segments:
        ip_frame = ethernet_frame(*segment)[14:]
        frames.append(struct.pack("!HHH8sH", 0, 772, 6, b"\0" * 8, 0x0800) + ip_frame)
    frame = smtplab.read(write_pcap(tmp_path / "any.pcap", frames, linktype=113))
    assert replies(frame) == EXPECTED


def test_a_connection_that_is_not_smtp_is_left_out(tmp_path) -> None:
    http = Conversation(server=("192.0.2.80", 80))
    http.send(http.client, b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n")
    http.send(http.server, b"HTTP/1.1 200 OK\r\n\r\n")
    smtp = Conversation().session().segments
    frame = smtplab.read(pcap_of(tmp_path / "mixed.pcap", http.segments + smtp))
    assert frame["session"].nunique() == 1 and replies(frame) == EXPECTED


def test_sequence_numbers_wrap_around() -> None:
    stream = Reassembly()
    stream.syn(2**32 - 3)  # data starts 2 octets before the wrap
    assert stream.add(2**32 - 2, 1.0, b"ab") == [(1.0, b"ab")]
    assert stream.add(0, 2.0, b"cd") == [(2.0, b"cd")]
    assert stream.add(2**32 - 1, 3.0, b"bcde") == [(3.0, b"e")]  # overlap across the wrap


def test_frames_that_hold_no_tcp_are_passed_over_quietly(tmp_path) -> None:
    import warnings

    path = write_pcap(tmp_path / "junk.pcap", [b"\xff" * 60, b"\x00" * 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error", IngestWarning)  # not IP at all: nothing broken
        frame = smtplab.read(path)
    assert len(frame) == 0


def test_http_with_a_password_is_not_read_as_smtp(tmp_path) -> None:
    web = Conversation(server=("192.0.2.80", 80))
    web.send(web.client, b"POST /login HTTP/1.1\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n\r\n")
    web.send(web.server, b"HTTP/1.1 200 OK\r\n\r\n")
    ftp = Conversation(server=("192.0.2.21", 21))
    ftp.send(ftp.server, b"220 ftp.example.org FTP ready\r\n")
    ftp.send(ftp.client, b"USER alice\r\n")
    ftp.send(ftp.server, b"331 password please\r\n")
    ftp.send(ftp.client, b"PASS s3cret\r\n")
    frame = smtplab.read(pcap_of(tmp_path / "other.pcap", web.segments + ftp.segments))
    assert len(frame) == 0  # neither the Authorization header nor PASS became a row


def test_a_reply_after_a_line_that_is_no_reply_is_kept(tmp_path) -> None:
    conversation = Conversation()
    conversation.send(SERVER, SERVER_SAYS[0])
    conversation.send(CLIENT, b"QUIT\r\n")
    conversation.send(SERVER, b"** debug output **\r\n221 2.0.0 bye\r\n")
    frame = smtplab.read(pcap_of(tmp_path / "a.pcap", conversation.segments))
    assert replies(frame) == [220, 221]
    assert "not an SMTP reply" in " ".join(frame[frame["kind"] == "note"]["text"])


# -- cost: what one segment costs, counted in Python lines run inside smtplab.ingest -----------


class TooMuchWork(Exception):
    pass


@contextmanager
def line_budget(limit: int) -> Iterator[list[int]]:
    """Count the Python lines run in smtplab.ingest; raise :class:`TooMuchWork` past
    ``limit``, so a quadratic reader fails at once instead of running for minutes."""
    ingest = str(Path(Reassembly.__module__.replace(".", "/")).parent)
    count = [0]

    def local(frame, event, arg):
        if event == "line":
            count[0] += 1
            if count[0] > limit:
                raise TooMuchWork(f"more than {limit} lines run")
        return local

    def calls(frame, event, arg):
        return local if ingest in frame.f_code.co_filename else None

    sys.settrace(calls)
    try:
        yield count
    finally:
        sys.settrace(None)


def test_an_early_gap_costs_each_later_segment_a_bounded_amount() -> None:
    stream, size, count = Reassembly(), 10, 20_000
    stream.syn(4_000_000_000)  # the stream wraps around 2**32 on the way
    first = 4_000_000_001
    with line_budget(100 * count) as lines:
        for n in range(1, count):  # the first segment is missing: everything waits for it
            assert stream.add((first + n * size) % 2**32, float(n), b"x" * size) == []
        delivered = stream.add(first, 0.0, b"y" * size)
    assert len(delivered) == count and b"".join(d for _, d in delivered) == (
        b"y" * size + b"x" * size * (count - 1)
    )
    assert lines[0] < 100 * count  # some 30 lines a segment, not a few per waiting segment


def test_a_gap_that_never_fills_costs_each_segment_a_bounded_amount(tmp_path) -> None:
    conversation = Conversation()
    conversation.send(SERVER, SERVER_SAYS[0])
    conversation.send(CLIENT, b"DATA\r\n")
    conversation.send(SERVER, b"354 go ahead\r\n")
    count = 20_000
    for n in range(count):
        conversation.send(CLIENT, b"line %05d\r\n" % n)
    conversation.send(CLIENT, b".\r\n")
    lost = len(conversation.segments) - count - 1  # the first line of the message
    del conversation.segments[lost]
    path = pcap_of(tmp_path / "gap.pcap", conversation.segments)
    with line_budget(400 * count), pytest.warns(IngestWarning, match="12 octets missing"):
        frame = smtplab.read(path)
    data = frame[frame["kind"] == "data"]
    assert data["size"].tolist() == [12 * (count - 1)]


def test_telling_smtp_costs_each_segment_a_bounded_amount(tmp_path) -> None:
    # One direction captured (asymmetric routing), no handshake: the sides stay unknown until
    # 64 KB have been said. Each segment must not look again at everything said before it.
    talk = Conversation(handshake=False)
    count = 20_000
    for _ in range(count):
        talk.send(CLIENT, b"abc")
    with line_budget(400 * count):
        frame = smtplab.read(pcap_of(tmp_path / "one-way.pcap", talk.segments))
    assert len(frame) == 0


# -- what clients really send ------------------------------------------------------------------


SMUGGLED = b"Subject: a\r\n\r\nhi\n.\nMAIL FROM:<x@evil.example>\n.\r\nstill\r\n"


def test_a_line_ending_in_a_bare_lf_is_a_command_with_its_reply(tmp_path) -> None:
    conversation = Conversation()
    conversation.send(SERVER, SERVER_SAYS[0])
    for said, answer in [
        (b"EHLO client.example.net\n", b"250 mx.example.org\r\n"),
        (b"MAIL FROM:<a@example.net>\nRCPT TO:<b@example.org>\r\n", b"250 OK\r\n250 OK\r\n"),
        (b"DATA\n", b"354 go ahead\r\n"),
        # Bare LFs in message data end nothing: only <CRLF>.<CRLF> ends it (no smuggling).
        (SMUGGLED + b".\r\n", b"250 OK\r\n"),
        (b"QUIT \n", b"221 bye\r\n"),
    ]:
        conversation.send(CLIENT, said)
        conversation.send(SERVER, answer)
    conversation.send(SERVER, b"", FIN | ACK)
    conversation.send(CLIENT, b"", FIN | ACK)
    frame = smtplab.read(pcap_of(tmp_path / "lf.pcap", conversation.segments))
    commands = frame[frame["kind"] == "command"]
    assert commands["verb"].tolist() == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert commands["argument"].tolist() == [
        "client.example.net", "FROM:<a@example.net>", "TO:<b@example.org>", "", "",
    ]  # fmt: skip
    answered = frame[frame["kind"] == "reply"]
    assert answered["verb"].tolist() == [
        "CONNECT", "EHLO", "MAIL", "RCPT", "DATA", "DATA-END", "QUIT",
    ]  # fmt: skip
    data = frame[frame["kind"] == "data"].iloc[0]
    assert data["size"] == len(SMUGGLED)
    # Each line that ended in a bare LF is followed by a note saying so.
    kinds = frame["kind"].tolist()
    notes = frame[frame["kind"] == "note"]
    assert len(notes) == 4 and notes["text"].str.contains("bare LF").all()
    after = [frame["verb"].iloc[kinds.index("note", i) - 1] for i in notes.index]
    assert after == ["EHLO", "MAIL", "DATA", "QUIT"]
    assert set(notes["sender"]) == {"client"}
