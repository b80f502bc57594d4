"""The TCP server: real sockets, real time, the same sans-IO session as the lab.

:class:`TcpServer` accepts connections with asyncio and drives one
:class:`~smtplab.server.ServerSession` per connection - the same policy, store and recorder as
in-process, with the wall clock and real endpoints (rows have source ``tcp``). It can run in a
running event loop (``await server.start()``) or in a thread of its own
(:class:`ServerThread`), which is what a notebook or a script needs when a blocking client such
as ``smtplib`` talks to it from the same process::

    with smtplab.ServerThread(smtplab.TcpServer(port=2525)) as server:
        smtplib.SMTP("127.0.0.1", server.port).sendmail(...)
    server.transcript()

Facing real clients, it listens on 127.0.0.1 unless told otherwise and protects itself as
Postfix's smtpd does:

* Deadlines, not idle timers: each command must be complete within ``idle_timeout`` seconds
  of the previous reply (RFC 5321 4.5.3.2.7), and a message's content within
  ``data_timeout`` of its 354 (or its first BDAT chunk); bytes that trickle in do not reset
  them (a "slowloris" client cannot hold a session). On expiry: ``421 4.4.2`` and close.
* A session that collects ``error_limit`` error replies gets ``421 4.7.0``; EHLO, HELO, NOOP,
  RSET, VRFY, EXPN and HELP beyond ``junk_limit`` count as errors, as in Postfix; after
  ``command_limit`` commands of any kind the session gets ``421 4.7.0`` (the client
  reconnects), so no session's transcript grows without end.
* Connections beyond ``max_sessions``, or beyond ``max_sessions_per_client`` from one client
  address, are greeted with ``421 4.7.0`` and closed (recorded like any session).
* Back-pressure: input is handed to the session a bounded slice (``FEED`` octets of commands,
  ``FEED_MESSAGE`` of message content) per turn of the event loop, so one client's megabytes
  of pipelined commands do not hold up the others; while the client does not read its
  replies, nothing more is parsed and reading pauses; at most ``MAX_UNPARSED`` received octets
  wait unparsed.
* :meth:`TcpServer.stop` lets sessions in the middle of a transaction finish for a grace
  period, then says ``421 4.3.2`` to the rest.

Running for weeks, it stays bounded: it keeps the rows of the last ``keep_sessions`` finished
sessions (and of those still open) for :meth:`TcpServer.transcript`, handing each finished
session to ``on_session_end`` first (``smtplab serve --transcript`` streams them to a file), and
its default store keeps the last ``keep_messages`` messages. A store that waits on a disk
(``Store.blocking``, e.g. a Maildir) keeps each message in a worker thread, one at a time,
while the event loop goes on serving other clients; the 250 is sent once the store returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import socket
import ssl
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from smtplab.log.frame import to_frame
from smtplab.log.recorder import Recorder
from smtplab.log.schema import endpoint
from smtplab.protocol.config import ServerConfig
from smtplab.protocol.events import Reply
from smtplab.protocol.states import State
from smtplab.server.delivery import Delivery
from smtplab.server.mailboxes import Mailboxes
from smtplab.server.policy import Policy
from smtplab.server.session import ServerSession
from smtplab.server.store import MemoryStore, Store, StoredMessage
from smtplab.transport.certs import server_context

IDLE = Reply(421, "Timeout exceeded waiting for a command, closing connection", "4.4.2")
SLOW_DATA = Reply(421, "Timeout exceeded while reading the message, closing connection", "4.4.2")
BUSY = Reply(421, "Too many connections, try again later", "4.7.0")
BUSY_CLIENT = Reply(421, "Too many connections from your address, try again later", "4.7.0")
STOPPING = Reply(421, "Server shutting down, closing connection", "4.3.2")
INTERNAL = Reply(421, "Local error in processing, closing connection", "4.3.0")
IN_TRANSACTION = (State.MAIL, State.RCPT, State.DATA)
LINGER = 10.0  # seconds a closing connection may take to read its last replies
# Octets handed to a session per turn of the event loop, sized by what they cost: command
# lines are parsed and answered one by one (512 octets: a dozen or so short commands, well
# under a millisecond), message content a block at a time. With twenty clients flooding
# commands, a well-behaved client's greeting then waited about 55 ms in benchmarks/abuse.py
# (about 110 ms with 2 or 16 KiB slices).
FEED = 512
FEED_MESSAGE = 64 * 1024
MAX_UNPARSED = 256 * 1024  # received octets waiting to be parsed; reading pauses beyond it
# The kernel's send buffer for a connection (Linux doubles it). Without it, autotuning lets
# megabytes of replies that the client never reads pile up before asyncio sees back-pressure;
# replies are short, so this costs a well-behaved client nothing.
SEND_BUFFER = 64 * 1024


class TcpServer:
    """An SMTP server on a TCP port, recording every session (see the module docstring)."""

    def __init__(
        self,
        policy: Policy | None = None,
        config: ServerConfig | None = None,
        *,
        store: Store | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "tcp",
        idle_timeout: float = 300.0,
        data_timeout: float = 600.0,
        error_limit: int | None = 20,
        junk_limit: int | None = 100,
        command_limit: int | None = 10_000,
        max_sessions: int = 100,
        max_sessions_per_client: int | None = 20,
        tls: bool | ssl.SSLContext = False,
        auth: bool = False,
        keep_sessions: int = 1000,
        keep_messages: int = 1000,
        on_session_end: Callable[[Recorder], None] | None = None,
    ) -> None:
        for option, seconds in (("idle_timeout", idle_timeout), ("data_timeout", data_timeout)):
            if not seconds > 0:
                raise ValueError(f"{option} must be a positive number of seconds, not {seconds}")
        if max_sessions_per_client is not None and max_sessions_per_client < 1:
            raise ValueError(
                f"max_sessions_per_client must be 1 or more (None: no limit), "
                f"not {max_sessions_per_client}"
            )
        self.policy = policy if policy is not None else Mailboxes()
        self.config = config if config is not None else ServerConfig()
        # STARTTLS (RFC 3207): True for the lab certificate (made on first use), or a context.
        self.tls_context: ssl.SSLContext | None = None
        if tls:
            self.tls_context = tls if isinstance(tls, ssl.SSLContext) else server_context()
            extensions = self.config.extensions | {"STARTTLS"}
            self.config = dataclasses.replace(self.config, extensions=extensions)
        if auth:  # AUTH PLAIN LOGIN (RFC 4954), offered under TLS; the policy checks passwords
            extensions = self.config.extensions | {"AUTH"}
            self.config = dataclasses.replace(self.config, extensions=extensions)
        if keep_sessions < 0 or keep_messages < 0:
            raise ValueError("keep_sessions and keep_messages are counts: 0 or more")
        # The default store keeps the last keep_messages messages; a store given is used as is.
        self.store = store if store is not None else MemoryStore(keep=keep_messages)
        self.host = host
        self.port = port  # the real port once started (port 0 picks a free one)
        self.name = name
        # Seconds for each command, counted from the previous reply (RFC 5321 4.5.3.2.7 asks
        # for at least 5 minutes), and for a whole message's content, counted from its 354.
        self.idle_timeout = idle_timeout
        self.data_timeout = data_timeout
        self.error_limit = error_limit
        self.junk_limit = junk_limit
        self.command_limit = command_limit
        self.max_sessions = max_sessions
        # As Postfix's smtpd_client_connection_count_limit; None: no limit per address.
        self.max_sessions_per_client = max_sessions_per_client
        self.keep_sessions = keep_sessions
        # Called with each finished session's recorder (on the event loop), before the ring
        # may forget it: where rows go that must outlive the ring.
        self.on_session_end = on_session_end
        self.sessions = 0  # sessions so far, finished or not
        self._finished: deque[tuple[int, Recorder]] = deque(maxlen=keep_sessions)
        self._live: dict[int, Recorder] = {}
        self._numbers = itertools.count(1)
        self._executor: ThreadPoolExecutor | None = None  # keeps messages for a blocking store
        self._deliveries: set[asyncio.Future[Any]] = set()
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._per_client: dict[str, int] = {}  # client address -> sessions open (never 0)
        self.stopping = False

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; returns once the port is bound (``self.port`` then holds it)."""
        if self._server is not None:
            raise RuntimeError("the server is already running")
        loop = asyncio.get_running_loop()
        # One thread: a store is called for one message at a time, as in-process.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"smtplab-{self.name}-store")
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening; end every session, giving open transactions ``grace`` seconds."""
        if self._server is None:
            return
        self._server.close()
        self.stopping = True  # sessions that finish a transaction now are told 421 at once
        for connection in list(self._connections):
            if connection.session.conn.state not in IN_TRANSACTION:
                connection.shutdown(STOPPING)  # between transactions: nothing to finish
        if self._connections:
            pending = [c.done for c in self._connections]
            _, late = await asyncio.wait(pending, timeout=grace)
            for connection in list(self._connections):
                if connection.done in late:
                    connection.shutdown(STOPPING)
            if late:
                _, stuck = await asyncio.wait(late, timeout=grace)
                for connection in list(self._connections):
                    if connection.done in stuck:
                        connection.transport.abort()  # a peer that does not even read
        await self._server.wait_closed()
        if self._deliveries:  # messages still being stored (their clients may have left)
            await asyncio.wait(list(self._deliveries))
        if self._executor is not None:
            self._executor.shutdown(wait=False)  # idle now
            self._executor = None
        for number in list(self._live):  # sessions whose connection_lost is still to come
            self._session_ended(number)
        self._server = None
        self.stopping = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- what it recorded -------------------------------------------------------------------

    @property
    def recorders(self) -> list[Recorder]:
        """The sessions kept in memory, oldest first: the last ``keep_sessions`` finished ones
        and every open one."""
        kept = list(self._finished) + list(self._live.items())
        return [recorder for _, recorder in sorted(kept, key=lambda pair: pair[0])]

    def transcript(self) -> Any:
        """The sessions kept in memory (see :attr:`recorders`) as one transcript DataFrame
        (safe from another thread)."""
        return to_frame(row for recorder in self.recorders for row in list(recorder.tuples))

    def _new_session(self, client: str, local: str) -> tuple[int, Recorder]:
        """A number and a recorder for a new connection's session."""
        number = next(self._numbers)
        self.sessions += 1
        recorder = self._live[number] = Recorder(f"{self.name}-{number}", "tcp", client, local)
        return number, recorder

    def _session_ended(self, number: int) -> None:
        """A session is over: hand it to ``on_session_end``, then into the ring of finished
        sessions (the oldest drops out once it is full)."""
        recorder = self._live.pop(number, None)
        if recorder is None:  # ended already (at stop, before its connection_lost)
            return
        if self.on_session_end is not None:
            try:
                self.on_session_end(recorder)
            except Exception as error:  # the writer's problem must not stop the server
                warnings.warn(f"on_session_end failed: {error!r}", stacklevel=1)
        if self.keep_sessions:
            self._finished.append((number, recorder))

    @property
    def messages(self) -> list[StoredMessage]:
        return list(self.store.messages)


