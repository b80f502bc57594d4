"""CHUNKING and BDAT (RFC 3030), server and client side, bytes in and replies out."""

from __future__ import annotations

import pytest

from smtplab.protocol import ClientConnection, LocalProtocolError, ServerConfig, State
from smtplab.protocol.chunking import check_content, parse_bdat
from smtplab.protocol.client import expected_steps
from smtplab.protocol.framing import LineEndings, Problem
from smtplab.server import Fault, Faults, Mailboxes
from tests.conftest import EHLO, Harness, codes

ENVELOPE = b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\n"
ACCEPTED = ["250", "250 2.1.0", "250 2.1.5"]

CASES = [
    # (RFC 3030 section, what, bytes in after the greeting, expected replies)
    ("2", "one chunk, LAST", EHLO + ENVELOPE + b"BDAT 5 LAST\r\nhello", [*ACCEPTED, "250 2.0.0"]),
    (
        "2",
        "two chunks, then BDAT 0 LAST",
        EHLO + ENVELOPE + b"BDAT 3\r\nabcBDAT 2\r\ndeBDAT 0 LAST\r\n",
        [*ACCEPTED, "250 2.0.0", "250 2.0.0", "250 2.0.0"],
    ),
    (
        "4",
        "LAST is case-insensitive",
        EHLO + ENVELOPE + b"BDAT 1 last\r\nx",
        [*ACCEPTED, "250 2.0.0"],
    ),
    (
        "2",
        "a chunk's octets are never commands",
        EHLO + ENVELOPE + b"BDAT 6\r\nQUIT\r\nBDAT 0 LAST\r\nNOOP\r\n",
        [*ACCEPTED, "250 2.0.0", "250 2.0.0", "250 2.0.0"],
    ),
    (
        "2",
        "NOOP between chunks",
        EHLO + ENVELOPE + b"BDAT 1\r\nxNOOP\r\nBDAT 1 LAST\r\ny",
        [*ACCEPTED, "250 2.0.0", "250 2.0.0", "250 2.0.0"],
    ),
    (
        "2",
        "BDAT before MAIL: 503, and its octets are still read and dropped",
        EHLO + b"BDAT 6\r\nQUIT\r\nNOOP\r\n",
        ["250", "503 5.5.1", "250 2.0.0"],
    ),
    (
        "2",
        "BDAT with no accepted recipient: 554, as for DATA (RFC 5321 4.1.1.4)",
        EHLO + b"MAIL FROM:<alice@example.net>\r\nBDAT 4 LAST\r\nRSETNOOP\r\n",
        ["250", "250 2.1.0", "554 5.5.1", "250 2.0.0"],
    ),
    (
        "2",
        "DATA after BDAT in one transaction: 503; RSET clears it",
        EHLO + ENVELOPE + b"BDAT 2\r\nabDATA\r\nRSET\r\n",
        [*ACCEPTED, "250 2.0.0", "503 5.5.1", "250 2.0.0"],
    ),
    (
        "2",
        "RCPT and MAIL after a chunk: 503",
        EHLO
        + ENVELOPE
        + b"BDAT 2\r\nabRCPT TO:<carol@example.org>\r\nMAIL FROM:<a@example.net>\r\n",
        [*ACCEPTED, "250 2.0.0", "503 5.5.1", "503 5.5.1"],
    ),
    (
        "2",
        "BDAT after BDAT LAST: 503 (no transaction left)",
        EHLO + ENVELOPE + b"BDAT 1 LAST\r\nxBDAT 1\r\ny",
        [*ACCEPTED, "250 2.0.0", "503 5.5.1"],
    ),
    (
        "4",
        "a chunk-size that is not a number: 501, the line only",
        EHLO + ENVELOPE + b"BDAT x\r\nBDAT 5 LAST junk\r\nBDAT -1\r\nNOOP\r\n",
        [*ACCEPTED, "501 5.5.4", "501 5.5.4", "501 5.5.4", "250 2.0.0"],
    ),
    (
        "2",
        "a refused chunk fails the transaction: the pipelined rest is discarded and refused",
        EHLO + ENVELOPE + b"BDAT x\r\nBDAT 3 LAST\r\nabcMAIL FROM:<a@example.net>\r\n",
        [*ACCEPTED, "501 5.5.4", "503 5.5.1", "250 2.1.0"],
    ),
    (
        "2",
        "over the SIZE limit: 552 at the chunk that crosses it (RFC 1870)",
        EHLO + ENVELOPE + b"BDAT 600\r\n" + b"a" * 600 + b"BDAT 500 LAST\r\n" + b"b" * 500,
        [*ACCEPTED, "250 2.0.0", "552 5.3.4"],
    ),
    (
        "2",
        "after the size failure the next chunk is refused too",
        EHLO + ENVELOPE + b"BDAT 1100\r\n" + b"a" * 1100 + b"BDAT 1 LAST\r\nb",
        [*ACCEPTED, "552 5.3.4", "503 5.5.1"],
    ),
    (
        "2",
        "bare LF in a chunked message: refused at LAST under `reject`",
        EHLO + ENVELOPE + b"BDAT 8 LAST\r\nSubj\nx\r\n",
        [*ACCEPTED, "554 5.6.0"],
    ),
    (
        "2",
        "CRLF split across two chunks is one line end",
        EHLO + ENVELOPE + b"BDAT 5\r\nline\rBDAT 1 LAST\r\n\n",
        [*ACCEPTED, "250 2.0.0", "250 2.0.0"],
    ),
    (
        "3",
        "BODY=BINARYMIME is refused where BINARYMIME is not offered",
        EHLO + b"MAIL FROM:<a@example.net> BODY=BINARYMIME\r\n",
        ["250", "555 5.5.4"],
    ),
]


