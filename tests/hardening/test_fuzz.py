"""Fuzzing: hostile bytes for the server, the client and the readers, bounded in size and time.

Each property feeds arbitrary bytes (built from pieces that look like SMTP, runs of bare CR and
LF, long repeats and random octets) split at arbitrary points, and asserts two things: nothing
is raised but the project's documented errors, and every buffer facing the peer stays under its
limit. The examples are bounded (``max_examples``, input sizes) so the suite stays quick.

Split invariance of the server's answers is tested in a file of its own; here only "never
raises, stays bounded" is checked.
"""

from __future__ import annotations

import bz2
import gzip
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import smtplab
from smtplab.ingest.reader import IngestError
from smtplab.protocol import LineEndings, ServerConfig
from smtplab.protocol.client import ClientConnection
from smtplab.protocol.errors import RemoteProtocolError
from smtplab.protocol.replies import MAX_REPLY_LINE, MAX_REPLY_LINES, ReplyParser
from smtplab.protocol.states import State
from tests.conftest import Harness

FIXTURES = Path(__file__).parents[1] / "fixtures"
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _repeated(pieces: st.SearchStrategy[bytes], most: int) -> st.SearchStrategy[bytes]:
    """Streams of ``pieces``, each repeated up to ``most`` times (long runs reach limits)."""
    return st.lists(st.tuples(pieces, st.integers(1, most)), max_size=8).map(
        lambda parts: b"".join(piece * times for piece, times in parts)
    )


