"""A hostile SMTP server on 127.0.0.1 for client tests: it sends what a script says.

A script is a list of steps, run for each connection in its own thread:

* ``bytes`` - sent at once;
* ``READ`` - wait for one line from the client (a command) before going on;
* ``Drip(data, every)`` - send ``data`` one octet at a time, ``every`` seconds apart;
* ``Flood(line, limit)`` - send ``line`` again and again, up to ``limit`` octets in all or
  until the client hangs up (what it sent is counted in ``server.flooded``).

After the script the connection is held open (reading and discarding) until the client closes
it or the server stops, so a client that waits for more bytes waits until its own deadline.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

READ = "read"


@dataclass(frozen=True)
class Drip:
    data: bytes
    every: float


@dataclass(frozen=True)
class Flood:
    line: bytes
    limit: int


Step = bytes | str | Drip | Flood


class HostileServer:
    """A listening socket on 127.0.0.1 that plays ``script`` to every client."""

    def __init__(self, script: list[Step]) -> None:
        self.script = script
        self.flooded = 0  # octets the floods got out before the client hung up (or the limit)
        self.connections = 0
        self.hangups = 0  # connections the client closed
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> HostileServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._acceptor.join(10)
        for thread in self._threads:
            thread.join(10)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._play, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _play(self, sock: socket.socket) -> None:
        sock.settimeout(0.2)
        pending = bytearray()
        try:
            for step in self.script:
                if self._stop.is_set():
                    return
                if step == READ:
                    if not self._read_line(sock, pending):
                        return
                elif isinstance(step, Drip):
                    for octet in step.data:
                        sock.sendall(bytes([octet]))
                        if self._stop.wait(step.every):
                            return
                elif isinstance(step, Flood):
                    self._flood(sock, step)
                else:
                    assert isinstance(step, bytes)
                    sock.sendall(step)
            while not self._stop.is_set():  # hold the line until the client hangs up
                try:
                    if not sock.recv(65536):
                        self.hangups += 1
                        return
                except TimeoutError:
                    continue
        except OSError:
            self.hangups += 1  # the client hung up: that is what a hostile server expects
        finally:
            sock.close()

    def _read_line(self, sock: socket.socket, pending: bytearray) -> bool:
        while b"\n" not in pending:
            if self._stop.is_set():
                return False
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                self.hangups += 1
                return False
            pending += data
        del pending[: pending.index(b"\n") + 1]
        return True

    def _flood(self, sock: socket.socket, step: Flood) -> None:
        block = step.line * max(1, 65536 // len(step.line))
        sock.settimeout(5.0)
        while self.flooded < step.limit and not self._stop.is_set():
            sock.sendall(block)  # raises when the client has hung up
            self.flooded += len(block)
        sock.settimeout(0.2)


def wait_until(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