@pytest.mark.parametrize(("section", "what", "data", "expected"), CASES, ids=[c[1] for c in CASES])
def test_rfc3030_server(section: str, what: str, data: bytes, expected: list[str]) -> None:
    harness = Harness(ServerConfig(max_message_size=1000))
    assert codes(harness.replies()) == ["220"]
    assert codes(harness.feed(data)) == expected, f"RFC 3030 {section}: {what}"


def test_chunks_are_stored_byte_for_byte_without_dot_unstuffing(harness: Harness) -> None:
    # No transparency in BDAT (RFC 3030 2): leading dots and "<CRLF>.<CRLF>" are content.
    first = b"Subject: chunks\r\n\r\n..two dots\r\n.\r\n"
    second = b"after the dot line\r\n"
    harness.feed(EHLO + ENVELOPE)
    replies = harness.feed(b"BDAT %d\r\n" % len(first) + first)
    replies += harness.feed(b"BDAT %d LAST\r\n" % len(second) + second)
    assert codes(replies) == ["250 2.0.0", "250 2.0.0"]
    assert "queued as" in replies[-1].text
    stored = harness.store.messages[0]
    assert stored.content.endswith(first + second)
    assert stored.recipients == ("bob@example.org",)


def test_a_chunk_fed_one_byte_at_a_time(harness: Harness) -> None:
    data = EHLO + ENVELOPE + b"BDAT 7 LAST\r\nQUIT\r\n!" + b"QUIT\r\n"
    replies = []
    for byte in data:
        replies += harness.feed(bytes([byte]))
    assert codes(replies) == [*ACCEPTED, "250 2.0.0", "221 2.0.0"]
    assert harness.store.messages[0].content.endswith(b"QUIT\r\n!")


def test_the_transcript_has_one_row_per_bdat_with_its_chunk(harness: Harness) -> None:
    harness.feed(EHLO + ENVELOPE + b"BDAT 13\r\nSubject: hi\r\nBDAT 4 LAST\r\nbody")
    rows = [r for r in harness.recorder.rows if r.verb == "BDAT"]
    command, reply, last, last_reply = rows
    assert (command.kind, command.argument, command.size, command.lines) == ("command", "13", 13, 1)
    assert command.text == "Subject: hi"
    assert (reply.kind, reply.code, reply.reply_to) == ("reply", 250, command.seq)
    assert (last.argument, last.size, last.text) == ("4 LAST", 4, "body")
    assert last_reply.reply_to == last.seq and "queued as" in last_reply.text


def test_a_refused_chunk_is_recorded_with_its_size_but_not_its_content(harness: Harness) -> None:
    harness.feed(EHLO + b"BDAT 6\r\nsecret")
    command = next(r for r in harness.recorder.rows if r.verb == "BDAT")
    assert (command.size, command.text) == (6, None)