def _split(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` cut into chunks of the given sizes, used in turn (never an empty chunk)."""
    chunks, start, turn = [], 0, 0
    while start < len(data):
        size = sizes[turn % len(sizes)]
        chunks.append(data[start : start + size])
        start += size
        turn += 1
    return chunks


splits = st.lists(st.integers(1, 70_000), min_size=1, max_size=6)


# -- the client: the reply parser and the sans-IO client connection --------------------------

reply_pieces = st.one_of(
    st.sampled_from(
        [
            b"220 mx ESMTP\r\n",
            b"250-",
            b"250 ",
            b"250",
            b"354 go\r\n",
            b"221 2.0.0 bye\r\n",
            b"250-PIPELINING\r\n",
            b"250 2.1.0 OK\r\n",
            b"421 4.3.2 bye\r\n",
            b"abc ",
            b"5",
            b"\r\n",
            b"\r",
            b"\n",
            b" ",
            b"-",
            b"x" * 100,
            b"\xff\xfe",
            b"\x00",
            b"2.0.0 ",
        ]
    ),
    st.binary(max_size=40),
)
server_bytes = _repeated(reply_pieces, 3000)


def _drain(parser: ReplyParser) -> int:
    """Read every reply the parser can give now, as a client that reads on after an error
    does (e.g. a conformance probe); returns how many errors it raised."""
    errors = 0
    for _ in range(100_000):  # a bound, so that a parser that never settles fails, not hangs
        try:
            if parser.next_reply() is None:
                return errors
        except RemoteProtocolError:
            errors += 1
    raise AssertionError("the parser never ran out of replies")


@FUZZ
@given(server_bytes, splits)
@example(b"250-" + b"x" * 100_000 + b"\r\n", [70_000])  # one line over MAX_REPLY_LINE
@example(b"\r" * 100_000, [1])
def test_the_reply_parser_raises_only_remote_errors_and_stays_bounded(
    data: bytes, sizes: list[int]
) -> None:
    parser = ReplyParser()
    for chunk in _split(data, sizes):
        parser.feed(chunk)
        _drain(parser)
        # After the parser has said all it can, what it keeps is less than one line.
        assert len(parser._buffer) <= MAX_REPLY_LINE


@FUZZ
@given(server_bytes, splits)
@example(b"250-PIPELINING\r\n" * 5000, [70_000])
def test_the_reply_parser_keeps_a_bounded_number_of_lines(data: bytes, sizes: list[int]) -> None:
    parser = ReplyParser()
    for chunk in _split(data, sizes):
        parser.feed(chunk)
        _drain(parser)
        assert len(parser._lines) <= MAX_REPLY_LINES  # the lines of one reply in progress


client_states = st.sampled_from(["greeting", "ehlo", "data"])


def _client(where: str) -> ClientConnection:
    """A client waiting for the greeting, for the EHLO reply, or in DATA (its message sent)."""
    client = ClientConnection()
    if where == "greeting":
        return client
    client.receive_data(b"220 mx.example.org ESMTP\r\n")
    client.next_event()
    client.ehlo("client.example.net")
    if where == "ehlo":
        return client
    client.receive_data(b"250-mx.example.org\r\n250 PIPELINING\r\n")
    client.next_event()
    client.mail("alice@example.net")
    client.rcpt("bob@example.org")
    client.data()
    client.receive_data(b"250 OK\r\n250 OK\r\n354 go\r\n")
    for _ in range(3):
        client.next_event()
    client.send_message(b"Subject: x\r\n\r\nhello\r\n")
    return client


@FUZZ
@given(server_bytes, splits, client_states, st.booleans())
def test_the_client_raises_only_remote_errors_and_stays_bounded(
    data: bytes, sizes: list[int], where: str, close: bool
) -> None:
    client = _client(where)
    client.data_to_send()
    waiting = len(client.waiting)
    for chunk in [*_split(data, sizes), *([b""] if close else [])]:
        client.receive_data(chunk)
        for _ in range(100_000):
            try:
                event = client.next_event()
            except RemoteProtocolError:
                continue  # a client may give up here; reading on must be safe too
            if event is smtplab.protocol.NEED_DATA or client.state is State.CLOSED:
                break
        else:
            raise AssertionError("the client never ran out of events")
        assert len(client.waiting) <= waiting  # replies never add expectations
        if client.state is State.CLOSED:
            break  # 221, 421 or the end: a driver reads no more
        assert len(client._parser._buffer) <= MAX_REPLY_LINE
    assert client.data_to_send() == b""  # received bytes never make the client send


# -- the server: arbitrary bytes never raise, the session stays bounded ------------------------

command_pieces = st.one_of(
    st.sampled_from(
        [
            b"EHLO client.example.net\r\n",
            b"HELO x\r\n",
            b"MAIL FROM:<alice@example.net>\r\n",
            b"RCPT TO:<bob@example.org>\r\n",
            b"DATA\r\n",
            b"BDAT 5\r\n",
            b"BDAT 300 LAST\r\n",
            b"BDAT 99999999999\r\n",
            b"AUTH LOGIN\r\n",
            b"AUTH PLAIN AHVzZXIAcGFzcw==\r\n",
            b"dXNlcg==\r\n",
            b"STARTTLS\r\n",
            b"RSET\r\n",
            b"NOOP\r\n",
            b"VRFY bob\r\n",
            b".\r\n",
            b"..\r\n",
            b"\r\n.\r\n",
            b"\n.\n",
            b"\r",
            b"\n",
            b"\r\n",
            b".",
            b"x" * 200,
            b"\x00",
            b"\xc3\xa9",
            b"\xff",
            b"QUIT\r\n",
        ]
    ),
    st.binary(max_size=40),
)
client_bytes = _repeated(command_pieces, 2000)

#: Small limits, so that the examples reach them.
SMALL = {"max_message_size": 20_000}


def _input_bound(config: ServerConfig, harness: Harness) -> int:
    """The most unparsed input the server may hold between two reads (RFC 5321 4.5.3.1)."""
    if harness.server.conn.state is State.DATA and config.line_endings is LineEndings.NORMALIZE:
        # Bare line ends split the pending line: bounded by the message size limit.
        return (config.max_message_size or 0) + config.max_text_line + 2
    return max(config.max_command_line, config.max_text_line + 2) + 1


@FUZZ
@given(client_bytes, splits, st.sampled_from(list(LineEndings)), st.booleans())
@example(b"BDAT 30000 LAST\r\n" + b"x" * 30_000, [7000], LineEndings.REJECT, False)
@example(b"DATA\r\n", [1], LineEndings.REJECT, False)  # DATA before MAIL: refused, no data mode
@example(b"\r" * 100_000 + b"\r\n", [4096], LineEndings.REJECT, True)
@example(b"\n" * 100_000 + b"\r\n", [4096], LineEndings.KEEP, True)
def test_arbitrary_bytes_never_raise_and_the_session_stays_bounded(
    data: bytes, sizes: list[int], endings: LineEndings, close: bool
) -> None:
    config = ServerConfig(line_endings=endings, **SMALL)
    harness = Harness(config)
    harness.replies()
    for chunk in _split(data, sizes):
        harness.server.receive(chunk)
        for reply in harness.replies():
            assert 200 <= reply.code <= 599
        conn = harness.server.conn
        if not harness.server.closed:  # a closed session reads nothing more
            assert len(conn._in.data) <= _input_bound(config, harness)
        if conn._data is not None:  # a message being read stays within the size limit
            assert sum(map(len, conn._data._parts)) <= config.max_message_size
        if conn._chunks is not None:
            assert conn._chunks.size <= config.max_message_size
    if close:
        harness.server.receive(b"")
        harness.replies()
    assert harness.recorder.tuples[-1][4] in ("close", "reply", "command", "note", "data")
    for message in harness.store.messages:
        assert len(message.content) <= config.max_message_size + 1000  # + Received:


ROW_TEXT_LIMIT = 4096  # generous: the previews the issue asks for are a few hundred characters


@FUZZ
@given(client_bytes, splits, st.sampled_from(list(LineEndings)))
@example(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<bob@example.org>\r\nBDAT 15000 LAST\r\n"
         + b"y" * 15_000, [70_000], LineEndings.REJECT)  # fmt: skip
def test_every_row_the_server_records_is_bounded(
    data: bytes, sizes: list[int], endings: LineEndings
) -> None:
    harness = Harness(ServerConfig(line_endings=endings, **SMALL))
    for chunk in _split(data, sizes):
        harness.server.receive(chunk)
    harness.server.receive(b"")
    for row in harness.recorder.tuples:
        argument, text = row[6], row[9]
        assert argument is None or len(argument) <= ROW_TEXT_LIMIT, row[:6]
        assert text is None or len(text) <= ROW_TEXT_LIMIT, row[:6]


# -- the readers: broken files get the documented error, never a deep traceback --------------

FIXTURE_NAMES = ["smtp.pcap", "smtp.pcapng", "bare-lf.pcapng", "postfix.log", "swaks.txt",
                 "smtplib-debug1.txt", "smtplib-debug2.txt", "exim-mainlog-all.log",
                 "exim-rejectlog.log", "sendmail.log", "zeek-smtp.log",
                 "zeek-smtp.json", "exchange-tracking.log",
                 "m365-message-trace.csv"]  # fmt: skip
SUFFIXES = [".log", ".pcap", ".pcapng", ".txt", ".gz"]


def _read(name: str, content: bytes) -> None:
    """``smtplab.read`` on ``content`` saved as ``name``: a frame, or IngestError naming it."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / name
        path.write_bytes(content)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", smtplab.IngestWarning)
            try:
                frame = smtplab.read(path, year=2026)
            except IngestError as error:
                assert name in str(error)  # the error names the file
                return
        assert list(frame.columns)[:3] == ["session", "seq", "time"]


log_pieces = st.one_of(
    st.sampled_from(
        [
            b"Nov 28 10:00:00 mx postfix/smtpd[1]: connect from a[192.0.2.1]\n",
            b"Nov 28 10:00:01 mx postfix/smtpd[1]: disconnect from a[192.0.2.1] commands=0\n",
            b"2026-11-28T10:00:00.000000+00:00 mx postfix/smtpd[2]: ABC: client=a[192.0.2.1]\n",
            b"=== Trying 127.0.0.1:25...\n",
            b" -> EHLO x\n",
            b"<-  250 OK\n",
            b"send: 'EHLO x\\r\\n'\n",
            b"reply: b'250 OK\\r\\n'\n",
            b"2026-12-05 22:04:03.979 [19673] SMTP connection from [127.0.0.1]:5 I=[127.0.0.1]:25"
            b" (TCP/IP connection count = 1)\n",
            b"2026-12-05 22:04:04 H=(x) [127.0.0.1]:5 F=<a@b> rejected RCPT <c@d>: no\n",
            b"2026-12-05 22:04:04 1xZxrL-00056I-1o <= a@b H=(x) [127.0.0.1]:5 P=esmtp S=5\n",
            b"2026-12-05 22:04:05 1xZxrL-00056I-1o ** c@d R=r: failed\n",
            b"2026-12-05 22:04:06 no MAIL in SMTP connection from [127.0.0.1]:5 C=EHLO,QUIT\n",
            b"\xa1\xb2\xc3\xd4",
            b"\n\r\n\x00",
            b"\x1f\x8b\x08\x00",
        ]
    ),
    st.binary(max_size=60),
)


GZIP_MAGIC = b"\x1f\x8b"
#: A gzip header (deflate, no name, no time) whose stream is not deflate data.
CORRUPT_GZIP = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 50


@FUZZ
@given(_repeated(log_pieces, 50), st.sampled_from(SUFFIXES))
def test_reading_arbitrary_bytes_gives_a_frame_or_an_ingest_error(data: bytes, suffix: str) -> None:
    if data.startswith(GZIP_MAGIC):
        data = b"#" + data  # gzip-shaped input: the test below
    _read(f"fuzz{suffix}", data)


@FUZZ
@given(_repeated(log_pieces, 50), st.sampled_from(SUFFIXES))
@example(CORRUPT_GZIP[10:], ".log")
def test_reading_arbitrary_gzip_data_gives_a_frame_or_an_ingest_error(
    data: bytes, suffix: str
) -> None:
    _read(f"fuzz{suffix}", CORRUPT_GZIP[:10] + data)


def _mutated(content: bytes, data: st.DataObject) -> bytes:
    """``content`` truncated (maybe) and with up to six bits flipped."""
    if data.draw(st.booleans()):
        content = content[: data.draw(st.integers(0, len(content)))]
    flips = data.draw(st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 7)), max_size=6))
    buffer = bytearray(content)
    for position, bit in flips:
        if buffer:
            buffer[position % len(buffer)] ^= 1 << bit
    return bytes(buffer)


def test_the_fixtures_read_cleanly() -> None:
    # The mutations below start from files that read: a failure there is the mutation's.
    for name in FIXTURE_NAMES:
        assert len(smtplab.read(FIXTURES / name, year=2026)) > 0, name


@FUZZ
@given(st.sampled_from(FIXTURE_NAMES), st.data())
def test_a_mutated_fixture_gives_a_frame_or_an_ingest_error(name: str, data: st.DataObject) -> None:
    content = _mutated((FIXTURES / name).read_bytes(), data)
    if content.startswith(GZIP_MAGIC):
        content = b"#" + content  # flipped into gzip's magic: the test below
    _read(name, content)


@FUZZ
@given(st.sampled_from(FIXTURE_NAMES), st.data())
def test_a_mutated_gzipped_fixture_gives_a_frame_or_an_ingest_error(
    name: str, data: st.DataObject
) -> None:
    packed = gzip.compress((FIXTURES / name).read_bytes(), mtime=0)
    _read(name + ".gz", _mutated(packed, data))


def test_a_gzip_with_a_corrupt_stream_gives_an_ingest_error() -> None:
    _read("postfix.log.gz", CORRUPT_GZIP)


def test_a_compressed_file_of_another_kind_gives_an_ingest_error() -> None:
    _read("postfix.log.bz2", bz2.compress((FIXTURES / "postfix.log").read_bytes()))


def test_a_zeek_log_whose_fields_header_lost_uid_gets_an_error_naming_a_line(tmp_path) -> None:
    """Found by the fuzzer: a mutated '#fields' header without 'uid' raised KeyError."""
    original = (FIXTURES / "zeek-smtp.log").read_text()
    broken = tmp_path / "smtp.log"
    broken.write_text(original.replace("\tuid\t", "\tuix\t", 1))
    with pytest.raises(IngestError, match=r"smtp\.log line \d+: not a Zeek smtp\.log line"):
        smtplab.read(broken, format="zeek")  # no line left to read: an error naming one
