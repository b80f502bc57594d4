"""Reading a conversation from its bytes keeps memory bounded whatever the client sends.

:class:`~smtplab.log.wire.WireRecorder` (smtplab's clients, the capture reader, the swaks and
smtplib transcript readers) counts a message or a BDAT chunk as it arrives and keeps only the
start its row's preview shows: a 20 MB message, or ``BDAT 999999999999`` followed by 20 MB,
must not stay in memory. Memory is measured with :mod:`tracemalloc` (the peak of what Python
allocated while the octets were fed), and the rows must say the true size and line count.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtplab.ingest.capture import MAX_OPEN_CONNECTIONS, CaptureReader
from smtplab.ingest.tcp_streams import MAX_WAITING_OCTETS, MAX_WAITING_SEGMENTS
from smtplab.log.limits import PREVIEW_CHARS, preview
from smtplab.log.recorder import Recorder, Row
from smtplab.log.wire import MAX_LINE, WireRecorder
from smtplab.protocol.states import Step
from tests.ingest.test_reassembly import CLIENT, SERVER, Conversation, pcap_of

MESSAGE = 20_000_000  # octets on the wire: far more than any bound below
PIECE = 64 * 1024
#: Memory the recorder may use while it reads, however big the message: a few pieces' worth
#: of temporary copies, nothing that grows with the message.
BOUND = 1024 * 1024
# A stuffed line: every line starts with a dot the sender doubled (RFC 5321 4.5.2).
LINE = b".." + b"w" * 96 + b"\r\n"
#: Octets of a block's start that its preview depends on (a UTF-8 character has at most 4),
#: and one more: the sizes around which keeping only the start could go wrong.
HEAD = PREVIEW_CHARS * 4 + 1


def periodic(line: bytes, total: int, piece: int = PIECE) -> Iterator[bytes]:
    """``total`` octets of ``line`` repeated, in pieces of ``piece`` that cut lines anywhere,
    made one at a time (the whole stream is never in memory)."""
    cycle = line * (piece // len(line) + 2)
    for offset in range(0, total, piece):
        start = offset % len(line)
        yield cycle[start : start + min(piece, total - offset)]


def opened() -> WireRecorder:
    """A session up to the 354 of a pipelined transaction."""
    wire = WireRecorder(Recorder("w-1"))
    wire.connected(0.0)
    wire.received(b"220 mx.example.org ESMTP\r\n", 0.0)
    wire.sent(b"EHLO c.example.net\r\n", 0.0)
    wire.received(b"250-mx.example.org\r\n250-PIPELINING\r\n250 CHUNKING\r\n", 0.0)
    wire.sent(b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\n", 0.0)
    wire.received(b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n", 0.0)
    return wire


def peak_while(feed) -> int:
    """The most memory Python allocated while ``feed()`` ran, beyond what it started with."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        feed()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def rows(wire: WireRecorder) -> list[Row]:
    return wire.recorder.rows


def paired(wire: WireRecorder) -> list[tuple[str | None, int | None]]:
    """(the verb each reply answers, its code), in order."""
    return [(row.verb, row.code) for row in rows(wire) if row.kind == "reply"]


def test_a_20_mb_message_is_counted_not_kept() -> None:
    wire = opened()
    wire.sent(b"DATA\r\n", 0.0)
    wire.received(b"354 go ahead\r\n", 0.0)
    lines = MESSAGE // len(LINE)

    def feed() -> None:
        for piece in periodic(LINE, MESSAGE):
            wire.sent(piece, 1.0)
            assert len(wire.observer._out) <= MAX_LINE

    assert peak_while(feed) < BOUND
    wire.sent(b".\r\nQUIT\r\n", 2.0)
    wire.received(b"250 2.0.0 queued\r\n221 2.0.0 bye\r\n", 3.0)
    (data,) = [row for row in rows(wire) if row.kind == "data"]
    assert data.size == MESSAGE - lines  # one stuffed dot less per line
    assert data.lines == lines
    assert data.text == preview(LINE[1:] * 20)  # unstuffed, and as short as before
    assert len(data.text) <= PREVIEW_CHARS
    assert paired(wire)[-2:] == [(Step.DATA_END, 250), ("QUIT", 221)]


