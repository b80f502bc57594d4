"""The observer reads a conversation from its bytes alone and reports what the engines saw.

A session runs through a :class:`~tests.protocol.pair.ConnectionPair`; its bytes, both ways
and in order, are then fed to an :class:`~smtplab.protocol.observer.Observer`, which must
report the same units (verb and argument, message content, BDAT chunks) and the same replies
as the two engines made of the same bytes.
"""

from __future__ import annotations

from collections import deque

from smtplab.protocol import Reply, ReplyReceived, Step
from smtplab.protocol.events import AuthResponse, Bdat, Command, Event, MessageReceived
from smtplab.protocol.observer import BARE_LF_NOTE, Note, Observer, TlsStarted
from tests.protocol.pair import ConnectionPair

KEEP = 1201


def watch(wire: list[tuple[str, bytes]], opaque_after_starttls: bool = False) -> list[Event]:
    """Everything an observer reports of ``wire``, pairing replies in order as a recorder
    does (RFC 2920 3.1) and telling the observer what each answered."""
    observer = Observer(KEEP, opaque_after_starttls)
    waiting: deque[str] = deque([Step.CONNECT])
    seen: list[Event] = []
    for side, data in wire:
        if side == "C":
            for event in observer.client_data(data):
                seen.append(event)
                if isinstance(event, Command | AuthResponse):
                    waiting.append(getattr(event, "verb", "AUTH"))
                elif isinstance(event, MessageReceived):
                    waiting.append(Step.DATA_END)
            continue
        seen += observer.server_data(data)
        while (reply := observer.next_reply()) is not None:
            seen.append(reply)
            if isinstance(reply, Reply):
                seen += observer.answered(waiting.popleft(), reply.code)
    return seen


def test_a_whole_transaction_reads_as_the_engines_read_it() -> None:
    pair = ConnectionPair()
    pair.ready()
    engine: list[Event] = []
    for send, reply in [
        (lambda: pair.client.mail("alice@example.net"), Reply(250, "OK", "2.1.0")),
        (lambda: pair.client.rcpt("bob@example.org"), Reply(250, "OK", "2.1.5")),
        (lambda: pair.client.data(), Reply(354, "Go ahead")),
        (lambda: pair.client.send_message(b".hidden\r\nhello\r\n"), Reply(250, "queued")),
        (lambda: pair.client.quit(), Reply(221, "bye")),
    ]:
        send()
        engine += pair.to_server()
        engine += [event.reply for event in pair.answer(reply)]
    seen = watch(pair.wire)
    assert seen[:4] == [
        Reply(220, "mx.example.org ESMTP"),
        Command("EHLO", "client.example.net"),
        Reply(250, "mx.example.org\nPIPELINING\n8BITMIME\nCHUNKING"),
        Command("MAIL", "FROM:<alice@example.net>"),
    ]

    def units(events: list[Event]) -> list[tuple[str, str]]:
        return [(e.verb, e.argument) for e in events if isinstance(e, Command)]

    def of(kind: type, events: list[Event]) -> list[Event]:
        return [e for e in events if isinstance(e, kind)]

    assert units(seen)[1:] == units(engine)  # the first, EHLO, came before `engine` began
    assert of(MessageReceived, seen) == of(MessageReceived, engine)
    assert of(Reply, seen)[2:] == of(Reply, engine)


def test_a_bdat_chunk_is_one_unit_with_its_size_lines_and_start() -> None:
    pair = ConnectionPair()
    pair.ready()
    chunk = b"Subject: x\r\n\r\n" + b"y" * 5000 + b"\r\n"
    pair.client.mail("a@example.net")
    pair.to_server()
    pair.answer(Reply(250, "OK"))
    pair.client.rcpt("b@example.org")
    pair.to_server()
    pair.answer(Reply(250, "OK"))
    pair.client.bdat(chunk, last=True)
    (engine_bdat,) = pair.to_server()
    assert isinstance(engine_bdat, Bdat)
    (seen_bdat,) = [e for e in watch(pair.wire) if isinstance(e, Bdat)]
    assert (seen_bdat.argument, seen_bdat.size, seen_bdat.line_count) == (
        engine_bdat.argument, len(chunk), chunk.count(b"\r\n")
    )  # fmt: skip
    assert seen_bdat.chunk == chunk[:KEEP]  # only the start is kept: memory stays bounded