def test_a_policy_refusing_a_chunk_fails_the_whole_message() -> None:
    policy = Faults(Mailboxes(), [Fault.reply("BDAT", 452, "Disk full", "4.3.1")])
    harness = Harness(policy=policy)
    harness.replies()
    replies = harness.feed(EHLO + ENVELOPE + b"BDAT 3\r\nabcBDAT 3 LAST\r\ndef")
    assert codes(replies) == [*ACCEPTED, "452 4.3.1", "503 5.5.1"]
    assert harness.store.messages == []
    # RSET starts afresh (RFC 3030 2), and the next message goes through.
    replies = harness.feed(b"RSET\r\n" + ENVELOPE + b"BDAT 2 LAST\r\nok")
    assert codes(replies) == ["250 2.0.0", "250 2.1.0", "250 2.1.5", "250 2.0.0"]


def test_the_last_chunk_is_decided_like_the_final_dot() -> None:
    # Faults and policies at DATA-END apply to BDAT LAST too: one place decides on a message.
    policy = Faults(Mailboxes(), [Fault.reply("DATA-END", 554, "Spam", "5.7.1")])
    harness = Harness(policy=policy)
    harness.replies()
    replies = harness.feed(EHLO + ENVELOPE + b"BDAT 2\r\nabBDAT 2 LAST\r\ncd")
    assert codes(replies) == [*ACCEPTED, "250 2.0.0", "554 5.7.1"]
    assert harness.store.messages == []
    assert harness.server.conn.state is State.READY


def test_closing_in_the_middle_of_a_chunk_stores_nothing(harness: Harness) -> None:
    harness.feed(EHLO + ENVELOPE + b"BDAT 3\r\nabcBDAT 100 LAST\r\nonly part")
    harness.server.receive(b"")
    assert harness.store.messages == []
    close = harness.recorder.rows[-1]
    assert close.kind == "close" and "during BDAT" in close.text


def test_closing_between_chunks_stores_nothing(harness: Harness) -> None:
    harness.feed(EHLO + ENVELOPE + b"BDAT 3\r\nabc")
    harness.server.receive(b"")
    assert harness.store.messages == []
    assert "during BDAT" in harness.recorder.rows[-1].text


def test_without_chunking_bdat_is_not_implemented_and_its_chunk_is_read_as_commands() -> None:
    config = ServerConfig(extensions=frozenset({"PIPELINING", "ENHANCEDSTATUSCODES"}))
    harness = Harness(config)
    harness.replies()
    replies = harness.feed(EHLO + ENVELOPE + b"BDAT 6 LAST\r\nNOOP\r\n")
    assert codes(replies) == [*ACCEPTED, "502 5.5.1", "250 2.0.0"]
    assert "CHUNKING" not in replies[0].text


@pytest.mark.parametrize(
    ("endings", "expected", "stored"),
    [
        (LineEndings.REJECT, "554 5.6.0", None),
        (LineEndings.NORMALIZE, "250 2.0.0", b"a\r\nb\r\n"),
        (LineEndings.KEEP, "250 2.0.0", b"a\nb\r\n"),
    ],
)
def test_bare_lf_in_chunks_follows_the_line_endings_setting(endings, expected, stored) -> None:
    harness = Harness(ServerConfig(line_endings=endings))
    harness.replies()
    replies = harness.feed(EHLO + ENVELOPE + b"BDAT 5 LAST\r\na\nb\r\n")
    assert codes(replies)[-1] == expected
    if stored is None:
        assert harness.store.messages == []
    else:
        assert harness.store.messages[0].content.endswith(stored)


def test_a_line_over_1000_octets_in_chunks_is_refused_at_last(harness: Harness) -> None:
    line = b"x" * 999 + b"\r\n"  # 1001 octets with CRLF (RFC 5321 4.5.3.1.6)
    replies = harness.feed(EHLO + ENVELOPE + b"BDAT %d LAST\r\n" % len(line) + line)
    assert codes(replies)[-1] == "500 5.5.2"
    assert harness.store.messages == []


def test_binarymime_content_is_kept_as_octets_and_data_is_refused() -> None:
    extensions = ServerConfig().extensions | {"BINARYMIME"}
    harness = Harness(ServerConfig(extensions=extensions))
    harness.replies()
    assert "BINARYMIME" in harness.feed(EHLO)[0].text
    binary = bytes(range(256)) * 8  # bare CR and LF, NUL, lines over 1000 octets
    mail = b"MAIL FROM:<alice@example.net> BODY=BINARYMIME\r\nRCPT TO:<bob@example.org>\r\n"
    assert codes(harness.feed(mail + b"DATA\r\n")) == ["250 2.1.0", "250 2.1.5", "503 5.5.1"]
    replies = harness.feed(b"BDAT %d LAST\r\n" % len(binary) + binary)
    assert codes(replies) == ["250 2.0.0"]
    assert harness.store.messages[0].content.endswith(binary)


