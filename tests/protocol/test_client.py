"""The client side: sequence checks are local errors, replies pair with commands in order."""

from __future__ import annotations

import pytest

from smtplab.protocol import (
    NEED_DATA,
    ClientConnection,
    LocalProtocolError,
    RemoteProtocolError,
    State,
)
from smtplab.protocol.client import expected_steps


def greeted(reply: bytes = b"220 mx ESMTP\r\n") -> ClientConnection:
    client = ClientConnection()
    client.receive_data(reply)
    event = client.next_event()
    assert event.verb == "CONNECT"
    return client


def answer(client: ClientConnection, wire: bytes) -> list[tuple[str, int]]:
    client.receive_data(wire)
    out = []
    while (event := client.next_event()) is not NEED_DATA:
        out.append((event.verb, event.reply.code))
    return out


def test_commands_before_the_greeting_are_refused() -> None:
    with pytest.raises(LocalProtocolError, match="greeting"):
        ClientConnection().ehlo("c.example")


@pytest.mark.parametrize(
    ("setup", "command", "hint"),
    [
        ([], lambda c: c.mail("a@example.net"), "EHLO or HELO"),
        (["EHLO"], lambda c: c.rcpt("b@example.org"), "accepted MAIL"),
        (["EHLO", "MAIL"], lambda c: c.data(), "accepted recipient"),
        (["EHLO", "MAIL"], lambda c: c.mail("x@example.net"), "RSET"),
    ],
)
def test_misuse_is_a_local_error_and_sends_nothing(setup, command, hint) -> None:
    client = greeted()
    for verb in setup:
        client.send_command(verb, "c.example" if verb == "EHLO" else "FROM:<a@example.net>")
        answer(client, b"250 OK\r\n")
    client.data_to_send()
    with pytest.raises(LocalProtocolError, match=hint):
        command(client)
    assert client.data_to_send() == b""


def test_data_refused_when_every_recipient_was_refused() -> None:
    client = greeted()
    client.ehlo("c.example")
    assert answer(client, b"250-hi\r\n250 PIPELINING\r\n") == [("EHLO", 250)]
    client.mail("a@example.net")
    client.rcpt("x@example.org")
    assert answer(client, b"250 OK\r\n550 5.1.1 no\r\n") == [("MAIL", 250), ("RCPT", 550)]
    with pytest.raises(LocalProtocolError, match="accepted recipient"):
        client.data()


def test_pipelined_commands_validate_against_the_planned_state() -> None:
    # RFC 2920: after PIPELINING is advertised, MAIL, RCPT and DATA may go in one group.
    client = greeted()
    client.ehlo("c.example")
    assert answer(client, b"250-mx\r\n250 PIPELINING\r\n") == [("EHLO", 250)]
    client.data_to_send()
    client.mail("a@example.net")
    client.rcpt("b@example.org")
    client.data()
    assert client.waiting == ("MAIL", "RCPT", "DATA")
    assert client.planned_state is State.DATA
    assert client.data_to_send().count(b"\r\n") == 3
    assert answer(client, b"250 OK\r\n250 OK\r\n354 go\r\n") == [
        ("MAIL", 250),
        ("RCPT", 250),
        ("DATA", 354),
    ]
    client.send_message(b"hi")
    assert client.data_to_send() == b"hi\r\n.\r\n"


def test_no_pipelining_unless_advertised() -> None:
    client = greeted()
    client.ehlo("c.example")
    with pytest.raises(LocalProtocolError, match="EHLO must be the last"):
        client.mail("a@example.net")  # EHLO ends a group (RFC 2920 3.1)
    answer(client, b"250 mx\r\n")
    client.mail("a@example.net")
    with pytest.raises(LocalProtocolError, match="did not advertise PIPELINING"):
        client.rcpt("b@example.org")


def test_a_positive_reply_that_cannot_answer_is_the_servers_error() -> None:
    # RFC 5321 4.3.2: DATA is answered 354; a 250 would make the client send content as commands.
    client = greeted()
    client.ehlo("c.example")
    answer(client, b"250-mx\r\n250 PIPELINING\r\n")
    client.mail("a@example.net")
    client.rcpt("b@example.org")
    client.data()
    with pytest.raises(RemoteProtocolError, match="cannot answer DATA"):
        answer(client, b"250 OK\r\n250 OK\r\n250 OK\r\n")
    with pytest.raises(LocalProtocolError):
        client.send_message(b"RCPT TO:<victim@example.org>")


def test_reply_size_is_bounded() -> None:
    from smtplab.protocol.replies import MAX_REPLY_LINE, MAX_REPLY_LINES

    client = ClientConnection()
    client.receive_data(b"220-x\r\n" * (MAX_REPLY_LINES + 1))
    with pytest.raises(RemoteProtocolError, match="lines"):
        client.next_event()
    client = ClientConnection()
    client.receive_data(b"220 " + b"x" * (MAX_REPLY_LINE + 10) + b"\r\n")
    with pytest.raises(RemoteProtocolError, match="longer"):
        client.next_event()


def test_message_only_after_354() -> None:
    client = greeted()
    with pytest.raises(LocalProtocolError, match="354"):
        client.send_message(b"x")


def test_unexpected_reply_is_the_servers_error_but_421_is_allowed() -> None:
    client = greeted()
    client.receive_data(b"250 surprise\r\n")
    with pytest.raises(RemoteProtocolError, match="no command"):
        client.next_event()
    client = greeted()
    assert answer(client, b"421 4.3.2 shutting down\r\n") == [("UNSOLICITED", 421)]
    assert client.state is State.CLOSED


def test_server_closing_is_an_event() -> None:
    client = greeted()
    client.receive_data(b"")
    assert type(client.next_event()).__name__ == "ConnectionClosed"
    assert client.state is State.CLOSED


@pytest.mark.parametrize(
    ("data", "in_data", "steps"),
    [
        (b"NOOP\r\nRSET\r\n", False, ("NOOP", "RSET")),
        (b"NOOP\r\nRSE", False, ("NOOP",)),
        (b"DATA\r\nx\r\n.\r\nQUIT\r\n", False, ("DATA", "DATA-END", "QUIT")),
        (b"a\n.\nb\r\n.\r\n", True, ("DATA-END",)),
        (b".\r\n", True, ("DATA-END",)),
    ],
)
def test_expected_steps_follow_rfc_framing(data: bytes, in_data: bool, steps: tuple) -> None:
    assert expected_steps(data, in_data) == steps


def test_command_arguments_cannot_inject_lines() -> None:
    client = greeted()
    with pytest.raises(LocalProtocolError, match="CR or LF"):
        client.ehlo("c.example\r\nMAIL FROM:<x@y>")