def test_a_20_mb_bdat_chunk_is_counted_not_kept_and_later_commands_pair() -> None:
    wire = opened()
    wire.sent(f"BDAT {MESSAGE} LAST\r\n".encode(), 0.0)
    line = b"chunk line\r\n" + b"v" * 88

    def feed() -> None:
        for piece in periodic(line, MESSAGE):
            wire.sent(piece, 1.0)
            assert len(wire.observer._out) <= MAX_LINE

    assert peak_while(feed) < BOUND
    wire.sent(b"QUIT\r\n", 2.0)
    wire.received(b"250 2.0.0 queued\r\n221 2.0.0 bye\r\n", 3.0)
    (chunk,) = [row for row in rows(wire) if row.verb == "BDAT" and row.kind == "command"]
    assert (chunk.size, chunk.lines) == (MESSAGE, MESSAGE // len(line))
    assert chunk.text == preview(line * 20)
    assert paired(wire)[-2:] == [("BDAT", 250), ("QUIT", 221)]


def test_bdat_999999999999_followed_by_20_mb_stays_bounded_and_is_noted_at_the_close() -> None:
    wire = opened()
    wire.sent(b"BDAT 999999999999 LAST\r\n", 0.0)

    def feed() -> None:
        for piece in periodic(b"x" * 100, MESSAGE):
            wire.sent(piece, 1.0)

    assert peak_while(feed) < BOUND
    wire.closed(2.0, "server", "connection reset (RST)")
    note, close = rows(wire)[-2:]
    assert note.kind == "note" and note.sender == "client"
    assert f"{MESSAGE} of its 999999999999 octets came" in note.text
    assert close.kind == "close"


def test_a_message_cut_short_by_the_close_is_noted_with_what_came() -> None:
    wire = opened()
    wire.sent(b"DATA\r\n", 0.0)
    wire.received(b"354 go ahead\r\n", 0.0)
    wire.sent(b"Subject: cut\r\n\r\nbody\r\n", 1.0)
    wire.closed(2.0, "server")
    note = rows(wire)[-2]
    assert note.kind == "note" and "22 octets (3 lines) came, never its final dot" in note.text


def test_a_capture_of_bdat_999999999999_and_20_mb_is_read_in_bounded_memory(tmp_path) -> None:
    talk = Conversation()
    talk.send(SERVER, b"220 mx.example.org ESMTP\r\n")
    talk.send(CLIENT, b"EHLO c.example.net\r\n")
    talk.send(SERVER, b"250-mx.example.org\r\n250 CHUNKING\r\n")
    talk.send(CLIENT, b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\n")
    talk.send(SERVER, b"250 OK\r\n250 OK\r\n")
    talk.send(CLIENT, b"BDAT 999999999999 LAST\r\n")
    for piece in periodic(b"y" * 100, MESSAGE, 60_000):  # a segment fits in an IP packet
        talk.send(CLIENT, piece)
    path = pcap_of(tmp_path / "hostile.pcap", talk.segments)
    del talk
    reader = CaptureReader("hostile.pcap", "h")
    with path.open("rb") as stream:
        peak = peak_while(lambda: reader.read(stream))
    assert peak < 2 * BOUND
    (recorder,) = reader.recorders
    notes = [row.text for row in recorder.rows if row.kind == "note"]
    assert any(f"{MESSAGE} of its 999999999999 octets came" in text for text in notes)
    assert notes[-1] == "the capture ends before this connection closed"


# -- what a capture's reassembly keeps waiting ------------------------------------------------

SEGMENT = 60_000  # a segment fits in an IP packet
#: What a capture reader may allocate while it reads a connection: what may wait behind a
#: gap (MAX_WAITING_OCTETS), and room for the copies made while reading.
CAPTURE_BOUND = MAX_WAITING_OCTETS + 2 * BOUND


def read_bounded(path) -> tuple[CaptureReader, Recorder, int]:
    """The capture at ``path`` read, its one session's recorder, and the memory peak."""
    reader = CaptureReader(path.name, "h")
    with path.open("rb") as stream:
        peak = peak_while(lambda: reader.read(stream))
    (recorder,) = reader.recorders
    return reader, recorder, peak


def until_354(talk: Conversation) -> Conversation:
    talk.send(SERVER, b"220 mx.example.org ESMTP\r\n")
    talk.send(CLIENT, b"EHLO c.example.net\r\n")
    talk.send(SERVER, b"250-mx.example.org\r\n250 CHUNKING\r\n")
    talk.send(CLIENT, b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\n")
    talk.send(SERVER, b"250 OK\r\n250 OK\r\n")
    return talk


def test_a_gap_that_never_fills_is_given_up_on_before_the_rest_piles_up(tmp_path) -> None:
    # A client segment the capture missed, and 20 MB after it that the server does not
    # acknowledge until the end (no proof of the loss): the rest of the stream must not wait
    # in memory behind the gap.
    talk = until_354(Conversation())
    talk.send(CLIENT, f"BDAT {MESSAGE + 1000} LAST\r\n".encode())
    talk.send(CLIENT, b"g" * 1000)
    missed = len(talk.segments) - 1
    for piece in periodic(b"z" * 99 + b"\n", MESSAGE, SEGMENT):
        talk.send(CLIENT, piece)
    talk.send(SERVER, b"250 2.0.0 queued\r\n")
    talk.send(CLIENT, b"QUIT\r\n")
    talk.send(SERVER, b"221 2.0.0 bye\r\n")
    segments = talk.segments[:missed] + talk.segments[missed + 1 :]
    path = pcap_of(tmp_path / "gap.pcap", segments)
    del talk, segments
    reader, recorder, peak = read_bounded(path)
    assert peak < CAPTURE_BOUND
    rows = recorder.rows
    (note,) = [row for row in rows if row.kind == "note" and "given up on" in row.text]
    assert note.text.startswith("1000 octets missing from the capture were skipped (client")
    assert f"more than {MAX_WAITING_OCTETS} octets or {MAX_WAITING_SEGMENTS}" in note.text
    (chunk,) = [row for row in rows if row.kind == "command" and row.verb == "BDAT"]
    assert chunk.size == MESSAGE + 1000
    replies = [(row.verb, row.code) for row in rows if row.kind == "reply"]
    assert replies[-2:] == [("BDAT", 250), ("QUIT", 221)]
    assert any("given up on" in what for what in reader.problems.counts)


def test_data_waiting_for_a_reply_never_captured_is_bounded(tmp_path) -> None:
    # The 354 is missing from the capture, and the client's 20 MB message acknowledges it:
    # every segment of the message waits for it, and the server sends nothing more before
    # the message ends, so nothing proves it lost until then.
    talk = until_354(Conversation())
    talk.send(CLIENT, b"DATA\r\n")
    talk.send(SERVER, b"354 go ahead\r\n")
    missed = len(talk.segments) - 1
    for piece in periodic(LINE, MESSAGE, SEGMENT):
        talk.send(CLIENT, piece)
    talk.send(CLIENT, b".\r\n")
    talk.send(SERVER, b"250 2.0.0 queued\r\n")
    talk.send(CLIENT, b"QUIT\r\n")
    talk.send(SERVER, b"221 2.0.0 bye\r\n")
    segments = talk.segments[:missed] + talk.segments[missed + 1 :]
    path = pcap_of(tmp_path / "no354.pcap", segments)
    del talk, segments
    reader, recorder, peak = read_bounded(path)
    assert peak < CAPTURE_BOUND
    rows = recorder.rows
    (note,) = [row for row in rows if row.kind == "note" and "given up on" in (row.text or "")]
    assert note.text.startswith("14 octets missing from the capture were skipped (server")
    assert note.text.endswith(": the replies to DATA")
    (data,) = [row for row in rows if row.kind == "data"]  # still read as a message
    assert (data.size, data.lines) == (MESSAGE - MESSAGE // len(LINE), MESSAGE // len(LINE))
    replies = [(row.verb, row.code) for row in rows if row.kind == "reply"]
    assert replies[-2:] == [(Step.DATA_END, 250), ("QUIT", 221)]
    assert any("given up on" in what for what in reader.problems.counts)


def test_connections_that_never_close_are_not_all_kept_open(tmp_path) -> None:
    # More connections than the reader follows at once, none of them closed (a port scan,
    # or a capture that missed the closes): the quietest are ended early, and said so.
    extra = 100
    segments = []
    for number in range(MAX_OPEN_CONNECTIONS + extra):
        talk = Conversation(client=(CLIENT[0], 20_000 + number))
        talk.send(SERVER, b"220 mx.example.org ESMTP\r\n")
        talk.send(talk.client, b"EHLO c.example.net\r\n")
        segments += talk.segments
        if number == 0:
            first = talk
    first.send(first.client, b"QUIT\r\n")  # the first connection speaks again, at the end
    first.send(SERVER, b"221 2.0.0 bye\r\n")
    segments += first.segments[-2:]
    reader = CaptureReader("many.pcap", "m")
    with pcap_of(tmp_path / "many.pcap", segments).open("rb") as stream:
        reader.read(stream)
    dropped = [
        recorder
        for recorder in reader.recorders
        if any("stopped following" in (row.text or "") for row in recorder.rows)
    ]
    assert len(dropped) == MAX_OPEN_CONNECTIONS // 10
    assert dropped[0].client == f"{CLIENT[0]}:20000"
    again = reader.recorders[-1]  # what the first connection said after it was dropped
    assert again.client == f"{CLIENT[0]}:20000"
    assert [row.verb for row in again.rows if row.kind in ("command", "reply")] == ["QUIT"] * 2
    assert len(reader.recorders) == MAX_OPEN_CONNECTIONS + extra + 1


# -- the same bytes, however they are split --------------------------------------------------

# Octets that matter to the reader: line ends, dots, and a two-octet UTF-8 letter a split
# may cut in half.
ALPHABET = [b"\r", b"\n", b".", b"a", b"\xc3\xa9", b"\r\n", b"\r\n.", b"\r\n..", b"\r\n.\r"]
content = st.lists(st.sampled_from(ALPHABET), max_size=400).map(b"".join)


def record(stream: bytes, cuts: list[int]) -> list[Row]:
    """The rows of a session whose client sends ``stream``, cut at ``cuts``."""
    wire = opened()
    wire.sent(b"DATA\r\n", None)
    wire.received(b"354 go ahead\r\n", None)
    bounds = [0, *sorted(cut % (len(stream) + 1) for cut in cuts), len(stream)]
    for start, end in pairwise(bounds):
        wire.sent(stream[start:end], None)
    wire.received(b"250 2.0.0 queued\r\n", None)
    return rows(wire)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=content, chunk=content, cuts=st.lists(st.integers(0, 10_000), max_size=30))
def test_the_same_bytes_give_the_same_rows_however_they_are_split(
    body: bytes, chunk: bytes, cuts: list[int]
) -> None:
    stream = body + b"\r\n.\r\n" + f"BDAT {len(chunk)} LAST\r\n".encode() + chunk + b"QUIT\r\n"
    whole = record(stream, [])
    assert record(stream, cuts) == whole
    assert record(stream, list(range(len(stream)))) == whole  # one octet at a time
    # The message row says what reading the whole message at once says (RFC 5321 4.5.2):
    # it ends at the first <CRLF>.<CRLF>, counting the line end before DATA's first line.
    end = (b"\r\n" + stream).find(b"\r\n.\r\n")
    unstuffed = stream[:end].replace(b"\r\n.", b"\r\n")
    unstuffed = unstuffed[1:] if unstuffed.startswith(b".") else unstuffed
    (data,) = [row for row in whole if row.kind == "data"]
    assert (data.size, data.lines, data.text) == (
        len(unstuffed),
        unstuffed.count(b"\r\n"),
        preview(unstuffed),
    )


@pytest.mark.parametrize("size", [0, 1, HEAD - 1, HEAD, HEAD + 1, 10 * HEAD])
def test_a_chunk_of_any_size_gets_the_preview_of_all_its_octets(size: int) -> None:
    chunk = (b"l\xc3\xa9ine\r\n" * size)[:size]
    wire = opened()
    wire.sent(f"BDAT {size} LAST\r\n".encode() + chunk + b"QUIT\r\n", None)
    (row,) = [row for row in rows(wire) if row.verb == "BDAT" and row.kind == "command"]
    expected = preview(chunk) if chunk else None
    assert (row.size, row.lines, row.text) == (size, chunk.count(b"\r\n"), expected)
