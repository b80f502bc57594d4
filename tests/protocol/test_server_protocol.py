"""Bytes in, replies out: the server side of RFC 5321, one table row per rule."""

from __future__ import annotations

import pytest

from smtplab.protocol import ServerConfig
from tests.conftest import EHLO, Harness, codes

CASES = [
    # (RFC section, what, bytes in after the greeting, expected replies)
    ("4.1.1.1", "EHLO lists extensions", EHLO, ["250"]),
    ("4.1.1.1", "HELO works too", b"HELO client.example.net\r\n", ["250"]),
    ("4.1.1.1", "EHLO needs a domain", b"EHLO\r\n", ["501"]),
    ("4.1.1.1", "EHLO with an address literal", b"EHLO [192.0.2.1]\r\n", ["250"]),
    (
        "2.4",
        "verbs are case-insensitive",
        b"ehlo client.example.net\r\nnoop\r\n",
        ["250", "250 2.0.0"],
    ),
    ("4.1.4", "MAIL before EHLO is out of sequence", b"MAIL FROM:<a@example.net>\r\n", ["503"]),
    (
        "4.1.4",
        "NOOP, RSET, VRFY, HELP before EHLO are fine",
        b"NOOP\r\nRSET\r\nVRFY bob\r\nHELP\r\n",
        ["250", "250", "250", "214"],
    ),
    ("3.3", "RCPT before MAIL", EHLO + b"RCPT TO:<bob@example.org>\r\n", ["250", "503 5.5.1"]),
    ("4.1.1.4", "DATA before MAIL", EHLO + b"DATA\r\n", ["250", "503 5.5.1"]),
    (
        "4.1.1.4",
        "DATA with no accepted recipient: 554 (503 also allowed)",
        EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<x@example.org>\r\nDATA\r\n",
        ["250", "250 2.1.0", "550 5.1.1", "554 5.5.1"],
    ),
    (
        "4.1.1.2",
        "nested MAIL",
        EHLO + b"MAIL FROM:<a@example.net>\r\nMAIL FROM:<b@example.net>\r\n",
        ["250", "250 2.1.0", "503 5.5.1"],
    ),
    (
        "4.1.1.2",
        "null reverse-path <> is allowed",
        EHLO + b"MAIL FROM:<>\r\n",
        ["250", "250 2.1.0"],
    ),
    (
        "4.1.2",
        "missing angle brackets",
        EHLO + b"MAIL FROM:a@example.net\r\n",
        ["250", "501 5.5.4"],
    ),
    ("4.1.2", "missing FROM:", EHLO + b"MAIL <a@example.net>\r\n", ["250", "501 5.5.4"]),
    (
        "4.1.2",
        "bad mailbox syntax",
        EHLO + b"MAIL FROM:<a b@example.net>\r\n",
        ["250", "553 5.1.7"],
    ),
    ("4.1.2", "bad sender address", EHLO + b"MAIL FROM:<@example.net>\r\n", ["250", "553 5.1.7"]),
    (
        "4.1.2",
        "bad recipient address",
        EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@@example.org>\r\n",
        ["250", "250 2.1.0", "553 5.1.3"],
    ),
    (
        "4.1.2",
        "quoted local part",
        EHLO + b'MAIL FROM:<"a b"@example.net>\r\n',
        ["250", "250 2.1.0"],
    ),
    (
        "4.1.1.3",
        "source route is accepted and ignored",
        EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<@relay.example:bob@example.org>\r\n",
        ["250", "250 2.1.0", "250 2.1.5"],
    ),
    (
        "4.1.1.3",
        "Postmaster without a domain must be accepted",
        EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<Postmaster>\r\n",
        ["250", "250 2.1.0", "250 2.1.5"],
    ),
    (
        "4.1.1.11",
        "unknown MAIL parameter: 555",
        EHLO + b"MAIL FROM:<a@example.net> FOO=1\r\n",
        ["250", "555 5.5.4"],
    ),
    (
        "4.1.1.11",
        "no ESMTP parameters after HELO",
        b"HELO c.example\r\nMAIL FROM:<a@example.net> SIZE=10\r\n",
        ["250", "555"],
    ),
    (
        "RFC 1870",
        "SIZE over the limit: 552 5.3.4",
        EHLO + b"MAIL FROM:<a@example.net> SIZE=999999999999\r\n",
        ["250", "552 5.3.4"],
    ),
    (
        "RFC 1870",
        "SIZE must be a number",
        EHLO + b"MAIL FROM:<a@example.net> SIZE=big\r\n",
        ["250", "501 5.5.4"],
    ),
    (
        "RFC 6531 3.5",
        "non-ASCII address without SMTPUTF8",
        EHLO + "MAIL FROM:<jösé@example.net>\r\n".encode(),
        ["250", "553 5.6.7"],
    ),
    (
        "RFC 6531",
        "non-ASCII address with SMTPUTF8",
        EHLO + "MAIL FROM:<jösé@example.net> SMTPUTF8\r\n".encode(),
        ["250", "250 2.1.0"],
    ),
    ("4.2.4", "unknown command: 500", b"FOO bar\r\n", ["500"]),
    ("4.2.4", "known but unimplemented command: 502", b"TURN\r\n", ["502"]),
    ("4.1.1", "an empty line is a syntax error", b"\r\n", ["500"]),
    (
        "4.1.1.4",
        "DATA takes no argument",
        EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA now\r\n",
        ["250", "250 2.1.0", "250 2.1.5", "501 5.5.4"],
    ),
    (
        "4.1.1.5",
        "RSET ends the transaction",
        EHLO + b"MAIL FROM:<a@example.net>\r\nRSET\r\nRCPT TO:<bob@example.org>\r\n",
        ["250", "250 2.1.0", "250 2.0.0", "503 5.5.1"],
    ),
    (
        "4.1.4",
        "a repeated EHLO resets the transaction",
        EHLO + b"MAIL FROM:<a@example.net>\r\n" + EHLO + b"RCPT TO:<bob@example.org>\r\n",
        ["250", "250 2.1.0", "250", "503 5.5.1"],
    ),
    ("4.1.1.6", "VRFY a known mailbox", b"VRFY bob\r\n", ["250"]),
    ("4.1.1.6", "VRFY an unknown mailbox", b"VRFY nobody\r\n", ["550"]),
    ("4.1.1.6", "VRFY needs an argument", b"VRFY\r\n", ["501"]),
    ("4.1.1.7", "EXPN not offered: 502", b"EXPN staff\r\n", ["502"]),
    ("4.1.1.9", "NOOP ignores its argument", b"NOOP hello\r\n", ["250"]),
    ("4.1.1.10", "QUIT gets 221", b"QUIT\r\n", ["221"]),
    ("4.5.3.1.4", "a command line over 512 octets: 500", b"NOOP " + b"x" * 600 + b"\r\n", ["500"]),
    ("4.5.3.1.4", "exactly 512 octets with CRLF is fine", b"NOOP " + b"x" * 505 + b"\r\n", ["250"]),
    ("2.3.8", "bare LF ends a bad command under reject", b"NOOP\nNOOP\r\n", ["500", "250"]),
    ("2.3.8", "bare CR spoils a command under reject", b"NO\rOP\r\n", ["500"]),
    (
        "4.5.1",
        "Postmaster is always local",
        EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<postmaster@example.org>\r\n",
        ["250", "250 2.1.0", "250 2.1.5"],
    ),
    (
        "3.6.2",
        "other domains are not relayed: 550 for a policy refusal",
        EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<x@elsewhere.example>\r\n",
        ["250", "250 2.1.0", "550 5.7.1"],
    ),
]