class _Connection(asyncio.Protocol):
    """One TCP connection: bytes in to the session, its replies out, deadlines around it.

    Received bytes wait in ``inbox`` and are handed to the session at most ``FEED`` octets per
    turn of the event loop (``FEED_MESSAGE`` while a message's content is read). Nothing is
    handed over while a delayed reply is held (replies stay in order), while the client does
    not read what it is sent (asyncio's pause_writing), while a message is being stored or
    while a TLS handshake is pending; reading pauses then, and whenever ``MAX_UNPARSED``
    octets wait, so a client can never make the server buffer without bound. Once the session
    is over, the socket closes after the last reply is written - or is aborted after
    ``LINGER`` seconds if the client never reads it.
    """

    def __init__(self, server: TcpServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.transport: asyncio.Transport
        self.session: ServerSession
        # Replies a policy delays: the bytes before each delay, then the delay, in order.
        self.held: list[tuple[bytes, float]] = []
        self.releasing: asyncio.TimerHandle | None = None  # a delay being waited out
        self.inbox = bytearray()  # received, not yet handed to the session
        self.eof = False  # the client closed its side (handed over once the inbox is empty)
        self.eof_fed = False
        self.feeding: asyncio.Handle | None = None  # the next slice, at the next loop turn
        self.reading = True  # whether the transport reads (we asked it to)
        self.writes_blocked = False  # the client is not reading: asyncio asked us to pause
        self.last_progress = self.loop.time()  # the last complete input, or our last reply
        self.message_started: float | None = None  # when the current message's content began
        self.deadline_timer: asyncio.TimerHandle | None = None
        self.linger_timer: asyncio.TimerHandle | None = None
        self.refused = False  # over a session limit: greeted with 421, no session
        self.client_address = ""  # the peer's address without port (the per-client key)
        self.tls_task: asyncio.Task[None] | None = None  # the STARTTLS handshake, once begun
        self.delivering = False  # the store is keeping a message in its worker thread
        self.gone = False  # connection_lost came
        self.number = 0  # the session's number in the server

    # -- asyncio's callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is one without subclassing asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        peer = transport.get_extra_info("peername")
        client = endpoint(peer)
        local = endpoint(transport.get_extra_info("sockname"))
        self.number, recorder = server._new_session(client, local)
        self.session = ServerSession(
            policy=server.policy,
            store=server.store,
            recorder=recorder,
            clock=self._clock,
            config=server.config,
            client=client,
            wait=self._wait,
            error_limit=server.error_limit,
            junk_limit=server.junk_limit,
            command_limit=server.command_limit,
            defer_delivery=server.store.blocking,  # kept in the store's thread, see _deliver
        )
        if len(server._connections) >= server.max_sessions:
            self._refuse(recorder, BUSY, f"more than {server.max_sessions} sessions at once")
            return
        address = str(peer[0]) if isinstance(peer, tuple) and peer else client
        per_client = server.max_sessions_per_client
        if per_client is not None and server._per_client.get(address, 0) >= per_client:
            note = f"more than {per_client} sessions at once from {address}"
            self._refuse(recorder, BUSY_CLIENT, note)
            return
        self.client_address = address
        server._per_client[address] = server._per_client.get(address, 0) + 1
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):  # not a kernel socket
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        server._connections.add(self)
        self._guarded(self.session.start)
        self.last_progress = self.loop.time()
        self._arm_deadline()

    def data_received(self, data: bytes) -> None:
        if self.refused or self.eof_fed:
            return  # nothing more is read from this client
        self.inbox += data
        if self.feeding is None:
            self._feed()  # the usual case: a command or two, answered at once
        else:
            self._update_reading()

    def eof_received(self) -> bool:
        self.eof = True
        if self.feeding is None:
            self._feed()
        # True keeps the transport open until the input before the end has been answered.
        return not self.eof_fed

    def pause_writing(self) -> None:
        self.writes_blocked = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writes_blocked = False
        self._feed_again()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self.deadline_timer, self.releasing, self.linger_timer, self.feeding):
            if timer is not None:
                timer.cancel()
        self.inbox.clear()
        if not self.refused:
            self.session.lost()  # gone without QUIT (or while we wrote): recorded once
        if self in self.server._connections:
            self.server._connections.discard(self)
            left = self.server._per_client.pop(self.client_address, 1) - 1
            if left:
                self.server._per_client[self.client_address] = left
        self.gone = True
        if not self.delivering:  # else once the store returned: its outcome is a row too
            self.server._session_ended(self.number)
        if not self.done.done():
            self.done.set_result(None)

    # -- processing -------------------------------------------------------------------------

    def _guarded(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the session, then send. A bug must not take the server down, nor
        leave the client waiting: it gets 421 4.3.0 and the session is closed."""
        try:
            work()
            if self.server.stopping and self.session.conn.state not in IN_TRANSACTION:
                self.session.shutdown(STOPPING, "the server is stopping")
        except Exception as error:
            note = f"internal error, closing with 421: {error!r}"
            try:
                self.session.shutdown(INTERNAL, note)
            except Exception:  # the session itself is broken: say it on the wire anyway
                self.session.conn.close()
                self.transport.write(INTERNAL.to_bytes())
        self._send()

    def _may_feed(self) -> bool:
        """Whether the session may be handed more input now."""
        return (
            self.releasing is None
            and not self.writes_blocked
            and not self.delivering
            and not self.session.conn.tls_pending
            and not self.transport.is_closing()
        )

    def _feed(self) -> None:
        """Hand the session one slice of the input that waits; the next slice follows at the
        next turn of the loop, so other connections are served in between."""
        self.feeding = None
        if self.transport.is_closing():
            self.inbox.clear()
            return
        if not self._may_feed():  # resume_writing, a released delay or TLS feeds again
            self._update_reading()
            return
        session = self.session
        if self.inbox:
            size = FEED_MESSAGE if session.conn.reading_message else FEED
            chunk = bytes(self.inbox[:size])
            del self.inbox[:size]
            before = session.inputs
            self._guarded(lambda: session.receive(chunk))
            now = self.loop.time()
            if session.inputs != before:
                self.last_progress = now
            if session.conn.tls_pending:
                # RFC 3207 4.2: plaintext after STARTTLS is discarded, never read as if it had
                # come over TLS (CVE-2011-0411); the core dropped what it was handed already.
                self.inbox.clear()
            reading_message = session.conn.reading_message
            if reading_message and self.message_started is None:
                self.message_started = now
            elif not reading_message:
                self.message_started = None
            self._arm_deadline()  # a message begun: its deadline may come first
        elif self.eof and not self.eof_fed:
            self.eof_fed = True
            self._guarded(lambda: session.receive(b""))
            if not self.transport.is_closing():
                self.transport.close()
            return
        if (self.inbox or (self.eof and not self.eof_fed)) and self._may_feed():
            self.feeding = self.loop.call_soon(self._feed)
        self._update_reading()

    def _feed_again(self) -> None:
        """What held the input back is gone: go on feeding (unless a slice is due anyway)."""
        if self.feeding is None:
            self._feed()

    def _update_reading(self) -> None:
        """Read from the socket only while input can be handed on and little of it waits."""
        if self.transport.is_closing():
            return
        wanted = self._may_feed() and len(self.inbox) < MAX_UNPARSED and not self.eof
        if wanted and not self.reading:
            self.transport.resume_reading()
        elif not wanted and self.reading:
            self.transport.pause_reading()
        self.reading = wanted

    # -- sending ----------------------------------------------------------------------------

    def _clock(self) -> float:
        if not self.held:
            return time.time()
        return time.time() + sum(delay for _, delay in self.held)  # when the reply will go

    def _wait(self, seconds: float) -> None:
        self.held.append((self.session.data_to_send(), seconds))

    def _send(self) -> None:
        if self.held:
            if self.releasing is None:
                self._release_next()
                self._update_reading()
            return
        out = self.session.data_to_send()
        if out:
            self.transport.write(out)
        if self.session.pending is not None:  # a message to store before its reply
            if not self.delivering:
                self._deliver(self.session.pending)
            return
        if self.session.conn.tls_pending and self.server.tls_context is not None:
            if self.tls_task is None:
                # The 220 to STARTTLS is out: not one more plaintext byte is read (RFC 3207
                # 4.2). Once started, the handshake is not started again by input that the
                # TLS layer delivers before the handshake coroutine resumes.
                self.transport.pause_reading()
                self.reading = False
                self.tls_task = self.loop.create_task(self._start_tls(self.server.tls_context))
            return
        if self.session.closed and not self.transport.is_closing():
            self.transport.close()  # after the buffered replies are written...
            # ...unless the client never reads them: then it is cut off.
            self.linger_timer = self.loop.call_later(LINGER, self.transport.abort)

    async def _start_tls(self, context: ssl.SSLContext) -> None:
        session = self.session
        try:
            transport = await self.loop.start_tls(
                self.transport, self, context, server_side=True, ssl_handshake_timeout=30
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as error:
            session.recorder.note(time.time(), f"TLS handshake failed: {error}")
            session.lost("the TLS handshake failed")
            self.transport.abort()
            return
        if transport is None:  # the connection went away during the handshake
            return
        self.transport = transport
        self.reading = True  # a new transport, reading
        session.conn.tls_started()
        tls = transport.get_extra_info("ssl_object")
        cipher = tls.cipher()[0] if tls is not None and tls.cipher() else "?"
        version = tls.version() if tls is not None else "?"
        session.recorder.tls_started(time.time(), f"{version} {cipher}")
        self.last_progress = self.loop.time()
        # The client may speak as soon as its side of the handshake is done: its EHLO can
        # reach us (decrypted, and held by the session) before this coroutine resumes.
        self._guarded(session.answer_waiting)
        self._feed_again()

    def _deliver(self, delivery: Delivery) -> None:
        """Keep the message in the store's worker thread; reading waits (nothing after the
        dot is answered before the message's reply, and nothing piles up meanwhile)."""
        self.delivering = True
        self._update_reading()
        executor = self.server._executor
        future = self.loop.run_in_executor(executor, delivery.keep)
        self.server._deliveries.add(future)
        future.add_done_callback(self._kept)

    def _kept(self, future: asyncio.Future[Any]) -> None:
        """The store returned: the reply to the message, then what was pipelined after it."""
        self.server._deliveries.discard(future)
        self.delivering = False
        if future.cancelled():
            outcome: Any = RuntimeError("the server stopped before the message was stored")
        else:
            outcome = future.result()  # Delivery.keep returns an exception, never raises
        self._guarded(lambda: self.session.finish_delivery(outcome))
        if self.gone:  # the client left while the store was at work: the session is over
            self.server._session_ended(self.number)
            return
        self.last_progress = self.loop.time()  # waiting for our reply is not idling
        if not self.transport.is_closing():
            self._feed_again()

    def _release_next(self) -> None:
        chunk, delay = self.held.pop(0)
        if chunk:
            self.transport.write(chunk)
        self.releasing = self.loop.call_later(delay, self._after_delay)

    def _after_delay(self) -> None:
        self.releasing = None
        if self.held:
            self._release_next()
            return
        self._send()
        self.last_progress = self.loop.time()  # waiting for our reply is not idling
        self._feed_again()

    def shutdown(self, reply: Reply, note: str = "") -> None:
        """Say ``reply`` (a 421) and close, now or right after any reply being delayed."""
        if self.transport.is_closing():
            return
        self._guarded(lambda: self.session.shutdown(reply, note or "the server is stopping"))

    # -- deadlines --------------------------------------------------------------------------

    def _arm_deadline(self) -> None:
        """Check the deadline when it is due (see :meth:`_due`); a check already set for no
        later than that stays (it sets the next one)."""
        due = max(self._due(), self.loop.time() + 0.1)
        timer = self.deadline_timer
        if timer is not None:
            if timer.when() <= due:
                return
            timer.cancel()
        self.deadline_timer = self.loop.call_at(due, self._check_deadline)

    def _due(self) -> float:
        """When the session times out: a message's content has ``data_timeout`` from its 354;
        anything else ``idle_timeout`` from the last complete input or reply. Bytes that do
        not complete a line do not count (RFC 5321 4.5.3.2.7)."""
        if self.message_started is not None:
            return self.message_started + self.server.data_timeout
        return self.last_progress + self.server.idle_timeout

    def _check_deadline(self) -> None:
        self.deadline_timer = None
        if self.transport.is_closing():
            return
        waiting_for_us = self.releasing is not None or self.delivering  # a reply of ours is due
        if waiting_for_us or self.loop.time() < self._due():
            self._arm_deadline()
        elif self.message_started is not None:
            self.shutdown(SLOW_DATA, f"message not in after {self.server.data_timeout:g} s")
        else:
            self.shutdown(IDLE, f"no complete command for {self.server.idle_timeout:g} s")

    def _refuse(self, recorder: Recorder, reply: Reply, note: str) -> None:
        """Over a session limit: greet with ``reply`` and close, recorded like any session."""
        self.refused = True
        now = time.time()
        recorder.connect(now)
        recorder.record(reply, now)
        recorder.close(now, "server", note)
        self.transport.write(reply.to_bytes())
        self.transport.close()
        self.linger_timer = self.loop.call_later(LINGER, self.transport.abort)
        self.done.set_result(None)


class ServerThread:
    """Runs a :class:`TcpServer` on an event loop in a thread of its own.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. Blocking clients
    (``smtplib``, a student's socket code) can then talk to the server from the calling thread.
    """

    def __init__(self, server: TcpServer | None = None, grace: float = 5.0) -> None:
        self.server = server if server is not None else TcpServer()
        self.grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> TcpServer:
        """Start the loop thread and the server; return once the server is listening."""
        if self._thread is not None:
            raise RuntimeError("the server thread is already running")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as error:  # e.g. the port is taken: report it to start()
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop(self.grace))
            loop.close()

        self._thread = threading.Thread(target=run, name=f"smtplab-{self.server.name}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self.server

    def stop(self) -> None:
        """Stop the server (see :meth:`TcpServer.stop`) and the thread."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> TcpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
