"""A step-by-step client session: one method per command, each returning the server's reply.

This is the notebook API::

    session = lab.connect()
    session.ehlo()                       # 250 mx.example.org greets client.example.net ...
    session.mail("alice@example.net")    # 250 2.1.0 Sender <alice@example.net> OK
    session.rcpt("bob@example.org")      # 250 2.1.5 Recipient <bob@example.org> OK
    session.data()                       # 354 End data with <CR><LF>.<CR><LF>
    session.message("Subject: Hi\\n\\nHello Bob\\n")   # 250 2.0.0 OK: queued as ...
    session.quit()                       # 221 2.0.0 mx.example.org closing connection

Typed methods check the sequence first and raise :class:`LocalProtocolError` for misuse;
:meth:`Session.send` and :meth:`Session.send_raw` send anything, so you can watch the server
answer mistakes (503, 500, 501 ...).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any, Generic, Protocol, TypeVar

from smtplab.protocol.client import ClientConnection
from smtplab.protocol.errors import LocalProtocolError, RemoteProtocolError
from smtplab.protocol.events import Reply, ReplyReceived
from smtplab.protocol.states import State

R = TypeVar("R")


class Link(Protocol):
    """A synchronous byte pipe to a server (see :class:`smtplab.transport.InProcessLink`)."""

    @property
    def closed(self) -> bool: ...

    def open(self) -> bytes: ...

    def exchange(self, data: bytes) -> bytes: ...

    def read(self) -> bytes: ...

    def expect_reply(self) -> None:
        """One more reply is owed from now (over TCP its deadline starts: see TcpLink)."""

    def close(self, reason: str = "") -> None: ...


class Session:
    """A client session over a :class:`Link`, driven one command at a time."""

    def __init__(
        self,
        link: Link,
        *,
        name: str,
        client_name: str = "client.example.net",
        transcript: Callable[[], Any] | None = None,
    ) -> None:
        self.name = name
        self.client_name = client_name
        self.conn = ClientConnection()
        self.history: list[ReplyReceived] = []
        self._link = link
        self._transcript = transcript
        replies = self._collect(link.open())
        # The server's first reply; None when it closed the connection without greeting.
        self.greeting: Reply | None = replies[0] if replies else None

    # -- the commands -----------------------------------------------------------------------

    def ehlo(self, domain: str | None = None) -> Reply:
        """EHLO: say hello and ask for the server's extensions (RFC 5321 4.1.1.1)."""
        self.conn.ehlo(domain or self.client_name)
        return self._one()

    def helo(self, domain: str | None = None) -> Reply:
        """HELO: the original hello, without extensions."""
        self.conn.helo(domain or self.client_name)
        return self._one()

    def mail(self, address: str, **params: str | None) -> Reply:
        """MAIL FROM:<address> starts a transaction (``""`` is the null sender <>)."""
        self.conn.mail(address, params)
        return self._one()

    def rcpt(self, address: str, **params: str | None) -> Reply:
        """RCPT TO:<address> adds one recipient."""
        self.conn.rcpt(address, params)
        return self._one()

    def data(self) -> Reply:
        """DATA: ask to send the message; the server answers 354 to go ahead."""
        self.conn.data()
        return self._one()

    def message(self, content: str | bytes | EmailMessage) -> Reply:
        """Send the message after 354, then the final dot; the server replies once, after it."""
        self.conn.send_message(to_bytes(content))
        return self._one()

    def bdat(self, chunk: str | bytes | EmailMessage, last: bool = False) -> Reply:
        """BDAT: send one chunk of the message as it is, no dot-stuffing (RFC 3030). The server
        replies after the chunk; the ``last`` chunk completes the message (250: accepted)."""
        self.conn.bdat(to_bytes(chunk), last)
        return self._one()

    def pipeline(self) -> Pipeline[list[Reply]]:
        """A group of commands sent in one write, replies read after (RFC 2920 PIPELINING)::

        group = session.pipeline().mail("alice@example.net").rcpt("bob@example.org")
        replies = group.data().send()   # [250, 250, 354]: then session.message(...)
        """
        return Pipeline(self.conn, self._check_open, self._send_group)

    def rset(self) -> Reply:
        self.conn.rset()
        return self._one()

    def noop(self) -> Reply:
        self.conn.noop()
        return self._one()

    def vrfy(self, string: str) -> Reply:
        self.conn.vrfy(string)
        return self._one()

    def expn(self, string: str) -> Reply:
        self.conn.expn(string)
        return self._one()

    def help(self, topic: str = "") -> Reply:
        self.conn.help(topic)
        return self._one()

    def auth(self, username: str, password: str) -> Reply:
        """AUTH PLAIN (RFC 4954): 235 when the server accepts the credentials. The transcript
        keeps only the mechanism; use it under TLS (``starttls()`` first)."""
        self.conn.auth_plain(username, password)
        return self._one()

    def starttls(self, context: ssl.SSLContext | None = None) -> Reply:
        """STARTTLS (RFC 3207): on 220 the connection continues under TLS; EHLO again.

        Without ``context`` the server's certificate is not verified, as ``smtplib`` does for
        opportunistic TLS; pass ``ssl.create_default_context(cafile=...)`` to verify it.
        """
        start_tls = getattr(self._link, "start_tls", None)
        if start_tls is None:
            raise LocalProtocolError("this connection cannot run TLS (the in-process lab has none)")
        self.conn.starttls()
        reply = self._one()
        if reply.code == 220:
            start_tls(context)
        return reply

    def quit(self) -> Reply:
        """QUIT: the server replies 221 and closes the connection."""
        self.conn.quit()
        return self._one()

    def send(self, line: str) -> Reply:
        """Send one command line exactly as typed, unchecked (CRLF is added)."""
        if "\r" in line or "\n" in line:
            raise ValueError("send() takes one line; use send_raw() for CR, LF or several lines")
        replies = self.send_raw(line.encode("utf-8") + b"\r\n")
        if not replies:
            raise LocalProtocolError(f"the server did not answer {line!r}")
        return replies[0]

    def send_raw(self, data: bytes) -> list[Reply]:
        """Send bytes exactly as given; return every reply the server sent back."""
        self._check_open()
        self.conn.send_raw(data)
        return self._collect(self._link.exchange(self.conn.data_to_send()))

    def close(self) -> None:
        """Drop the connection without QUIT (what a crashed client does)."""
        self._link.close()

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.conn.state

    @property
    def closed(self) -> bool:
        return self._link.closed

    @property
    def extensions(self) -> dict[str, str]:
        """The EHLO keywords the server advertised."""
        return dict(self.conn.extensions)

    @property
    def transcript(self) -> Any:
        """This session's rows as a transcript DataFrame."""
        if self._transcript is None:
            raise LocalProtocolError("this session is not recorded")
        return self._transcript()

    def __repr__(self) -> str:
        return f"<Session {self.name} {self.state.value}, {len(self.history)} replies>"

    # -- plumbing ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._link.closed or self.conn.state is State.CLOSED:
            raise LocalProtocolError(f"session {self.name} is closed; connect again")

    def _one(self) -> Reply:
        link, conn = self._link, self.conn
        if link.closed or conn.state is State.CLOSED:
            self._check_open()  # raises
        replies = self._collect(link.exchange(conn.data_to_send()))
        if not replies:
            raise LocalProtocolError("the server closed the connection without replying")
        # The first reply answers the command; any after it are unsolicited (a 421 closing
        # the session after too many errors, RFC 5321 3.8) and stay in ``history``.
        return replies[0]

    def _send_group(self, count: int) -> list[Reply]:
        """Send what is queued; return the ``count`` replies it owes (fewer if the server
        closed first), and keep any later unsolicited ones in ``history`` only."""
        if not count:
            return []
        self._check_open()
        return self._collect(self._link.exchange(self.conn.data_to_send()))[:count]

    def _collect(self, data: bytes) -> list[Reply]:
        """The replies in ``data``, reading more while replies are still owed (over TCP a
        reply may come in pieces; in-process it is all there at once).

        A server that breaks the protocol (what it sends is no reply, or answers nothing)
        raises :class:`RemoteProtocolError`; the connection is closed first, as nothing it
        says later could be paired with a command."""
        conn, link = self.conn, self._link
        closed = link.closed  # asked once per read: only reading can change it
        try:
            replies = take_replies(conn, data, closed, self.history)
            answered = len(replies)
            while not closed and conn.expects_reply:
                if answered:
                    link.expect_reply()  # each reply has its own deadline
                more = link.read()
                if not more:
                    break
                closed = link.closed
                new = take_replies(conn, more, closed, self.history)
                answered = len(new)
                replies += new
        except RemoteProtocolError as error:
            link.close(f"the server broke the protocol: {error}")
            raise
        if not closed and conn.state is State.CLOSED:
            link.close()  # after 221 or 421 the server is gone: hang up too
        return replies


