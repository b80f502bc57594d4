"""A short abuse run over real loopback sockets: floods leave the server's memory bounded and a
well-behaved client is still served while they last.

The server runs in a thread of this process (:class:`ServerThread`), so its memory is measured
with ``tracemalloc`` and its own buffers and tables are looked at directly. Bounds are generous;
the only clock is a "does not hang" limit on the well-behaved client.
"""

from __future__ import annotations

import gc
import smtplib
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest

from smtplab.transport.tcp_server import ServerThread, TcpServer

MESSAGE = b"Subject: during a flood\r\n\r\nA well-behaved message.\r\n"
SERVED_WITHIN = 20.0  # seconds: "not locked out", not a performance figure


def send_one_message(port: int) -> float:
    """A complete transaction with smtplib; the seconds it took."""
    start = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=SERVED_WITHIN) as client:
        refused = client.sendmail("alice@example.net", ["bob@example.org"], MESSAGE)
    assert refused == {}
    return time.monotonic() - start


class Flooder(threading.Thread):
    """Pipelines ``total`` octets of ``line`` without ever reading a reply, for at most
    ``seconds``; then closes."""

    def __init__(self, port: int, line: bytes, total: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.recv(1024)  # the greeting
        self.sock.setblocking(False)
        self.block = line * (65536 // len(line))
        self.total, self.seconds, self.sent = total, seconds, 0
        self.stalled = False  # the server stopped reading what this client sends

    def run(self) -> None:
        deadline, blocked_since = time.monotonic() + self.seconds, None
        while self.sent < self.total and time.monotonic() < deadline:
            try:
                self.sent += self.sock.send(self.block)
                blocked_since = None
            except BlockingIOError:
                blocked_since = blocked_since or time.monotonic()
                if time.monotonic() - blocked_since > 1.0:
                    self.stalled = True
                    break
                time.sleep(0.02)
            except OSError:  # the server said 421 and closed: the flood is over
                break

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def traced_now() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


FLOOD_LINE = b"EHLO flood.example\r\nMAIL FROM:<flood@example.net>\r\n"  # not cut by junk_limit


def test_a_pipelining_flood_is_stopped_early_and_a_good_client_is_served(traced) -> None:
    with ServerThread(TcpServer()) as server:
        send_one_message(server.port)  # warm: imports, first parses
        before = traced_now()
        floods = [Flooder(server.port, FLOOD_LINE, 3 * 1024 * 1024, 5.0) for _ in range(2)]
        for flood in floods:
            flood.start()
        took: list[float] = []
        good = threading.Thread(target=lambda: took.append(send_one_message(server.port)))
        good.start()  # while the floods go on
        for flood in floods:
            flood.join(30)
        good.join(SERVED_WITHIN)
        peak = tracemalloc.get_traced_memory()[1] - before
        rows = sorted(len(recorder.tuples) for recorder in server.recorders)
        for flood in floods:
            flood.close()
    assert sum(flood.sent for flood in floods) > 0
    # A session that never reads its replies is not worked through: a few thousand commands
    # at most (the junk limit or unread replies stop it), not everything it sent.
    assert rows[-1] < 10_000, rows
    assert peak < 64 * 1024 * 1024, f"{peak / 1e6:.0f} MB traced at the peak"
    assert took and took[0] < SERVED_WITHIN, "the well-behaved client was not served"


def test_a_pipelining_flood_leaves_no_buffer_unbounded(traced) -> None:
    # The server's own buffers for one flooding connection stay small while it floods.
    with ServerThread(TcpServer()) as server:
        flood = Flooder(server.port, FLOOD_LINE, 4 * 1024 * 1024, 5.0)
        flood.start()
        flood.join(30)
        time.sleep(0.2)
        for connection in list(server._connections):
            assert connection.transport.get_write_buffer_size() < 4 * 1024 * 1024
            assert sum(map(len, connection.backlog)) < 4 * 1024 * 1024
            assert len(connection.session.conn._in.data) < 4 * 1024 * 1024
        flood.close()
        assert send_one_message(server.port) < SERVED_WITHIN


def connect_and_close(port: int, count: int) -> dict[int, int]:
    """``count`` connections that read the greeting and close; greetings by code."""
    codes: dict[int, int] = {}
    lock = threading.Lock()
    numbers = iter(range(count))

    def worker() -> None:
        for _ in numbers:  # shared: each connection is made once
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                code = int(sock.recv(1024)[:3] or b"0")
            with lock:
                codes[code] = codes.get(code, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return codes


def test_a_connect_close_flood_does_not_grow_the_server_without_bound(traced) -> None:
    with ServerThread(TcpServer()) as server:
        assert connect_and_close(server.port, 1_200)[220] == 1_200  # fills any ring
        filled = traced_now()
        good = threading.Thread(target=send_one_message, args=(server.port,))
        good.start()
        codes = connect_and_close(server.port, 1_500)
        good.join(SERVED_WITHIN)
        grown = traced_now() - filled
        assert not good.is_alive()
    assert codes.get(220) == 1_500
    # Bounded: 1,500 more connections add (almost) nothing once the ring is full.
    assert grown / 1_500 < 500, f"{grown / 1_500:.0f} octets per connection"


def test_a_well_behaved_client_is_served_during_a_connect_close_flood() -> None:
    with ServerThread(TcpServer()) as server:
        flood = threading.Thread(target=connect_and_close, args=(server.port, 2_000))
        flood.start()
        took = send_one_message(server.port)
        flood.join(120)
        assert not flood.is_alive()
    assert took < SERVED_WITHIN
