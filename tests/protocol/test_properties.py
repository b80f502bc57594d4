"""Property tests: round trips and "no input makes the server raise or end data early"."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smtplab.protocol import LineEndings, Reply, ServerConfig, dot_stuff, parse_reply
from smtplab.protocol.errors import RemoteProtocolError
from smtplab.protocol.framing import DataReader, InputBuffer
from smtplab.protocol.replies import ReplyParser
from tests.conftest import EHLO, TRANSACTION, Harness, codes

lines = st.lists(
    st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=12
)


@given(lines)
def test_dot_stuffing_round_trips(message_lines: list[bytes]) -> None:
    # RFC 5321 4.5.2: what the client stuffs, the server unstuffs to the same content.
    content = b"".join(line + b"\r\n" for line in message_lines)
    wire = dot_stuff(content)
    reader = DataReader(1000, None, LineEndings.REJECT)
    buffer = InputBuffer()
    buffer.feed(wire + b"NEXT\r\n")
    end = reader.read(buffer)
    assert end is not None and end.problem is None
    assert end.content == content
    assert bytes(buffer.data) == b"NEXT\r\n"  # nothing past the final dot was consumed


reply_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=40
).filter(lambda t: not t.startswith((" ",)))


@given(
    st.integers(200, 559).filter(lambda c: c % 100 // 10 <= 5),
    st.lists(reply_text, min_size=1, max_size=4),
    st.one_of(st.none(), st.tuples(st.integers(0, 7), st.integers(0, 99))),
)
def test_reply_round_trips(code: int, text_lines: list[str], detail) -> None:
    if code // 100 == 3:
        detail = None  # RFC 3463 has no class 3
    enhanced = None if detail is None else f"{str(code)[0]}.{detail[0]}.{detail[1]}"
    if enhanced is None:  # text that looks like an enhanced code would be read as one
        text_lines = [t for t in text_lines if not t[:1].isdigit()] or ["x"]
    reply = Reply(code, "\n".join(text_lines), enhanced)
    parsed = parse_reply(reply.to_bytes())
    assert parsed.code == reply.code
    assert parsed.enhanced == reply.enhanced
    assert parsed.text == reply.text


reply_lines = st.lists(
    st.tuples(
        st.sampled_from([b"250", b"250", b"451", b"999", b"25"]),
        st.sampled_from([b" ", b"-", b"", b"x"]),
        st.sampled_from(
            [b"", b"OK", b"2.0.0 OK", b"2.0.0", b"4.7.1 later", b"caf\xc3\xa9", b"a\rb"]
        ),
        st.sampled_from([b"\r\n", b"\n"]),
    ).map(b"".join),
    min_size=1,
    max_size=5,
)


def _parse(chunks: list[bytes]) -> list[object]:
    """Every reply (or the error) a parser gives for ``chunks`` fed one after another."""
    parser, out = ReplyParser(), []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (reply := parser.next_reply()) is not None:
                out.append(reply)
    except RemoteProtocolError as error:
        out.append(type(error))
    return out


@given(reply_lines)
def test_a_reply_parses_the_same_whole_or_byte_by_byte(wire_lines: list[bytes]) -> None:
    # Whole: the one-match fast path; byte by byte: the line-by-line path (RFC 5321 4.2).
    wire = b"".join(wire_lines)
    assert _parse([wire]) == _parse([wire[i : i + 1] for i in range(len(wire))])


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=3000), st.sampled_from(list(LineEndings)), st.integers(1, 50))
def test_random_bytes_never_crash_the_server(data: bytes, endings, step: int) -> None:
    harness = Harness(ServerConfig(line_endings=endings))
    harness.replies()
    for i in range(0, len(data), step):
        harness.feed(data[i : i + step])
    harness.server.receive(b"")  # and a close at any point
    for reply in harness.replies():
        assert 200 <= reply.code <= 599


def _session_bytes() -> bytes:
    return EHLO + TRANSACTION + b"Subject: x\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, len(_session_bytes())), max_size=10))
def test_any_split_of_a_valid_session_gives_the_same_replies(cuts: list[int]) -> None:
    data = _session_bytes()
    points = [0, *sorted(cuts), len(data)]
    harness = Harness()
    harness.replies()
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    got = harness.feed(*[chunk for chunk in chunks if chunk])  # b"" would mean EOF
    assert codes(got) == ["250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"]
    assert harness.store.messages[0].content.endswith(b"\r\n.dot\r\nbody\r\n")


noise = st.binary(max_size=200).filter(lambda b: b"\r\n.\r\n" not in b"x" + b + b"x")


@settings(max_examples=200, deadline=None)
@given(noise, st.sampled_from(list(LineEndings)))
def test_nothing_but_crlf_dot_crlf_ends_data(junk: bytes, endings) -> None:
    # However the content is made, the data ends only at <CRLF>.<CRLF> (RFC 5321 4.1.1.4).
    harness = Harness(ServerConfig(line_endings=endings))
    harness.replies()
    assert len(harness.feed(EHLO + TRANSACTION)) == 4
    content = b"x" + junk + b"x"  # holds no <CRLF>.<CRLF>, nor half of one at either end
    assert harness.feed(content) == [], "the data ended early"
    assert len(harness.feed(b"\r\n.\r\n")) == 1


def _chunked_session_bytes() -> bytes:
    chunk = b"Subject: x\r\n\r\nQUIT\r\n.\r\n"
    envelope = TRANSACTION.removesuffix(b"DATA\r\n")
    return (
        EHLO + envelope + b"BDAT %d\r\n" % len(chunk) + chunk + b"BDAT 3 LAST\r\nend" + b"QUIT\r\n"
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, len(_chunked_session_bytes())), max_size=10))
def test_any_split_of_a_chunked_session_gives_the_same_replies(cuts: list[int]) -> None:
    data = _chunked_session_bytes()
    points = [0, *sorted(cuts), len(data)]
    harness = Harness()
    harness.replies()
    got = harness.feed(*[data[a:b] for a, b in itertools.pairwise(points) if b > a])
    assert codes(got) == [
        "250",
        "250 2.1.0",
        "250 2.1.5",
        "250 2.0.0",
        "250 2.0.0",
        "221 2.0.0",
    ]
    assert harness.store.messages[0].content.endswith(b"\r\n\r\nQUIT\r\n.\r\nend")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(list(LineEndings)))
def test_nothing_in_a_chunk_is_read_as_a_command(chunk: bytes, endings) -> None:
    # The octet count frames a chunk (RFC 3030 2): whatever it holds, exactly one reply.
    harness = Harness(ServerConfig(line_endings=endings))
    harness.replies()
    envelope = TRANSACTION.removesuffix(b"DATA\r\n")
    assert len(harness.feed(EHLO + envelope)) == 3
    assert len(harness.feed(b"BDAT %d\r\n" % len(chunk) + chunk)) == 1
    assert codes(harness.feed(b"NOOP\r\n")) == ["250 2.0.0"]


# Command lines that touch every remembered kind (and some that are never remembered), with
# and without EHLO and SMTPUTF8, so that the same line is parsed in different contexts.
_COMMAND_LINES = [
    b"EHLO client.example.net",
    b"HELO client.example.net",
    b"EHLO bad domain",
    b"MAIL FROM:<alice@example.net>",
    b"MAIL FROM:<alice@example.net> SIZE=100",
    b"MAIL FROM:<al\xc3\xafce@example.net> SMTPUTF8",
    b"MAIL FROM:<alice@example.net> BODY=8BITMIME",
    b"RCPT TO:<bob@example.org>",
    b"RCPT TO:<b\xc3\xb6b@example.org>",
    b"RCPT TO:<nobody@example.org> NOTIFY=NEVER",
    b"RCPT TO:<bob@example.org> X=1",
    b"DATA",
    b"DATA now",
    b"RSET",
    b"NOOP",
    b"VRFY bob",
    b"QUIT",
    b"FOO",
]


@settings(max_examples=120, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_COMMAND_LINES), max_size=12), min_size=1, max_size=4))
@example(  # a non-ASCII recipient: refused without SMTPUTF8 (553), then accepted with it
    [
        [_COMMAND_LINES[0], _COMMAND_LINES[3], _COMMAND_LINES[8]],
        [_COMMAND_LINES[0], _COMMAND_LINES[5], _COMMAND_LINES[8]],
    ]
)
@example([[_COMMAND_LINES[1], _COMMAND_LINES[4]], [_COMMAND_LINES[0], _COMMAND_LINES[4]]])
def test_remembered_parses_never_change_what_the_server_answers(scripts) -> None:
    """Sessions on one configuration share its remembered parses; each session must answer
    exactly as it does on a configuration of its own, whatever the sessions before it sent."""
    shared = ServerConfig()
    for script in scripts:
        data = b"".join(line + b"\r\n" for line in script if line != b"QUIT")
        data += b"Subject: x\r\n\r\nbody\r\n.\r\n" if b"DATA" in script else b""
        warm, fresh = Harness(shared), Harness(ServerConfig())
        warm.replies(), fresh.replies()
        assert warm.feed(data) == fresh.feed(data)
        assert warm.recorder.tuples == fresh.recorder.tuples
