"""The asyncio client: in the same event loop as smtplab's server (as in a notebook), and
against aiosmtpd in its own thread."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiosmtpd.controller import Controller

import smtplab
from smtplab.transport.aio_client import AsyncSession

MESSAGE = b"Subject: async\r\n\r\n.a line with a dot\r\nbye\r\n"


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_client_and_server_share_one_event_loop() -> None:
    # A notebook cell: the server runs in the notebook's loop, so only an awaiting client
    # can talk to it without blocking that loop.
    async def main() -> tuple[smtplab.TcpServer, AsyncSession]:
        server = smtplab.TcpServer()
        await server.start()
        try:
            session = await smtplab.aconnect("127.0.0.1", server.port)
            assert session.greeting is not None and session.greeting.code == 220
            assert (await session.ehlo()).code == 250
            assert "CHUNKING" in session.extensions
            assert (await session.mail("alice@example.net")).code == 250
            assert (await session.rcpt("nobody@example.org")).code == 550
            assert (await session.rcpt("bob@example.org")).code == 250
            assert (await session.data()).code == 354
            assert (await session.message(MESSAGE)).code == 250
            live = server.transcript()  # the server's rows, while the session is still open
            assert live.query("kind == 'reply'")["code"].tolist()[-1] == 250
            assert (await session.quit()).code == 221
            assert session.closed
        finally:
            await server.stop()
        return server, session

    server, session = run(main())
    assert server.messages[0].content.endswith(MESSAGE)
    client, served = session.transcript, server.transcript()
    assert set(client["source"]) == {"tcp"} and client["kind"].iloc[-1] == "close"
    columns = ["kind", "verb", "argument", "code", "enhanced", "text", "size"]
    assert (
        client.query("kind != 'close'")[columns].reset_index(drop=True).astype(str).values.tolist()
        == served.query("kind != 'close'")[columns]
        .reset_index(drop=True)
        .astype(str)
        .values.tolist()
    )


def test_pipelined_chunks_and_a_context_manager() -> None:
    async def main() -> smtplab.TcpServer:
        server = smtplab.TcpServer()
        await server.start()
        try:
            async with await smtplab.aconnect("127.0.0.1", server.port) as session:
                await session.ehlo()
                group = session.pipeline().mail("alice@example.net").rcpt("bob@example.org")
                group.bdat(MESSAGE[:10]).bdat(MESSAGE[10:], last=True)
                replies = await group.send()
                assert [reply.code for reply in replies] == [250, 250, 250, 250]
            assert session.closed and session.history[-1].verb == "QUIT"
        finally:
            await server.stop()
        return server

    server = run(main())
    assert server.messages[0].content.endswith(MESSAGE)


def test_starttls_and_auth_in_one_loop() -> None:
    # In one loop the client's EHLO reaches the server with the end of the TLS handshake,
    # before the server's handshake coroutine resumes: it must be answered then, and the
    # handshake must not be started a second time over the running TLS.
    async def main() -> AsyncSession:
        policy = smtplab.Mailboxes(users={"alice": "secret"})
        server = smtplab.TcpServer(policy, tls=True, auth=True)
        await server.start()
        try:
            session = await smtplab.aconnect("127.0.0.1", server.port)
            await session.ehlo()
            assert (await session.starttls()).code == 220
            assert "AUTH" in (await session.ehlo()).text  # offered once TLS is on
            assert (await session.auth("alice", "secret")).code == 235
            await session.quit()
        finally:
            await server.stop()
        return session

    frame = run(main()).transcript
    assert frame.query("kind == 'tls'")["text"].str.startswith("TLS").all()
    assert frame.query("verb == 'AUTH' and kind == 'command'")["argument"].tolist() == ["PLAIN ***"]
    assert "secret" not in frame.to_csv()


def test_against_aiosmtpd_in_its_own_thread() -> None:
    class Keep:
        def __init__(self) -> None:
            self.messages: list[bytes] = []

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            self.messages.append(envelope.content)
            return "250 OK kept"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()

    async def main() -> None:
        async with await smtplab.aconnect("127.0.0.1", port) as session:
            await session.ehlo()
            await session.mail("alice@example.net")
            await session.rcpt("bob@example.org")
            await session.data()
            assert (await session.message(MESSAGE)).text == "OK kept"

    try:
        run(main())
    finally:
        controller.stop()
    assert handler.messages == [MESSAGE]


def test_connecting_to_nothing_says_where() -> None:
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1:1"):
        run(smtplab.aconnect("127.0.0.1", 1))


def test_a_silent_server_times_out_with_a_clear_error() -> None:
    async def main() -> None:
        listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        try:
            await smtplab.aconnect("127.0.0.1", port, timeout=0.3)
        finally:
            listener.close()

    with pytest.raises(TimeoutError, match=r"no reply from 127\.0\.0\.1 within 0\.3 s"):
        run(main())