@pytest.mark.parametrize(("section", "what", "data", "expected"), CASES, ids=[c[1] for c in CASES])
def test_server_replies(
    section: str, what: str, data: bytes, expected: list[str], harness: Harness
) -> None:
    assert codes(harness.feed(data)) == expected, f"RFC 5321 {section}: {what}"


def test_every_command_gets_one_reply_even_split_byte_by_byte(harness: Harness) -> None:
    # RFC 5321 2.3.8 / 4.1.1: lines are framed by CRLF, whatever the TCP segmentation.
    data = EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
    data += b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n"
    replies = harness.feed(*[data[i : i + 1] for i in range(len(data))])
    assert codes(replies) == ["250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0", "221 2.0.0"]


def test_pipelined_commands_are_answered_in_order(harness: Harness) -> None:
    # RFC 2920 3.1: a server answers pipelined commands in order, in one go here.
    replies = harness.feed(
        EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\n"
        b"RCPT TO:<nobody@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n"
    )
    assert codes(replies) == ["250", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354"]


def test_bytes_after_data_are_content_only_after_354(harness: Harness) -> None:
    # RFC 5321 4.1.1.4: message content follows the 354; a pipelined message is read as data.
    replies = harness.feed(
        EHLO + b"MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nQUIT\r\n.\r\n"
    )
    assert codes(replies)[-2:] == ["354", "250 2.0.0"]
    assert harness.store.messages[0].content.endswith(b"\r\nQUIT\r\n")


def test_one_hundred_recipients_are_accepted() -> None:
    # RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients.
    from smtplab.server import Policy

    rcpts = b"".join(b"RCPT TO:<bob+%d@example.org>\r\n" % i for i in range(100))
    h = Harness(policy=Policy())
    h.replies()
    replies = h.feed(EHLO + b"MAIL FROM:<a@example.net>\r\n" + rcpts + b"DATA\r\n", b"x\r\n.\r\n")
    assert codes(replies).count("250 2.1.5") == 100
    assert codes(replies)[-1] == "250 2.0.0"
    assert len(h.store.messages[0].recipients) == 100


def test_554_greeting_then_only_quit() -> None:
    # RFC 5321 3.1: after a 554 greeting the server answers 503 to everything but QUIT.
    from smtplab.protocol import Reply
    from smtplab.server import Policy

    class Refuse(Policy):
        def on_connect(self, ctx):
            return Reply(554, "No SMTP service here")

    h = Harness(policy=Refuse())
    assert codes(h.replies()) == ["554"]
    assert codes(h.feed(EHLO, b"MAIL FROM:<a@b.example>\r\n", b"QUIT\r\n")) == [
        "503",
        "503",
        "221",
    ]


def test_limits_are_settings() -> None:
    harness = Harness(ServerConfig(max_command_line=2048))
    harness.replies()
    assert codes(harness.feed(b"NOOP " + b"x" * 1500 + b"\r\n")) == ["250"]
    with pytest.raises(ValueError, match="at least 512"):
        ServerConfig(max_command_line=100)


def test_enhanced_codes_only_once_negotiated(harness: Harness) -> None:
    # RFC 2034: after EHLO, when advertised; never on 3xx (RFC 3463 has no class 3).
    assert codes(harness.feed(b"NOOP\r\n", EHLO, b"NOOP\r\n")) == ["250", "250", "250 2.0.0"]
    plain = Harness(ServerConfig(extensions=frozenset({"PIPELINING", "SIZE"})))
    plain.replies()
    assert codes(plain.feed(EHLO, b"NOOP\r\n")) == ["250", "250"]
    helo = Harness()
    helo.replies()
    assert codes(helo.feed(b"HELO c.example\r\nNOOP\r\n")) == ["250", "250"]
    assert helo.recorder.rows[-1].enhanced is None  # the transcript shows what was sent


def test_enhanced_codes_can_be_turned_off() -> None:
    harness = Harness(ServerConfig(enhanced_status_codes=False))
    harness.replies()
    reply = harness.feed(EHLO + b"NOOP\r\n")
    assert "ENHANCEDSTATUSCODES" not in reply[0].text
    assert codes(reply) == ["250", "250"]


def test_smtputf8_on_mail_allows_utf8_recipients() -> None:
    # RFC 6531 3.4: SMTPUTF8 on MAIL covers every forward-path of the transaction.
    harness = Harness(policy=__import__("smtplab").Policy())
    harness.replies()
    mail = "MAIL FROM:<用户@例え.jp> SMTPUTF8\r\n"
    rcpt = "RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>\r\n"
    replies = harness.feed(EHLO + (mail + rcpt).encode())
    assert codes(replies) == ["250", "250 2.1.0", "250 2.1.5"]


def test_invalid_utf8_gets_a_reply_not_a_replacement_character(harness: Harness) -> None:
    replies = harness.feed(EHLO + b"MAIL FROM:<\xff\xfe@b.example> SMTPUTF8\r\n")
    assert codes(replies) == ["250", "501 5.5.2"]


def test_512_octet_line_split_between_cr_and_lf(harness: Harness) -> None:
    # RFC 5321 4.5.3.1.4: 512 octets with the CRLF, however TCP cuts it.
    line = b"NOOP " + b"x" * 505 + b"\r\n"
    assert len(line) == 512
    assert codes(harness.feed(line[:-1], line[-1:])) == ["250"]


def test_recipient_limit_answers_452() -> None:
    # RFC 5321 4.5.3.1.10: "452 Too many recipients"; the limit is a setting (at least 100).
    from smtplab.server import Policy

    harness = Harness(ServerConfig(max_recipients=100), policy=Policy())
    harness.replies()
    rcpts = b"".join(b"RCPT TO:<u%d@example.org>\r\n" % i for i in range(102))
    replies = codes(harness.feed(EHLO + b"MAIL FROM:<a@example.net>\r\n" + rcpts))
    assert replies[-3:] == ["250 2.1.5", "452 4.5.3", "452 4.5.3"]
    with pytest.raises(ValueError, match="at least 100"):
        ServerConfig(max_recipients=10)


def test_keep_mode_bare_cr_in_a_parameter_is_answered() -> None:
    harness = Harness(ServerConfig(line_endings="keep"))
    harness.replies()
    replies = harness.feed(EHLO + b"MAIL FROM:<a@b.example> X\rY\r\nNOOP\r\n")
    assert codes(replies) == ["250", "501 5.5.4", "250 2.0.0"]
    assert "\\x0d" in replies[1].text


def test_a_policy_reply_the_protocol_forbids_becomes_451() -> None:
    from smtplab.protocol import Reply
    from smtplab.server import Policy

    class Wrong(Policy):
        def on_noop(self, ctx, event):
            return Reply(220, "not a NOOP reply")

    harness = Harness(policy=Wrong())
    harness.replies()
    assert codes(harness.feed(EHLO + b"NOOP\r\nRSET\r\n")) == ["250", "451 4.3.0", "250 2.0.0"]
    assert "cannot answer NOOP" in harness.server.errors[0]


def test_pipelined_commands_are_stamped_with_their_arrival_time() -> None:
    harness = Harness()
    harness.server.before_reply = lambda: harness.clock.advance(0.05)
    harness.replies()
    harness.feed(EHLO + b"NOOP\r\nNOOP\r\nNOOP\r\n")
    rows = [r for r in harness.recorder.rows if r.kind in ("command", "reply") and r.seq > 1]
    commands = [r for r in rows if r.kind == "command"]
    assert len({r.time for r in commands}) == 1, "they arrived together"
    latencies = [r.latency for r in rows if r.kind == "reply"]
    assert latencies == pytest.approx([0.05, 0.10, 0.15, 0.20])
