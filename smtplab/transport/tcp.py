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
collects ``error_limit`` error replies gets ``421 4.7.0``, connections beyond ``max_sessions``
are greeted with ``421 4.7.0`` and closed, and :meth:`TcpServer.stop` lets sessions in the
middle of a transaction finish for a grace period, then says ``421 4.3.2`` to the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from typing import Any

from smtplab.log.frame import to_frame
from smtplab.log.recorder import Recorder
from smtplab.protocol.config import ServerConfig
from smtplab.protocol.events import Reply
from smtplab.protocol.states import State
from smtplab.server.mailboxes import Mailboxes
from smtplab.server.policy import Policy
from smtplab.server.session import ServerSession
from smtplab.server.store import MemoryStore, Store, StoredMessage

IDLE = Reply(421, "Idle for too long, closing connection", "4.4.2")
BUSY = Reply(421, "Too many connections, try again later", "4.7.0")
STOPPING = Reply(421, "Server shutting down, closing connection", "4.3.2")
READ_SIZE = 64 * 1024


def _endpoint(address: Any) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
        max_sessions: int = 100,
    ) -> None:
        self.policy = policy if policy is not None else Mailboxes()
        self.config = config if config is not None else ServerConfig()
        self.store = store if store is not None else MemoryStore()
        self.host = host
        self.port = port  # the real port once started (port 0 picks a free one)
        self.name = name
        self.idle_timeout = idle_timeout
        self.error_limit = error_limit
        self.max_sessions = max_sessions
        self.recorders: list[Recorder] = []
        self._numbers = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._active: dict[asyncio.Task[None], ServerSession] = {}

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen; returns once the port is bound (``self.port`` then holds it)."""
        if self._server is not None:
            raise RuntimeError("the server is already running")
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening; end every session, giving open transactions ``grace`` seconds."""
        if self._server is None:
            return
        self._server.close()
        in_transaction = (State.MAIL, State.RCPT, State.DATA)
        for task, session in list(self._active.items()):
            if session.conn.state not in in_transaction:
                task.cancel()  # between transactions: nothing to finish, say 421 now
        pending = list(self._active)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        await self._server.wait_closed()
        self._server = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- what it recorded -------------------------------------------------------------------

    def transcript(self) -> Any:
        """Every session so far as one transcript DataFrame (safe from another thread)."""
        return to_frame(row for recorder in list(self.recorders) for row in list(recorder.tuples))

    @property
    def messages(self) -> list[StoredMessage]:
        return list(self.store.messages)

    # -- one connection ---------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _endpoint(writer.get_extra_info("peername"))
        local = _endpoint(writer.get_extra_info("sockname"))
        recorder = Recorder(f"{self.name}-{next(self._numbers)}", "tcp", client, local)
        self.recorders.append(recorder)
        if len(self._active) >= self.max_sessions:
            await self._refuse(recorder, writer)
            return
        # Replies the policy delays wait here, in order, before anything after them is sent.
        held: list[tuple[bytes, float]] = []

        def clock() -> float:
            return time.time() + sum(delay for _, delay in held)

        def wait(seconds: float) -> None:
            held.append((session.data_to_send(), seconds))

        session = ServerSession(
            policy=self.policy,
            store=self.store,
            recorder=recorder,
            clock=clock,
            config=self.config,
            client=client,
            wait=wait,
            error_limit=self.error_limit,
        )
        task = asyncio.current_task()
        assert task is not None
        self._active[task] = session
        try:
            session.start()
            await self._flush(session, writer, held)
            while not session.closed:
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), self.idle_timeout)
                except TimeoutError:
                    session.shutdown(IDLE, f"no command for {self.idle_timeout:g} s")
                    await self._flush(session, writer, held)
                    break
                except ConnectionError:
                    data = b""
                session.receive(data)  # b"": the client closed
                await self._flush(session, writer, held)
                if not data:
                    break
        except asyncio.CancelledError:
            session.shutdown(STOPPING, "the server is stopping")
            with contextlib.suppress(Exception):
                writer.write(session.data_to_send())
            raise
        except ConnectionError:
            if not session.closed:
                session.receive(b"")  # the client went away while we wrote: record it
        finally:
            del self._active[task]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _flush(
        self,
        session: ServerSession,
        writer: asyncio.StreamWriter,
        held: list[tuple[bytes, float]],
    ) -> None:
        while held:
            chunk, delay = held.pop(0)
            if chunk:
                writer.write(chunk)
                await writer.drain()
            await asyncio.sleep(delay)
        out = session.data_to_send()
        if out:
            writer.write(out)
            await writer.drain()

    async def _refuse(self, recorder: Recorder, writer: asyncio.StreamWriter) -> None:
        """Over ``max_sessions``: greet with 421 and close, recorded like any session."""
        now = time.time()
        recorder.connect(now)
        recorder.reply(now, BUSY)
        recorder.close(now, "server", f"more than {self.max_sessions} sessions at once")
        try:
            writer.write(BUSY.to_bytes())
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


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
