"""Reply syntax both ways (RFC 5321 4.2, 4.2.1; RFC 3463 / RFC 2034 enhanced codes)."""

from __future__ import annotations

import pytest

from smtplab.protocol import RemoteProtocolError, Reply, parse_reply
from smtplab.protocol.replies import ReplyParser

PARSE = [
    (b"250 OK\r\n", Reply(250, "OK")),
    (b"250\r\n", Reply(250, "")),
    (b"250 2.1.5 Recipient OK\r\n", Reply(250, "Recipient OK", "2.1.5")),
    (b"550 5.1.1\r\n", Reply(550, "", "5.1.1")),
    (
        b"250-mx greets you\r\n250-SIZE 100\r\n250 8BITMIME\r\n",
        Reply(250, "mx greets you\nSIZE 100\n8BITMIME"),
    ),
    (b"550-5.1.1 line one\r\n550 5.1.1 line two\r\n", Reply(550, "line one\nline two", "5.1.1")),
    (b"250 OK\n", Reply(250, "OK")),  # a client is liberal about a bare LF
    (b"421 4.4.2 Timeout\r\n", Reply(421, "Timeout", "4.4.2")),
    (b"550 2.1.5 mismatched\r\n", Reply(550, "mismatched", "2.1.5")),  # kept for analysis to flag
]


@pytest.mark.parametrize(("wire", "reply"), PARSE)
def test_parse_reply(wire: bytes, reply: Reply) -> None:
    assert parse_reply(wire) == reply


@pytest.mark.parametrize(
    "wire",
    [
        b"hello\r\n",
        b"25 OK\r\n",
        b"600 nope\r\n",
        b"250x\r\n",
        b"190 too low\r\n",
        b"250 bare\rCR\r\n",  # RFC 5321 2.3.8: CR only as part of CRLF
    ],
)
def test_not_a_reply_is_the_peers_error(wire: bytes) -> None:
    parser = ReplyParser()
    parser.feed(wire)
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()


def test_mixed_codes_in_one_reply_are_rejected() -> None:
    # RFC 5321 4.2.1: every line of a multi-line reply carries the same code.
    parser = ReplyParser()
    parser.feed(b"250-one\r\n251 two\r\n")
    with pytest.raises(RemoteProtocolError, match="same code"):
        parser.next_reply()


def test_reply_split_anywhere_is_still_one_reply() -> None:
    wire = b"250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
    parser = ReplyParser()
    got = []
    for byte in wire:
        parser.feed(bytes([byte]))
        if (reply := parser.next_reply()) is not None:
            got.append(reply)
    assert got == [Reply(250, "mx\nPIPELINING\nSIZE 10")]


@pytest.mark.parametrize(
    ("reply", "wire"),
    [
        (Reply(250, "OK", "2.0.0"), b"250 2.0.0 OK\r\n"),
        (Reply(250, "a\nb"), b"250-a\r\n250 b\r\n"),
        (Reply(550, "a\nb", "5.1.1"), b"550-5.1.1 a\r\n550 5.1.1 b\r\n"),
        (Reply(250), b"250\r\n"),
        (Reply(250, "a\n\nc", "2.0.0"), b"250-2.0.0 a\r\n250-2.0.0\r\n250 2.0.0 c\r\n"),
        (Reply(250, "a\n"), b"250-a\r\n250\r\n"),
    ],
)
def test_reply_to_bytes(reply: Reply, wire: bytes) -> None:
    assert reply.to_bytes() == wire


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((199, "x"), "200 to 599"),
        ((250, "x", "2.1"), "RFC 3463"),
        ((250, "x", "2.1.5\n"), "RFC 3463"),
        ((250, "x", "2.\u0661.5"), "RFC 3463"),  # an Arabic-Indic digit is not a digit here
        ((250, "a\rb"), "CR"),
    ],
)
def test_bad_reply_values_are_refused_clearly(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Reply(*args)


def test_str_shows_the_reply_as_on_the_wire() -> None:
    # RFC 5321 4.2.1: every line but the last has a hyphen after the code.
    assert str(Reply(250, "mx\nPIPELINING\nSIZE 10")) == "250-mx\n250-PIPELINING\n250 SIZE 10"
    assert str(Reply(550, "no\nsuch user", "5.1.1")) == "550-5.1.1 no\n550 5.1.1 such user"
    assert str(Reply(250)) == "250"


def test_an_overlong_reply_line_is_dropped_not_served_again() -> None:
    """A reader that logs the error and reads on must not loop on the same bytes (found by
    probing a server that sends a 70,000-octet greeting)."""
    from smtplab.protocol.errors import RemoteProtocolError
    from smtplab.protocol.replies import ReplyParser

    parser = ReplyParser()
    parser.feed(b"220 " + b"x" * 70_000)
    with pytest.raises(RemoteProtocolError, match="longer than"):
        parser.next_reply()
    assert parser.next_reply() is None
    # The line goes on to its LF (the rest is discarded as it comes); then replies again.
    parser.feed(b"more of the same line\r\n250 OK\r\n")
    assert parser.next_reply().code == 250
