"""Messages per second over TCP: smtplab's server vs aiosmtpd vs Postfix's smtp-sink.

What is measured
----------------
Postfix's own load generator, ``smtp-source``, sends the same load to each server in turn:
``--sessions`` parallel sessions (default 20), ``--messages`` messages in all (default 4000), of
``--size`` octets each (1024), one message per connection (EHLO, MAIL, RCPT, DATA, QUIT), over
127.0.0.1. Each server runs in a process of its own:

* **smtplab**: ``python -m smtplab serve`` (the lab's default server, messages kept in memory
  with their ``Received:`` header, every command and reply recorded as a row; the transcript
  DataFrame is built when it stops, outside the timed region).
* **aiosmtpd**: its ``SMTP`` protocol on an asyncio server, with a handler that keeps every
  message's envelope and content in a list, like smtplab's memory store.
* **smtp-sink**: Postfix's test server, written in C; it reads and discards, so it is the
  ceiling for this load generator rather than a competitor.

Each server says on exit how many messages it stored (smtp-sink how many it received); the
script checks the count is exactly ``--messages``: none lost. It prints wall-clock seconds for
the ``smtp-source`` run, messages per second, and the ratios. Runs are repeated
(``--repeat``, interleaved) and the median is reported. No timing is asserted.

::

    .venv/bin/python benchmarks/tcp.py                      # 20 sessions, 4000 messages, 3 repeats
    .venv/bin/python benchmarks/tcp.py --messages 500 --repeat 1   # smoke test

Needs ``smtp-source`` and ``smtp-sink`` (Debian: ``apt install postfix``) and ``aiosmtpd``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version

SENDER, RECIPIENT = "alice@example.net", "bob@example.org"

AIOSMTPD_SERVER = r"""
import asyncio, signal, sys
from aiosmtpd.smtp import SMTP

class Keep:
    def __init__(self):
        self.messages = []
    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content))
        return "250 OK"

async def main(port):
    handler = Keep()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="mx.example.org"), "127.0.0.1", port)
    print("listening", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    print(f"{len(handler.messages)} messages stored", flush=True)

asyncio.run(main(int(sys.argv[1])))
"""


@dataclass
class Server:
    name: str
    seconds: list[float] = field(default_factory=list)

    def command(self, port: int) -> list[str]:
        if self.name == "smtplab":
            return [sys.executable, "-m", "smtplab", "serve", "--port", str(port),
                    "--max-sessions", "1000", "--max-sessions-per-client", "0"]  # fmt: skip
        if self.name == "aiosmtpd":
            return [sys.executable, "-c", AIOSMTPD_SERVER, str(port)]
        sink = ["smtp-sink", "-c"]
        if os.geteuid() == 0:
            sink += ["-u", "nobody"]  # smtp-sink refuses to run as root without a user
        return [*sink, f"127.0.0.1:{port}", "1000"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited early with status {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"no server listening on {port} after {timeout} s")


def count_stored(name: str, output: str) -> int:
    if name == "smtp-sink":  # "\r sess=N quit=N mesg=N" progress lines: take the last
        found = re.findall(r"mesg=(\d+)", output)
        return int(found[-1]) if found else 0
    found = re.search(r"(\d+) messages stored", output)
    return int(found.group(1)) if found else -1


def run_load(command: list[str], limit: float = 600.0) -> float:
    """Run the load generator to its end; the moment it ended (``time.perf_counter``).

    Waited for with a blocking wait, not ``subprocess.run(timeout=...)``, which polls in sleeps
    of up to 50 ms and so rounded every measured run up to the next 50 ms step (3% of a 1.5 s
    run). The limit is kept by a timer that kills a load generator that hangs."""
    process = subprocess.Popen(command)
    watchdog = threading.Timer(limit, process.kill)
    watchdog.start()
    try:
        code = process.wait()
        ended = time.perf_counter()
    finally:
        watchdog.cancel()
    if code != 0:
        raise SystemExit(f"{command[0]} failed (exit {code}; killed after {limit:g} s?)")
    return ended


def run_once(server: Server, sessions: int, messages: int, size: int) -> float:
    port = free_port()
    # Output to a file, not a pipe: smtp-sink -c writes progress all the time and would block
    # on a full pipe that nobody reads until the end.
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            server.command(port), stdout=log, stderr=subprocess.STDOUT, text=True
        )
        try:
            wait_for_port(port, process)
            start = time.perf_counter()
            elapsed = run_load(
                ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
                 "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"],
            ) - start  # fmt: skip
        finally:
            process.send_signal(signal.SIGINT if server.name == "smtplab" else signal.SIGTERM)
            process.wait(timeout=120)
        log.seek(0)
        output = log.read()
    stored = count_stored(server.name, output)
    if stored != messages:
        raise SystemExit(f"{server.name}: {stored} of {messages} arrived\n{output[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    missing = [tool for tool in ("smtp-source", "smtp-sink") if shutil.which(tool) is None]
    if missing:
        print(f"missing {', '.join(missing)} (Debian: apt install postfix)", file=sys.stderr)
        return 2
    servers = [Server("smtplab"), Server("aiosmtpd"), Server("smtp-sink")]
    print("smtp-source against smtplab, aiosmtpd and smtp-sink over 127.0.0.1")
    print(f"  python    {platform.python_implementation()} {platform.python_version()}")
    print(f"  cpus      {os.cpu_count()} (load average {os.getloadavg()[0]:.2f} at start)")
    print(f"  smtplab   {version('smtplab')}, aiosmtpd {version('aiosmtpd')}")
    print(
        f"  workload  {args.messages} messages of {args.size} octets, {args.sessions} sessions "
        f"at once, one message per connection, x {args.repeat} repeats\n"
    )
    for repeat in range(1, args.repeat + 1):
        for server in servers:
            server.seconds.append(run_once(server, args.sessions, args.messages, args.size))
            rate = args.messages / server.seconds[-1]
            print(f"repeat {repeat}: {server.name:<9} {rate:8,.0f} msg/s", flush=True)
    print()
    rates = {s.name: args.messages / statistics.median(s.seconds) for s in servers}
    for server in servers:
        print(f"{server.name:<9} median {rates[server.name]:8,.0f} msg/s, every message stored")
    print()
    ratio = rates["smtplab"] / rates["aiosmtpd"]
    verdict = "met" if ratio >= 1.5 else "NOT met"
    print(f"smtplab / aiosmtpd:  {ratio:.2f}x  (target >= 1.5x: {verdict})")
    print(f"smtplab / smtp-sink: {rates['smtplab'] / rates['smtp-sink']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
