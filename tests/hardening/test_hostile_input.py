"""Hostile input to the sans-IO readers: linear work, bounded memory, a clear reply.

The amount of work is measured structurally, not by the clock: the input buffer counts the
octets its ``find``/``rfind`` searches look at, and the normalize reader's break search is
counted the same way. Each octet received may be searched a bounded number of times.
"""

from __future__ import annotations

import pytest

from smtplab.log.recorder import Recorder
from smtplab.log.wire import WireRecorder
from smtplab.protocol import LineEndings, ServerConfig, framing
from smtplab.protocol.framing import CommandLineReader, DataReader, InputBuffer, Problem
from tests.conftest import EHLO, TRANSACTION, Harness, codes

SIZE = 256 * 1024
PIECES = (SIZE, 4096, 64)  # one piece, then ever smaller ones
# Per octet received: what one search pass, plus the CR kept back at a piece's end, costs.
WORK_PER_OCTET = 3


class CountingBuffer(bytearray):
    """A bytearray that adds up the octets its searches look at."""

    scanned = 0

    def find(self, sub, start=0, end=None):  # type: ignore[override]
        stop = len(self) if end is None else min(end, len(self))
        found = super().find(sub, start, stop)
        CountingBuffer.scanned += (found + len(sub) if found >= 0 else stop) - start
        return found

    def rfind(self, sub, start=0, end=None):  # type: ignore[override]
        stop = len(self) if end is None else min(end, len(self))
        found = super().rfind(sub, start, stop)
        CountingBuffer.scanned += stop - (found if found >= 0 else start)
        return found


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch):
    """Count the octets searched, by the buffer's methods and by the break search."""
    CountingBuffer.scanned = 0
    search = getattr(framing, "find_line_break", None)

    def counting_break(data, start):
        found = search(data, start)
        CountingBuffer.scanned += (found + 1 if found >= 0 else len(data)) - start
        return found

    monkeypatch.setattr(framing, "find_line_break", counting_break, raising=False)
    return CountingBuffer


def counted_buffer() -> InputBuffer:
    buf = InputBuffer()
    buf.data = CountingBuffer()
    return buf


def pieces(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


HOSTILE = {
    # The shapes: bare CRs in reject mode, bare LFs in keep mode ...
    ("reject", "cr"): b"\r" * SIZE,
    ("keep", "lf"): b"\n" * SIZE,
    ("keep", "cr"): b"\r" * SIZE,
    # ... and their siblings: every bare line end in every mode, and letters to compare.
    ("reject", "lf"): b"\n" * SIZE,
    ("normalize", "cr"): b"\r" * SIZE,
    ("normalize", "lf"): b"\n" * SIZE,
    ("reject", "mixed"): b"a\rb\n" * (SIZE // 4),
    ("keep", "letters"): b"a" * SIZE,
}


@pytest.mark.parametrize(("mode", "shape"), sorted(HOSTILE))
@pytest.mark.parametrize("piece", PIECES)
def test_command_reader_searches_each_octet_a_bounded_number_of_times(
    counted, mode: str, shape: str, piece: int
) -> None:
    reader = CommandLineReader(512, LineEndings(mode))
    buf = counted_buffer()
    lines = 0
    for part in pieces(HOSTILE[mode, shape], piece):
        buf.feed(part)
        while reader.next_line(buf) is not None:
            lines += 1
        assert len(buf.data) <= 512  # memory stays bounded as it arrives
    assert counted.scanned <= WORK_PER_OCTET * SIZE, f"{counted.scanned} octets searched"


@pytest.mark.parametrize("mode", ["reject", "normalize", "keep"])
@pytest.mark.parametrize("shape", ["\r", "\n", "a"])
@pytest.mark.parametrize("piece", PIECES)
def test_data_reader_searches_each_octet_a_bounded_number_of_times_and_stays_bounded(
    counted, mode: str, shape: str, piece: int
) -> None:
    reader = DataReader(1000, None, LineEndings(mode))
    buf = counted_buffer()
    for part in pieces(shape.encode() * SIZE, piece):
        buf.feed(part)
        assert reader.read(buf) is None
        assert len(buf.data) <= 1002  # an unfinished line is taken as it arrives
    assert counted.scanned <= WORK_PER_OCTET * SIZE, f"{counted.scanned} octets searched"
    buf.feed(b"\r\n.\r\n")
    end = reader.read(buf)
    assert end is not None
    expected = {"\r": Problem.BARE_CR, "\n": Problem.BARE_LF, "a": Problem.TOO_LONG}[shape]
    if mode == "keep" or (mode == "normalize" and shape != "a"):
        expected = Problem.TOO_LONG if mode == "keep" else None
    assert end.problem is expected
    if expected is None:  # normalize: each bare line end is a line end
        assert end.content == b"\r\n" * (SIZE + 1) and end.line_count == SIZE + 1
    else:
        assert end.content == b""  # nothing of a refused message is kept


@pytest.mark.parametrize("mode", ["reject", "keep"])
@pytest.mark.parametrize("piece", [SIZE, 4096, 64])
def test_an_overlong_command_of_bare_line_ends_gets_500_5_5_2_and_the_session_goes_on(
    mode: str, piece: int
) -> None:
    bare = b"\r" if mode == "reject" else b"\n"
    harness = Harness(ServerConfig(line_endings=LineEndings(mode)))
    assert codes(harness.replies()) == ["220"]
    assert codes(harness.feed(EHLO)) == ["250"]
    stream = b"NOOP " + bare * SIZE + b"\r\n"
    replies = harness.feed(*pieces(stream, piece))
    assert codes(replies) == ["500 5.5.2"] and "too long" in replies[0].text
    assert len(harness.server.conn._in.data) == 0
    assert codes(harness.feed(b"NOOP\r\n")) == ["250 2.0.0"]
    rows = harness.recorder.tuples
    assert max(len(str(row)) for row in rows) < 2000  # the transcript keeps a short prefix


def test_a_message_of_bare_crs_is_read_to_its_end_and_refused_once() -> None:
    harness = Harness()
    assert codes(harness.feed(EHLO + TRANSACTION))[-1] == "354"
    for part in pieces(b"\r" * SIZE, 64):
        assert harness.feed(part) == []
    assert codes(harness.feed(b"\r\n.\r\n")) == ["554 5.6.0"]


@pytest.mark.parametrize("piece", [SIZE, 4096, 64])
def test_wire_recorder_reads_a_line_without_end_in_linear_work_and_bounded_memory(
    piece: int,
) -> None:
    wire = WireRecorder(Recorder("c-1"))
    wire.observer._out = CountingBuffer()
    CountingBuffer.scanned = 0
    for part in pieces(b"X" * SIZE, piece):
        wire.sent(part, None)
        assert len(wire.observer._out) <= 2048
    assert CountingBuffer.scanned <= WORK_PER_OCTET * SIZE
    wire.sent(b"\r\nNOOP\r\n", None)
    commands = [row for row in wire.recorder.tuples if row[4] == "command"]
    assert [row[5] for row in commands][-1] == "NOOP"
    assert len(commands) == 2 and len(commands[0][5]) <= 2048  # the middle was dropped
