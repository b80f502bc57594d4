"""Same bytes, same answer: however TCP splits a client's stream, the server sends the same
replies, records the same rows and stores the same messages, in every line-endings mode."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtplab.protocol import LineEndings, ServerConfig
from tests.conftest import Harness

# Building blocks of hostile streams: commands, message content with bare CR/LF, overlong
# lines, dots, BDAT chunks, AUTH with what may be credentials behind it.
LONG = b"x" * 1100
COMMANDS = [
    b"EHLO client.example.net\r\n",
    b"NOOP " + b"\r" * 700 + b"\r\n",
    b"NOOP a\rb\r\n",
    b"NOOP a\nRSET\r\n",
    b"\n" * 5,
    LONG + b"\n" + LONG + b"\r\n",
    b"BDAT x\r\n",
    b"AUTH LOGIN\r\nYWxpY2U=\r\n",
    b"RSET\r\n",
]
CONTENT = [
    b"Subject: hi\r\n\r\nhello\r\n",
    b"..dotted\r\n",
    b"a\rb\r\n",
    b"a\nb\r\n",
    b"\n.\n",
    b"\r.\r",
    b"\r\n.\n",
    b".\r",
    LONG + b"\r\n",
    LONG + b"\r" + LONG + b"\r\n",
    b"a\r" + LONG + b"\n\r\n",
    b"." + LONG + b"\r\n",
    b"\r" * 1500 + b"\r\n",
    b"\n" * 1500 + b"\r\n",
    b"y" * 1500 + b"\n" + b"z" * 500 + b"\r\n",
]
CHUNKS = [b"BDAT 5\r\nab\r\nc", b"BDAT 3\r\na\rb", b"BDAT 1200\r\n" + b"w" * 1200, b"BDAT 0\r\n"]
ENVELOPE = b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\n"

data_transaction = st.lists(st.sampled_from(CONTENT), max_size=6).map(
    lambda lines: ENVELOPE + b"DATA\r\n" + b"".join(lines) + b".\r\n"
)
bdat_transaction = st.lists(st.sampled_from(CHUNKS), max_size=4).map(
    lambda chunks: ENVELOPE + b"".join(chunks) + b"BDAT 2 LAST\r\n\r\n"
)
parts = st.one_of(st.sampled_from(COMMANDS), data_transaction, bdat_transaction)
streams = st.lists(parts, min_size=1, max_size=5).map(
    lambda pieces: b"EHLO client.example.net\r\n" + b"".join(pieces) + b"QUIT\r\n"
)
modes = st.sampled_from(list(LineEndings))


def run(stream: bytes, cuts: list[int], endings: LineEndings) -> tuple:
    config = ServerConfig(line_endings=endings, max_message_size=3000)
    harness = Harness(config)
    bounds = sorted({0, *cuts, len(stream)})  # no empty piece: b"" would mean the client closed
    replies = harness.feed(*(stream[a:b] for a, b in pairwise(bounds)))
    harness.server.receive(b"")
    stored = [(m.mail_from, m.recipients, m.content) for m in harness.store.messages]
    return [r.to_bytes() for r in replies], harness.recorder.tuples, stored


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams, endings=modes, data=st.data())
def test_replies_rows_and_messages_do_not_depend_on_the_split(stream, endings, data) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=30), label="cuts")
    assert run(stream, cuts, endings) == run(stream, [], endings)


@settings(max_examples=100, deadline=None)
@given(stream=streams, endings=modes)
def test_one_byte_at_a_time_answers_as_one_piece(stream, endings) -> None:
    assert run(stream, list(range(len(stream))), endings) == run(stream, [], endings)


def test_the_issue_message_bare_cr_and_overlong_line_one_reply_however_split() -> None:
    """A message with a bare CR and an overlong line: 554 in one piece, 500 in two before."""
    start = b"EHLO c.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
    stream = start + b"a\r" + b"y" * 2000 + b"\r\n.\r\n"
    whole = run(stream, [], LineEndings.REJECT)
    for cut in range(len(start), len(stream), 97):
        assert run(stream, [cut], LineEndings.REJECT) == whole
    assert whole[0][-1].startswith(b"554 5.6.0")  # the bare CR: the smuggling sign first