def test_auth_exchange_lines_are_auth_responses_and_a_bare_lf_gets_a_note() -> None:
    wire = [
        ("S", b"220 mx ESMTP\r\n"),
        ("C", b"EHLO c\r\n"),
        ("S", b"250-mx\r\n250 AUTH LOGIN\r\n"),
        ("C", b"AUTH LOGIN\r\n"),
        ("S", b"334 VXNlcm5hbWU6\r\n"),
        ("C", b"YWxpY2U=\r\n"),
        ("S", b"334 UGFzc3dvcmQ6\r\n"),
        ("C", b"c2VjcmV0\r\n"),
        ("S", b"235 2.7.0 OK\r\n"),
        ("C", b"NOOP\n"),
        ("S", b"250 OK\r\n"),
    ]
    seen = [e for e in watch(wire) if not isinstance(e, Reply)]
    assert seen == [
        Command("EHLO", "c"),
        Command("AUTH", "LOGIN"),
        AuthResponse("YWxpY2U=", None),
        AuthResponse("c2VjcmV0", None),
        Command("NOOP", ""),
        Note(BARE_LF_NOTE),
    ]


def test_a_capture_stops_reading_at_starttls() -> None:
    wire = [
        ("S", b"220 mx ESMTP\r\n"),
        ("C", b"EHLO c\r\n"),
        ("S", b"250-mx\r\n250 STARTTLS\r\n"),
        ("C", b"STARTTLS\r\n"),
        ("S", b"220 2.0.0 Ready\r\n\x16\x03\x01 encrypted"),
        ("C", b"\x16\x03\x01\x02\x00 more encrypted\r\n"),
    ]
    seen = watch(wire, opaque_after_starttls=True)
    assert seen[-2:] == [
        Reply(220, "Ready", "2.0.0"),
        TlsStarted("encrypted from here on (STARTTLS): not decoded"),
    ]


def test_a_line_that_is_no_reply_is_a_note_and_reading_goes_on() -> None:
    wire = [("S", b"220 mx ESMTP\r\n"), ("C", b"NOOP\r\n"), ("S", b"hello?\r\n250 OK\r\n")]
    seen = watch(wire)
    assert isinstance(seen[2], Note) and seen[2].sender == "server"
    assert seen[3] == Reply(250, "OK")


def test_client_and_server_replies_pair_as_the_client_engine_pairs_them() -> None:
    pair = ConnectionPair()
    pair.ready()
    pair.client.noop()
    pair.to_server()
    (received,) = pair.answer(Reply(250, "OK"))
    assert isinstance(received, ReplyReceived) and received.verb == "NOOP"
    assert watch(pair.wire)[-1] == received.reply


def test_auth_is_recognised_by_the_rule_its_row_is_redacted_by() -> None:
    """A line whose first word is AUTH after any whitespace Python splits on (a unit separator,
    a no-break space) is AUTH: its exchange lines are credentials. A line that only starts
    with whitespace before AUTH is no AUTH command: what follows is read as commands."""

    def exchange(first: bytes) -> list[Event]:
        wire = [
            ("S", b"220 mx ESMTP\r\n"),
            ("C", first),
            ("S", b"334 VXNlcm5hbWU6\r\n"),
            ("C", b"YWxpY2U=\r\n"),
            ("S", b"500 5.5.2 What?\r\n"),
            ("C", b"NOOP\r\n"),
            ("S", b"250 OK\r\n"),
        ]
        return [e for e in watch(wire) if isinstance(e, Command | AuthResponse)]

    for first in (b"AUTH\x1fLOGIN\r\n", "AUTH\u00a0LOGIN\r\n".encode()):
        assert exchange(first)[1] == AuthResponse("YWxpY2U=", None), first
    assert exchange(b"\tAUTH LOGIN\r\n")[1:] == [Command("YWxpY2U=", ""), Command("NOOP", "")]