def take_replies(
    conn: ClientConnection, data: bytes, closed: bool, history: list[ReplyReceived]
) -> list[Reply]:
    """Feed the server's ``data`` (and its close, if ``closed``) to ``conn``; the complete
    replies it held, each also appended to ``history``."""
    if data:
        conn.receive_data(data)
    if closed:
        conn.receive_data(b"")
    replies: list[Reply] = []
    while True:
        event = conn.next_event()
        if not isinstance(event, ReplyReceived):  # NEED_DATA, or ConnectionClosed
            return replies
        history.append(event)
        replies.append(event.reply)


def to_bytes(content: str | bytes | EmailMessage) -> bytes:
    """Message content as bytes; an EmailMessage is serialised with CRLF line ends."""
    if isinstance(content, EmailMessage):
        return content.as_bytes(policy=SMTP)
    if isinstance(content, str):
        return content.encode("utf-8")
    return content


class Pipeline(Generic[R]):
    """Commands queued on a session and sent together by :meth:`send`.

    Each method checks the command as the session's typed methods do, including RFC 2920 3.1:
    the server must have advertised PIPELINING, and only the last command of a group may be
    one whose reply changes what comes next (EHLO, DATA, QUIT, NOOP, ...). BDAT chunks may
    be pipelined (RFC 3030 4). A command refused here leaves nothing of the group queued.
    ``send()`` returns the replies (from an asyncio session: a coroutine to await for them).
    """

    def __init__(
        self, conn: ClientConnection, check_open: Callable[[], None], flush: Callable[[int], R]
    ) -> None:
        self._conn = conn
        self._check_open = check_open
        self._flush = flush  # sends what is queued; gets how many replies it owes
        self._queued = 0
        self._start = conn.savepoint()

    def mail(self, address: str, **params: str | None) -> Pipeline[R]:
        return self._queue(lambda conn: conn.mail(address, params))

    def rcpt(self, address: str, **params: str | None) -> Pipeline[R]:
        return self._queue(lambda conn: conn.rcpt(address, params))

    def data(self) -> Pipeline[R]:
        return self._queue(lambda conn: conn.data())

    def bdat(self, chunk: str | bytes | EmailMessage, last: bool = False) -> Pipeline[R]:
        return self._queue(lambda conn: conn.bdat(to_bytes(chunk), last))

    def rset(self) -> Pipeline[R]:
        return self._queue(lambda conn: conn.rset())

    def noop(self) -> Pipeline[R]:
        return self._queue(lambda conn: conn.noop())

    def quit(self) -> Pipeline[R]:
        return self._queue(lambda conn: conn.quit())

    def send(self) -> R:
        """Send the group in one write; the replies, in command order (RFC 2920 3.1)."""
        count, self._queued = self._queued, 0
        replies = self._flush(count)
        self._start = self._conn.savepoint()
        return replies

    def _queue(self, command: Callable[[ClientConnection], None]) -> Pipeline[R]:
        self._check_open()
        try:
            command(self._conn)
        except LocalProtocolError:  # nothing of a refused group is sent
            self._conn.rollback(self._start)
            self._queued = 0
            raise
        self._queued += 1
        return self
