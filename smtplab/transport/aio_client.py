"""The client for asyncio: the step-by-step session, awaited, over asyncio streams.

A notebook runs an event loop; a server started in it (``await server.start()``) answers only
while that loop runs, so a blocking client in the same cell would wait forever. This session
awaits instead, and records the conversation from its bytes exactly as the blocking
:func:`smtplab.connect` does (source ``tcp``, the client's view)::

    server = smtplab.TcpServer()
    await server.start()                        # in the notebook's own loop
    session = await smtplab.aconnect("127.0.0.1", server.port)
    await session.ehlo()
    await session.mail("alice@example.net")
    ...
    await session.quit()
    session.transcript, server.transcript()     # the client's view and the server's

The protocol work - sequence checks, pipelining rules, reply parsing - is the same
:class:`~smtplab.protocol.ClientConnection` the blocking session uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

from smtplab.client.session import Pipeline, take_replies, to_bytes
from smtplab.log.frame import to_frame
from smtplab.log.recorder import Recorder
from smtplab.log.schema import endpoint
from smtplab.log.wire import WireRecorder
from smtplab.protocol.client import ClientConnection
from smtplab.protocol.errors import LocalProtocolError, RemoteProtocolError
from smtplab.protocol.events import Reply, ReplyReceived
from smtplab.protocol.states import State
from smtplab.transport.certs import unverified_client_context
from smtplab.transport.tcp_client import next_client_name


class AsyncSession:
    """An SMTP client session over asyncio: every command method is awaited for its reply.

    Open one with :func:`aconnect`. The methods mirror :class:`smtplab.Session`'s.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        name: str,
        host: str,
        client_name: str = "client.example.net",
        timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.client_name = client_name
        self.timeout = timeout
        self.conn = ClientConnection()
        self.history: list[ReplyReceived] = []
        self.greeting: Reply | None = None
        self.recorder = Recorder(name, "tcp")
        self.recorder.client = endpoint(writer.get_extra_info("sockname"))
        self.recorder.server = endpoint(writer.get_extra_info("peername"))
        self._wire = WireRecorder(self.recorder)
        self._wire.connected(time.time())
        self._reader, self._writer = reader, writer
        self._host = host
        self._closed = False

    # -- the commands -----------------------------------------------------------------------

    async def ehlo(self, domain: str | None = None) -> Reply:
        """EHLO: say hello and ask for the server's extensions (RFC 5321 4.1.1.1)."""
        return await self._command(lambda conn: conn.ehlo(domain or self.client_name))

    async def helo(self, domain: str | None = None) -> Reply:
        return await self._command(lambda conn: conn.helo(domain or self.client_name))

    async def mail(self, address: str, **params: str | None) -> Reply:
        return await self._command(lambda conn: conn.mail(address, params))

    async def rcpt(self, address: str, **params: str | None) -> Reply:
        return await self._command(lambda conn: conn.rcpt(address, params))

    async def data(self) -> Reply:
        return await self._command(lambda conn: conn.data())

    async def message(self, content: str | bytes | EmailMessage) -> Reply:
        """The message after 354, dot-stuffed, then the final dot; one reply after it."""
        return await self._command(lambda conn: conn.send_message(to_bytes(content)))

    async def bdat(self, chunk: str | bytes | EmailMessage, last: bool = False) -> Reply:
        """BDAT: one chunk as it is (RFC 3030); the ``last`` one completes the message."""
        return await self._command(lambda conn: conn.bdat(to_bytes(chunk), last))

    async def rset(self) -> Reply:
        return await self._command(lambda conn: conn.rset())

    async def noop(self) -> Reply:
        return await self._command(lambda conn: conn.noop())

    async def vrfy(self, string: str) -> Reply:
        return await self._command(lambda conn: conn.vrfy(string))

    async def expn(self, string: str) -> Reply:
        return await self._command(lambda conn: conn.expn(string))

    async def help(self, topic: str = "") -> Reply:
        return await self._command(lambda conn: conn.help(topic))

    async def auth(self, username: str, password: str) -> Reply:
        """AUTH PLAIN (RFC 4954); the transcript keeps only the mechanism."""
        return await self._command(lambda conn: conn.auth_plain(username, password))

    async def starttls(self, context: ssl.SSLContext | None = None) -> Reply:
        """STARTTLS (RFC 3207); on 220 the stream continues under TLS (unverified unless a
        ``context`` says otherwise, as ``smtplib`` does). EHLO again afterwards."""
        reply = await self._command(lambda conn: conn.starttls())
        if reply.code == 220:
            if context is None:
                context = unverified_client_context()
            try:
                await self._writer.start_tls(context, server_hostname=self._host)
            except (ssl.SSLError, OSError) as error:
                self._lost(f"TLS handshake failed: {error}")
                raise ConnectionError(f"TLS with {self._host} failed: {error}") from None
            tls = self._writer.get_extra_info("ssl_object")
            cipher = tls.cipher()[0] if tls is not None and tls.cipher() else "?"
            version = tls.version() if tls is not None else "?"
            self.recorder.tls_started(time.time(), f"{version} {cipher}")
        return reply

    async def quit(self) -> Reply:
        return await self._command(lambda conn: conn.quit())

    async def send(self, line: str) -> Reply:
        """Send one command line exactly as typed, unchecked (CRLF is added)."""
        if "\r" in line or "\n" in line:
            raise ValueError("send() takes one line; use send_raw() for CR, LF or several lines")
        replies = await self.send_raw(line.encode("utf-8") + b"\r\n")
        if not replies:
            raise LocalProtocolError(f"the server did not answer {line!r}")
        return replies[0]

    async def send_raw(self, data: bytes) -> list[Reply]:
        """Send bytes exactly as given; return every reply the server sent back."""
        self._check_open()
        self.conn.send_raw(data)
        return await self._flush()

    def pipeline(self) -> Pipeline[Awaitable[list[Reply]]]:
        """A group of commands sent in one write (RFC 2920); ``await group.send()``."""
        return Pipeline(self.conn, self._check_open, self._send_group)

    async def close(self, reason: str = "") -> None:
        """Drop the connection without QUIT (``reason``, if any, is recorded with it)."""
        if not self._closed:
            self._closed = True
            self._writer.close()
            self._wire.closed(time.time(), "client", reason)

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        """QUIT if the session is still open, then close."""
        if not self._closed and self.conn.state is not State.CLOSED:
            with contextlib.suppress(LocalProtocolError, ConnectionError):
                await self.quit()
        await self.close()

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.conn.state

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def extensions(self) -> dict[str, str]:
        return dict(self.conn.extensions)

    @property
    def transcript(self) -> Any:
        """This session's rows as a transcript DataFrame."""
        return to_frame(self.recorder.tuples)

    def __repr__(self) -> str:
        return f"<AsyncSession {self.name} {self.state.value}, {len(self.history)} replies>"

    # -- plumbing ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed or self.conn.state is State.CLOSED:
            raise LocalProtocolError(f"session {self.name} is closed; connect again")

    async def _command(self, queue: Callable[[ClientConnection], None]) -> Reply:
        self._check_open()
        queue(self.conn)
        replies = await self._flush()
        if not replies:
            raise LocalProtocolError("the server closed the connection without replying")
        return replies[0]  # later ones are unsolicited (a 421) and stay in ``history``

    async def _send_group(self, count: int) -> list[Reply]:
        if not count:
            return []
        self._check_open()
        return (await self._flush())[:count]

    async def _flush(self) -> list[Reply]:
        """Write what is queued, then read until no reply is owed (or the server closed).

        ``timeout`` is a deadline per reply (from the write, or the reply before, to the
        reply's last octet), not per read. A server that breaks the protocol raises
        :class:`RemoteProtocolError` and a reply that does not come in time TimeoutError;
        either way the connection is closed first."""
        out = self.conn.data_to_send()
        if out and not self._closed:
            try:
                self._writer.write(out)
                await asyncio.wait_for(self._writer.drain(), self.timeout)
            except OSError:  # a timeout too: the server took nothing in for that long
                self._lost("the connection broke while sending")
            else:
                self._wire.sent(out, time.time())
        replies: list[Reply] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while self.conn.expects_reply and not self._closed:
            data = await self._read(deadline)
            try:
                new = take_replies(self.conn, data, self._closed, self.history)
            except RemoteProtocolError as error:
                await self.close(f"the server broke the protocol: {error}")
                raise
            if new:
                deadline = loop.time() + self.timeout  # the next reply's wait starts
            replies += new
        if self.conn.state is State.CLOSED and not self._closed:
            await self.close()  # after 221 or 421 the server is gone: hang up too
        return replies

    async def _read(self, deadline: float) -> bytes:
        """More bytes from the server (``b""``: it closed), by ``deadline`` (loop time)."""
        try:
            async with asyncio.timeout_at(deadline):
                data = await self._reader.read(65536)
        except TimeoutError:
            await self.close(f"no complete reply within {self.timeout:g} s")
            raise TimeoutError(f"no reply from {self._host} within {self.timeout:g} s") from None
        except OSError:
            data = b""
        if data:
            self._wire.received(data, time.time())
        else:
            self._lost("server closed the connection")
        return data

    def _lost(self, text: str) -> None:
        if not self._closed:
            self._closed = True
            self._writer.close()
            self._wire.closed(time.time(), "server", text)


async def aconnect(
    host: str,
    port: int = 25,
    *,
    client_name: str = "client.example.net",
    timeout: float = 60.0,
    name: str | None = None,
) -> AsyncSession:
    """Open a recorded asyncio client session to the SMTP server at ``host:port``; its
    greeting is in ``session.greeting``."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as error:
        raise ConnectionError(f"cannot connect to {host}:{port}: {error}") from None
    session = AsyncSession(
        reader,
        writer,
        name=name or next_client_name(),
        host=host,
        client_name=client_name,
        timeout=timeout,
    )
    replies = await session._flush()  # the greeting comes first (RFC 5321 3.1)
    session.greeting = replies[0] if replies else None
    return session