def test_binarymime_needs_chunking() -> None:
    with pytest.raises(ValueError, match="CHUNKING"):
        ServerConfig(extensions=frozenset({"BINARYMIME", "8BITMIME"}))


def test_help_lists_bdat_only_when_chunking_is_offered(harness: Harness) -> None:
    assert "BDAT" in harness.feed(b"HELP\r\n")[0].text
    plain = Harness(ServerConfig(extensions=frozenset({"PIPELINING"})))
    plain.replies()
    assert "BDAT" not in plain.feed(b"HELP\r\n")[0].text


@pytest.mark.parametrize(
    ("argument", "parsed"),
    [
        ("0", (0, False)),
        ("1000 LAST", (1000, True)),
        ("7 last", (7, True)),
        ("007", (7, False)),
        ("", None),
        ("x", None),
        ("-1", None),
        ("5 LAST junk", None),
        ("5 FIRST", None),
        ("1" * 19, None),  # bounded: no 10**18-octet chunk
    ],
)
def test_parse_bdat(argument: str, parsed) -> None:
    assert parse_bdat(argument) == parsed


def test_check_content_names_the_problem() -> None:
    assert check_content(b"a\r\nb", 1000, LineEndings.REJECT) == (b"a\r\nb", None)
    assert check_content(b"a\rb", 1000, LineEndings.REJECT)[1] is Problem.BARE_CR
    assert check_content(b"a\nb", 1000, LineEndings.REJECT)[1] is Problem.BARE_LF
    assert check_content(b"a\rb\n", 1000, LineEndings.NORMALIZE) == (b"a\r\nb\r\n", None)
    assert check_content(b"y" * 999, 1000, LineEndings.KEEP)[1] is Problem.TOO_LONG


# -- the client side --------------------------------------------------------------------------


def _ready_client(ehlo_keywords: list[str]) -> ClientConnection:
    client = ClientConnection()
    client.receive_data(b"220 mx\r\n")
    client.next_event()
    client.ehlo("client.example.net")
    lines = ["mx", *ehlo_keywords]
    reply = "".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}\r\n"
    client.receive_data(reply.encode())
    client.next_event()
    client.data_to_send()
    return client


def test_the_client_pipelines_a_whole_chunked_transaction() -> None:
    client = _ready_client(["PIPELINING", "CHUNKING"])
    client.mail("alice@example.net")
    client.rcpt("bob@example.org")
    client.bdat(b".leading dot\r\n")
    client.bdat(b"end\r\n", last=True)
    assert client.data_to_send() == (
        ENVELOPE + b"BDAT 14\r\n.leading dot\r\nBDAT 5 LAST\r\nend\r\n"
    )
    client.receive_data(b"250 ok\r\n250 ok\r\n250 14 octets\r\n250 queued\r\n")
    verbs = [client.next_event().verb for _ in range(4)]  # type: ignore[attr-defined]
    assert verbs == ["MAIL", "RCPT", "BDAT", "BDAT"]
    assert client.state is State.READY


def test_the_client_sends_bdat_only_where_it_may() -> None:
    with pytest.raises(LocalProtocolError, match="CHUNKING"):
        _ready_client(["PIPELINING"]).bdat(b"x", last=True)
    client = _ready_client(["CHUNKING"])
    with pytest.raises(LocalProtocolError, match="BDAT now"):
        client.bdat(b"x", last=True)  # no transaction yet
    with pytest.raises(LocalProtocolError, match="bdat"):
        client.send_command("BDAT", "1 LAST")  # a chunk needs its octets


def test_after_a_refused_chunk_the_client_sends_no_more() -> None:
    client = _ready_client(["CHUNKING"])
    for command, reply in ((client.mail, b"250 ok\r\n"), (client.rcpt, b"250 ok\r\n")):
        command("alice@example.net")
        client.receive_data(reply)
        client.next_event()
    client.bdat(b"abc")
    client.receive_data(b"452 4.3.1 full\r\n")
    client.next_event()
    assert client.state is State.READY  # RFC 3030 2: the transaction failed
    with pytest.raises(LocalProtocolError):
        client.bdat(b"def", last=True)


def test_expected_steps_skip_the_chunk() -> None:
    data = b"BDAT 10\r\nDATA\r\nRSETBDAT 0 LAST\r\nQUIT\r\n"
    assert expected_steps(data, in_data=False) == ("BDAT", "BDAT", "QUIT")
