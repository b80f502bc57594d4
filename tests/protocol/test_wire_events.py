"""Bytes <-> events, both engines at once: what each client call puts on the wire and the event
the server makes of it; what each server reply puts on the wire and what the client reads.

No policy, session or recorder: a :class:`~tests.protocol.pair.ConnectionPair` wires the two
sans-IO engines together and the test plays both applications. After every row both engines
must agree on the session's state (one table drives both, RFC 5321 4.1.4, 4.3.2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from smtplab.protocol import (
    ClientConnection,
    DataCommand,
    Expand,
    Hello,
    Help,
    MailFrom,
    MessageReceived,
    Noop,
    Quit,
    RcptTo,
    Reply,
    Reset,
    State,
    Step,
    UnknownCommand,
    Verify,
)
from tests.protocol.pair import ConnectionPair

OK = Reply(250, "OK", "2.0.0")


def at(stage: str) -> ConnectionPair:
    """A pair that has reached ``stage``: greeted, ready (EHLO done), mail, rcpt, or data."""
    pair = ConnectionPair()
    if stage == "greeted":
        pair.greet()
        return pair
    pair.ready()
    steps: list[tuple[Callable[[ClientConnection], None], Reply]] = [
        (lambda c: c.mail("alice@example.net"), Reply(250, "OK", "2.1.0")),
        (lambda c: c.rcpt("bob@example.org"), Reply(250, "OK", "2.1.5")),
        (lambda c: c.data(), Reply(354, "End data with <CR><LF>.<CR><LF>")),
    ]
    for step, reply in steps[: ["ready", "mail", "rcpt", "data"].index(stage)]:
        step(pair.client)
        pair.to_server()
        pair.answer(reply)
    return pair


# (stage, client call, bytes on the wire, the server's event)
COMMANDS: list[tuple[str, Callable[[ClientConnection], None], bytes, Any]] = [
    ("greeted", lambda c: c.ehlo("client.example.net"), b"EHLO client.example.net\r\n",
     Hello("EHLO", "client.example.net", domain="client.example.net")),
    ("greeted", lambda c: c.helo("client.example.net"), b"HELO client.example.net\r\n",
     Hello("HELO", "client.example.net", domain="client.example.net")),
    ("ready", lambda c: c.mail("alice@example.net"), b"MAIL FROM:<alice@example.net>\r\n",
     MailFrom("MAIL", "FROM:<alice@example.net>", address="alice@example.net")),
    ("ready", lambda c: c.mail(""), b"MAIL FROM:<>\r\n",  # the null reverse-path (4.5.5)
     MailFrom("MAIL", "FROM:<>", address="")),
    ("ready", lambda c: c.mail("a@example.net", {"BODY": "8BITMIME"}),
     b"MAIL FROM:<a@example.net> BODY=8BITMIME\r\n",
     MailFrom("MAIL", "FROM:<a@example.net> BODY=8BITMIME", address="a@example.net",
              params={"BODY": "8BITMIME"})),
    ("mail", lambda c: c.rcpt("bob@example.org"), b"RCPT TO:<bob@example.org>\r\n",
     RcptTo("RCPT", "TO:<bob@example.org>", address="bob@example.org")),
    ("rcpt", lambda c: c.data(), b"DATA\r\n", DataCommand("DATA")),
    ("mail", lambda c: c.rset(), b"RSET\r\n", Reset("RSET")),
    ("ready", lambda c: c.noop(), b"NOOP\r\n", Noop("NOOP")),
    ("ready", lambda c: c.vrfy("bob"), b"VRFY bob\r\n", Verify("VRFY", "bob")),
    ("ready", lambda c: c.expn("staff"), b"EXPN staff\r\n", Expand("EXPN", "staff")),
    ("ready", lambda c: c.help("MAIL"), b"HELP MAIL\r\n", Help("HELP", "MAIL")),
    ("ready", lambda c: c.quit(), b"QUIT\r\n", Quit("QUIT")),
]  # fmt: skip


@pytest.mark.parametrize(("stage", "call", "wire", "event"), COMMANDS)
def test_a_client_command_is_these_bytes_and_this_server_event(
    stage: str, call: Callable[[ClientConnection], None], wire: bytes, event: Any
) -> None:
    pair = at(stage)
    call(pair.client)
    assert pair.to_server() == [event]
    assert pair.last_sent("C") == wire
    pair.answer(Reply(221, "bye") if isinstance(event, Quit) else _positive(event))
    assert pair.client.state is pair.server.state


def _positive(event: Any) -> Reply:
    """A reply that accepts ``event`` (RFC 5321 4.3.2)."""
    return {DataCommand: Reply(354, "Go ahead"), Help: Reply(214, "see RFC 5321")}.get(
        type(event), OK
    )


# (stage, the client's command, the reply the server sends, the bytes, what the client reads)
REPLIES: list[tuple[str, Callable[[ClientConnection], None], Reply, bytes, Reply]] = [
    ("ready", lambda c: c.noop(), Reply(250, "OK", "2.0.0"), b"250 2.0.0 OK\r\n",
     Reply(250, "OK", "2.0.0")),
    ("ready", lambda c: c.noop(), Reply(250), b"250\r\n", Reply(250)),  # "code" alone (4.2)
    ("ready", lambda c: c.help(), Reply(214, "first\nsecond", "2.0.0"),
     b"214-2.0.0 first\r\n214 2.0.0 second\r\n",  # RFC 2034 4: on every line
     Reply(214, "first\nsecond", "2.0.0")),
    ("rcpt", lambda c: c.data(), Reply(354, "Go ahead", "2.0.0"), b"354 Go ahead\r\n",
     Reply(354, "Go ahead")),  # RFC 3463: no enhanced code on 3xx replies
    ("mail", lambda c: c.rcpt("x@example.org"), Reply(550, "No such user", "5.1.1"),
     b"550 5.1.1 No such user\r\n", Reply(550, "No such user", "5.1.1")),
    ("ready", lambda c: c.mail("a@example.net"), Reply(451, "Try later", "4.3.0"),
     b"451 4.3.0 Try later\r\n", Reply(451, "Try later", "4.3.0")),
]  # fmt: skip


@pytest.mark.parametrize(("stage", "command", "reply", "wire", "read"), REPLIES)
def test_a_server_reply_is_these_bytes_and_this_client_event(
    stage: str,
    command: Callable[[ClientConnection], None],
    reply: Reply,
    wire: bytes,
    read: Reply,
) -> None:
    pair = at(stage)
    command(pair.client)
    (event,) = pair.to_server()
    (received,) = pair.answer(reply)
    assert pair.last_sent("S") == wire
    assert received.reply == read and received.verb == event.verb
    assert pair.client.state is pair.server.state


def test_enhanced_codes_go_only_to_a_client_that_said_ehlo() -> None:
    """RFC 2034 3: the codes are in effect only after EHLO with ENHANCEDSTATUSCODES."""
    pair = at("greeted")
    pair.client.helo("client.example.net")
    pair.to_server()
    (received,) = pair.answer(Reply(250, "mx.example.org", "2.0.0"))
    assert pair.last_sent("S") == b"250 mx.example.org\r\n" and received.reply.enhanced is None


# (content the client gives, the dot-stuffed bytes on the wire, what the server stores)
MESSAGES = [
    (b"Subject: hi\r\n\r\nhello\r\n", b"Subject: hi\r\n\r\nhello\r\n.\r\n",
     b"Subject: hi\r\n\r\nhello\r\n"),
    (b".hidden\r\n", b"..hidden\r\n.\r\n", b".hidden\r\n"),  # 4.5.2: a leading dot doubled
    (b"a\nb", b"a\r\nb\r\n.\r\n", b"a\r\nb\r\n"),  # bare LF and no final line end: CRLF
    (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n", b"a\r\n.\r\nb\r\n"),  # no early end
]  # fmt: skip


@pytest.mark.parametrize(("content", "wire", "stored"), MESSAGES)
def test_a_message_is_dot_stuffed_on_the_wire_and_whole_at_the_server(
    content: bytes, wire: bytes, stored: bytes
) -> None:
    pair = at("data")
    pair.client.send_message(content)
    (event,) = pair.to_server()
    assert pair.last_sent("C") == wire
    assert event == MessageReceived(stored, len(stored), stored.count(b"\r\n"), None)
    (received,) = pair.answer(Reply(250, "queued", "2.0.0"))
    assert received.verb == Step.DATA_END  # one reply, after the final dot (4.1.1.4)
    assert pair.client.state is pair.server.state is State.READY


# Lines no client method would send (send_raw): the protocol's own reply, no policy asked.
RAW = [
    ("ready", b"FOO bar\r\n", UnknownCommand, "FOO", Reply(500, "Command unrecognized", "5.5.2")),
    ("ready", b"RCPT TO:<x@example.org>\r\n", RcptTo, "RCPT",
     Reply(503, "Need MAIL before RCPT", "5.5.1")),
    ("greeted", b"MAIL FROM:<a@example.net>\r\n", MailFrom, "MAIL", None),  # 503, text aside
    ("ready", b"MAIL FROM:a@example.net\r\n", MailFrom, "MAIL", None),  # 501: no brackets
]  # fmt: skip


@pytest.mark.parametrize(("stage", "line", "kind", "verb", "reply"), RAW)
def test_a_line_the_protocol_refuses_is_answered_without_a_policy(
    stage: str, line: bytes, kind: type, verb: str, reply: Reply | None
) -> None:
    pair = at(stage)
    pair.client.send_raw(line)
    (event,) = pair.to_server()
    assert type(event) is kind and event.verb == verb and event.error is not None
    assert event.error.code in (500, 501, 503) and event.error.enhanced.startswith("5.5.")
    if reply is not None:
        assert event.error == reply
    (received,) = pair.to_client()
    assert received.reply.code == event.error.code and received.verb == verb
    assert pair.client.state is pair.server.state


def test_an_unprompted_421_closes_both_sides() -> None:
    """RFC 5321 3.8: a server may say 421 and close at any time; the client reads it as a
    reply to nothing it sent."""
    pair = at("ready")
    pair.server.send(Reply(421, "Service shutting down", "4.3.2"))
    (received,) = pair.to_client()
    assert received.verb == Step.UNSOLICITED and received.reply.code == 421
    assert pair.client.state is pair.server.state is State.CLOSED
