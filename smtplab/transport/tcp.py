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
Postfix's smtpd does: an idle client is told ``421 4.4.2`` and disconnected, a session that
collects ``error_limit`` error replies gets ``421 4.7.0`` (NOOP, RSET, VRFY, EXPN and HELP
beyond ``junk_limit`` count as errors, as in Postfix), connections beyond ``max_sessions``
are greeted with ``421 4.7.0`` and closed, and :meth:`TcpServer.stop` lets sessions in the
middle of a transaction finish for a grace period, then says ``421 4.3.2`` to the rest.

Running for weeks, it stays bounded: it keeps the rows of the last ``keep_sessions`` finished
sessions (and of those still open) for :meth:`TcpServer.transcript`, handing each finished
session to ``on_session_end`` first (``smtplab serve --transcript`` streams them to a file), and
its default store keeps the last ``keep_messages`` messages. A store that waits on a disk
(``Store.blocking``, e.g. a Maildir) keeps each message in a worker thread, one at a time,
while the event loop goes on serving other clients; the 250 is sent once the store returned.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
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

IDLE = Reply(421, "Idle for too long, closing connection", "4.4.2")
BUSY = Reply(421, "Too many connections, try again later", "4.7.0")
STOPPING = Reply(421, "Server shutting down, closing connection", "4.3.2")
INTERNAL = Reply(421, "Local error in processing, closing connection", "4.3.0")
IN_TRANSACTION = (State.MAIL, State.RCPT, State.DATA)
LINGER = 10.0  # seconds a closing connection may take to read its last replies


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
        error_limit: int | None = 20,
        junk_limit: int | None = 100,
        max_sessions: int = 100,
        tls: bool | ssl.SSLContext = False,
        auth: bool = False,
        keep_sessions: int = 1000,
        keep_messages: int = 1000,
        on_session_end: Callable[[Recorder], None] | None = None,
    ) -> None:
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
        self.idle_timeout = idle_timeout
        self.error_limit = error_limit
        self.junk_limit = junk_limit
        self.max_sessions = max_sessions
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
    """One TCP connection: bytes in to the session, its replies out, timers around it.

    Reading pauses while a delayed reply is held (replies stay in order) and while the
    client does not read what it is sent (asyncio's pause_writing), so a client can never
    make the server buffer without bound. Once the session is over, the socket closes after
    the last reply is written - or is aborted after ``LINGER`` seconds if the client never
    reads it.
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
        self.backlog: list[bytes] = []  # input that arrived while reading was paused
        self.writes_blocked = False  # the client is not reading: asyncio asked us to pause
        self.last_input = self.loop.time()
        self.idle_timer: asyncio.TimerHandle | None = None
        self.linger_timer: asyncio.TimerHandle | None = None
        self.refused = False  # over max_sessions: greeted with 421, no session
        self.tls_task: asyncio.Task[None] | None = None  # the STARTTLS handshake, once begun
        self.delivering = False  # the store is keeping a message in its worker thread
        self.gone = False  # connection_lost came
        self.number = 0  # the session's number in the server

    # -- asyncio's callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is one without subclassing asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        client = endpoint(transport.get_extra_info("peername"))
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
            defer_delivery=server.store.blocking,  # kept in the store's thread, see _deliver
        )
        if len(server._connections) >= server.max_sessions:
            self._refuse(recorder)
            return
        server._connections.add(self)
        self._guarded(self.session.start)
        self.idle_timer = self.loop.call_later(server.idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if self.releasing is not None or self.writes_blocked or self.delivering:
            self.backlog.append(data)  # answered in order once the way is clear
            return
        self._guarded(lambda: self.session.receive(data))
        self.last_input = self.loop.time()

    def eof_received(self) -> bool:
        if self.releasing is not None or self.writes_blocked or self.delivering:
            self.backlog.append(b"")
            return True  # keep the transport open until the held replies are out
        self._guarded(lambda: self.session.receive(b""))
        return False

    def pause_writing(self) -> None:
        self.writes_blocked = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writes_blocked = False
        self._drain_backlog()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self.idle_timer, self.releasing, self.linger_timer):
            if timer is not None:
                timer.cancel()
        if not self.refused:
            self.session.lost()  # gone without QUIT (or while we wrote): recorded once
        self.server._connections.discard(self)
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

    def _drain_backlog(self) -> None:
        """Feed input that waited, for as long as nothing makes us wait again."""
        while self.backlog and self.releasing is None and not self.writes_blocked:
            if self.delivering:
                return
            data = self.backlog.pop(0)
            if self.transport.is_closing():
                return
            if data:
                self.data_received(data)
            elif not self.eof_received():  # True: it waits in the backlog again
                self.transport.close()
        clear = not self.backlog and self.releasing is None and not self.writes_blocked
        clear = clear and not self.delivering
        if clear and not self.transport.is_closing():
            self.transport.resume_reading()

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
                self.transport.pause_reading()
                self._release_next()
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
        session.conn.tls_started()
        tls = transport.get_extra_info("ssl_object")
        cipher = tls.cipher()[0] if tls is not None and tls.cipher() else "?"
        version = tls.version() if tls is not None else "?"
        session.recorder.tls_started(time.time(), f"{version} {cipher}")
        self.last_input = self.loop.time()
        # The client may speak as soon as its side of the handshake is done: its EHLO can
        # reach us (decrypted, and held by the session) before this coroutine resumes.
        self._guarded(session.answer_waiting)

    def _deliver(self, delivery: Delivery) -> None:
        """Keep the message in the store's worker thread; reading waits (nothing after the
        dot is answered before the message's reply, and nothing piles up meanwhile)."""
        self.delivering = True
        self.transport.pause_reading()
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
        self.last_input = self.loop.time()  # waiting for our reply is not idling
        if not self.transport.is_closing():
            self._drain_backlog()

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
        self.last_input = self.loop.time()  # waiting for our reply is not idling
        if not self.transport.is_closing():
            self._drain_backlog()

    def shutdown(self, reply: Reply, note: str = "") -> None:
        """Say ``reply`` (a 421) and close, now or right after any reply being delayed."""
        if self.transport.is_closing():
            return
        self._guarded(lambda: self.session.shutdown(reply, note or "the server is stopping"))

    def _check_idle(self) -> None:
        idle = self.server.idle_timeout
        quiet = self.loop.time() - self.last_input
        if quiet < idle or self.releasing is not None or self.delivering:  # our reply is due
            self.idle_timer = self.loop.call_later(max(idle - quiet, 0.1), self._check_idle)
        else:
            self.shutdown(IDLE, f"no command for {idle:g} s")

    def _refuse(self, recorder: Recorder) -> None:
        """Over ``max_sessions``: greet with 421 and close, recorded like any session."""
        self.refused = True
        now = time.time()
        recorder.connect(now)
        recorder.reply(now, BUSY)
        recorder.close(now, "server", f"more than {self.server.max_sessions} sessions at once")
        self.transport.write(BUSY.to_bytes())
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
