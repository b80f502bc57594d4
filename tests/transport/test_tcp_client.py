"""smtplab's client over TCP against real servers: aiosmtpd, and smtplab's own TCP server."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pandas as pd
import pytest
from aiosmtpd.controller import Controller

import smtplab
from smtplab.transport.tcp_server import ServerThread, TcpServer

MESSAGE = (
    b"Subject: from smtplab\r\nFrom: alice@example.net\r\nTo: bob@example.org\r\n\r\n"
    b"Hello aiosmtpd.\r\n.a line that starts with a dot\r\n..two dots\r\n"
)


class Keep:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK kept"


@pytest.fixture
def aiosmtpd_server() -> Iterator[tuple[int, Keep]]:
    handler = Keep()
    with socket.socket() as probe:  # aiosmtpd's Controller wants a real port number
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="aio.example")
    controller.start()
    try:
        yield port, handler
    finally:
        controller.stop()


def test_a_message_reaches_aiosmtpd_byte_for_byte(aiosmtpd_server) -> None:
    port, handler = aiosmtpd_server
    session = smtplab.connect("127.0.0.1", port)
    assert session.greeting is not None and session.greeting.code == 220
    assert session.ehlo().code == 250
    assert "PIPELINING" not in session.extensions  # aiosmtpd does not offer it
    assert session.mail("alice@example.net").code == 250
    assert session.rcpt("bob@example.org").code == 250
    assert session.data().code == 354
    assert session.message(MESSAGE).code == 250
    assert session.quit().code == 221
    assert handler.messages == [("alice@example.net", ["bob@example.org"], MESSAGE)]
    frame = session.transcript
    assert set(frame["source"]) == {"tcp"}
    assert frame["server"].iloc[0] == f"127.0.0.1:{port}"
    replies = frame.query("kind == 'reply'")
    assert replies["verb"].tolist() == [
        "CONNECT",
        "EHLO",
        "MAIL",
        "RCPT",
        "DATA",
        "DATA-END",
        "QUIT",
    ]
    assert replies["code"].tolist() == [220, 250, 250, 250, 354, 250, 221]
    data = frame.query("kind == 'data'").iloc[0]
    assert data["size"] == len(MESSAGE)  # recorded unstuffed, as the server received it
    assert frame["kind"].iloc[-1] == "close"


def test_the_client_sees_a_multi_line_reply_arriving_in_pieces() -> None:
    with ServerThread(TcpServer()) as server:
        session = smtplab.connect("127.0.0.1", server.port)
        reply = session.ehlo()  # the EHLO reply is several lines; TCP may split it anywhere
        assert reply.code == 250 and "SIZE 10485760" in reply.lines
        assert session.quit().code == 221
        assert session.closed


def test_the_client_transcript_matches_the_server_transcript() -> None:
    with ServerThread(TcpServer()) as server:
        session = smtplab.connect("127.0.0.1", server.port)
        session.ehlo()
        session.mail("alice@example.net")
        session.rcpt("nobody@example.org")
        session.rcpt("bob@example.org")
        session.data()
        session.message("Subject: both sides\n\nhello\n")
        session.quit()
    client, served = session.transcript, server.transcript()
    columns = ["kind", "verb", "argument", "code", "enhanced", "text", "size"]
    pd_client = client.query("kind != 'close'")[columns].reset_index(drop=True)
    pd_server = served.query("kind != 'close'")[columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(pd_client, pd_server, check_categorical=False)


def test_connecting_to_nothing_says_where() -> None:
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1:1"):
        smtplab.connect("127.0.0.1", 1)


def test_cli_send_prints_the_transcript_and_fails_when_a_recipient_is_refused(tmp_path) -> None:
    import subprocess
    import sys

    def send(*to: str) -> subprocess.CompletedProcess[str]:
        recipients = [arg for address in to for arg in ("--to", address)]
        return subprocess.run(
            [sys.executable, "-m", "smtplab", "send", "--server", f"127.0.0.1:{server.port}",
             "--from", "alice@example.net", *recipients, "--subject", "cli",
             "--transcript", str(tmp_path / "sent.csv")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    with ServerThread(TcpServer()) as server:
        ok = send("bob@example.org")
        partly = send("bob@example.org", "nobody@example.org")
    assert ok.returncode == 0, ok.stderr
    assert "C: MAIL FROM:<alice@example.net>" in ok.stdout
    assert "Accepted for bob@example.org: 250 2.0.0" in ok.stdout
    assert partly.returncode == 1
    assert "Refused nobody@example.org: 550 5.1.1" in partly.stdout
    assert (tmp_path / "sent.csv").exists()
    assert [m.message["Subject"] for m in server.messages] == ["cli", "cli"]


def test_send_follows_a_redirect_over_tcp() -> None:
    from smtplab.transport.tcp_client import send

    policy = smtplab.Mailboxes(
        domains=["example.org", "new.example"],
        mailboxes=["alice", "erin@new.example"],
        moved={"erin@example.org": "erin@new.example"},
    )
    with ServerThread(TcpServer(policy)) as server:
        result = send(f"127.0.0.1:{server.port}", "a@example.net", "erin@example.org",
                      follow_redirects=True)  # fmt: skip
    assert result.delivered and result.accepted == ["erin@new.example"]
    assert server.messages[0].recipients == ("erin@new.example",)
    assert len(result.transcript.query("kind == 'command' and verb == 'RCPT'")) == 2


def test_pipelined_chunks_over_tcp_arrive_byte_for_byte_and_both_sides_agree() -> None:
    from smtplab.transport.tcp_client import send

    with ServerThread(TcpServer()) as server:
        result = send(f"127.0.0.1:{server.port}", "alice@example.net",
                      ["bob@example.org", "nobody@example.org"], message=MESSAGE,
                      pipelining=True, chunking=True, chunk_size=40)  # fmt: skip
    assert result.pipelined and result.chunked and result.accepted == ["bob@example.org"]
    assert server.messages[0].content.endswith(MESSAGE)  # no dot-stuffing, none undone
    client, served = result.transcript, server.transcript()
    bdat = client.query("kind == 'command' and verb == 'BDAT'")
    assert bdat["size"].sum() == len(MESSAGE) and bdat["argument"].iloc[-1].endswith("LAST")
    columns = ["kind", "verb", "argument", "code", "enhanced", "text", "size", "lines"]
    # The client writes a group before reading; the server answers as it reads: the same
    # commands and replies, in the same order within each side.
    for kind in ("command", "reply"):
        pd.testing.assert_frame_equal(
            client[client["kind"] == kind][columns].reset_index(drop=True),
            served[served["kind"] == kind][columns].reset_index(drop=True),
            check_categorical=False,
        )


def test_aiosmtpd_offers_neither_extension_so_the_client_sends_plainly(aiosmtpd_server) -> None:
    from smtplab.transport.tcp_client import send

    port, handler = aiosmtpd_server
    result = send(f"127.0.0.1:{port}", "alice@example.net", "bob@example.org", message=MESSAGE,
                  pipelining=True, chunking=True)  # fmt: skip
    assert result.delivered and not result.pipelined and not result.chunked
    assert handler.messages == [("alice@example.net", ["bob@example.org"], MESSAGE)]


def test_cli_send_with_pipelining_and_chunking() -> None:
    import subprocess
    import sys

    with ServerThread(TcpServer()) as server:
        done = subprocess.run(
            [sys.executable, "-m", "smtplab", "send", "--server", f"127.0.0.1:{server.port}",
             "--from", "alice@example.net", "--to", "bob@example.org", "--subject", "chunks",
             "--pipelining", "--chunk-size", "64"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "then <chunk: 64 octets>" in done.stdout and " LAST then <chunk: " in done.stdout
    assert "Note:" not in done.stdout
    assert server.messages[0].message["Subject"] == "chunks"
