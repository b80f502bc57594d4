"""Hostile clients against ``smtplab serve`` and aiosmtpd: memory, stall and throughput.

What is measured
----------------
Each attack runs against a fresh server process on 127.0.0.1 (a free port): ``python -m
smtplab serve`` with its defaults (a small launcher around the same ``serve()`` where the
command line has no option for what the attack needs: ``line_endings="keep"``, AUTH), and,
where the attack makes sense for it, an ``aiosmtpd`` server keeping every message (as in
``benchmarks/tcp.py``). While the attack runs from this process (asyncio, bounded in count and
time), a well-behaved **probe** client in a process of its own, connecting from 127.0.0.2, runs
one full transaction (greeting, EHLO, MAIL, RCPT, DATA, message, QUIT) every ``--interval``
seconds (50 ms) and times it. For each attack and server it reports:

* the server's RSS before the attack, its peak during it and after it (``/proc/PID/status``:
  ``VmRSS``, and ``VmHWM`` reset after warm-up through ``/proc/PID/clear_refs``);
* the probe's transactions completed and failed, the median and worst transaction time, the
  worst greeting delay (connect to 220) and the worst wait for any reply: the event-loop stall
  as a well-behaved client sees it; and its throughput (transactions per second);
* the attack's own figures (bytes sent, replies received, connections held, ...).

Targets (the pass/fail columns): **memory** — peak RSS growth at most ``PEAK_GROWTH_MB`` and
growth left after the attack at most ``LASTING_GROWTH_MB`` - or, where more is left, a second
round of the same attack adding at most ``REPEAT_GROWTH_MB`` (memory the allocator keeps for
reuse, which a second round reuses, is not a leak; a leak grows again); **stall** — every
probe transaction completes, no greeting and no reply takes more than ``STALL_MS``. The AUTH
attack is not about resources: it passes when no base64 credential reaches the transcript.
Ratios smtplab / aiosmtpd of RSS growth and worst stall close the report. No timing is
asserted anywhere.

The attacks (letters as in the hardening issue)::

    -  cpu-only         no traffic: one spinning process per core (what contention alone costs)
    a  bdat-10mb        BDAT chunks of 10 MB without a CRLF (3 clients)
    a  data-long-line   DATA whose first line is 10 MB (3 clients)
    b  bare-cr          256 KB of bare CRs in one command line, 4 times
    b  bare-lf-keep     the same with bare LFs, server with line_endings="keep" (smtplab only)
    c  pipeline-flood   20 clients pipelining 4 MB each of EHLO/MAIL, never reading
    d  connect-flood    10,000 connections that read the greeting and close
    d  many-commands    one session with 5,000 transactions (20,000 commands)
    e  slowloris        100 clients dripping one byte a second (``--slowloris-seconds``)
    f  maildir-20k      200 deliveries into a Maildir holding 20,000 messages (smtplab only)
    g  auth-pipelined   AUTH LOGIN refused (538), credentials pipelined after it (smtplab only)

::

    .venv/bin/python benchmarks/abuse.py                          # everything, a few minutes
    .venv/bin/python benchmarks/abuse.py --attack slowloris --slowloris-seconds 10
    .venv/bin/python benchmarks/abuse.py --quick --json out.json  # small sizes (the tests)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
PROBE_SOURCE = "127.0.0.2"  # the well-behaved client comes from another address
PEAK_GROWTH_MB = 64.0
LASTING_GROWTH_MB = 16.0
#: Past LASTING_GROWTH_MB, what a second round of the same attack may add: more is a leak.
REPEAT_GROWTH_MB = 4.0
STALL_MS = 100.0
SENDER, RECIPIENT = "alice@example.net", "bob@example.org"
USER, PASSWORD = "abuse-user", "abuse-secret-password"  # what must not reach a transcript

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

# ``smtplab serve`` has no option for these settings: the same serve() with a built server.
SMTPLAB_LAUNCHER = r"""
import asyncio, sys
from pathlib import Path
from smtplab.protocol import ServerConfig
from smtplab.log.stream import TranscriptWriter
from smtplab.cli.serve import serve
from smtplab.transport.tcp_server import TcpServer

port, endings, auth, transcript = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "auth", sys.argv[4]
server = TcpServer(config=ServerConfig(line_endings=endings), port=port, auth=auth)
writer = TranscriptWriter(Path(transcript)) if transcript else None
sys.exit(asyncio.run(serve(server, writer)))
"""


# -- sizes ------------------------------------------------------------------------------------


@dataclass
class Sizes:
    """How big each attack is (``--quick`` shrinks every one of them)."""

    big_clients: int = 3
    big_octets: int = 10_000_000
    bare_octets: int = 256 * 1024
    bare_repeats: int = 4
    flood_clients: int = 20
    flood_octets: int = 4 * 1024 * 1024
    flood_seconds: float = 30.0
    connections: int = 10_000
    connect_parallel: int = 50
    transactions: int = 5_000
    slow_clients: int = 100
    slow_seconds: float = 20.0
    maildir_files: int = 20_000
    maildir_messages: int = 200
    cap_seconds: float = 120.0  # no attack runs longer than this

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            big_clients=1, big_octets=200_000, bare_octets=16 * 1024, bare_repeats=1,
            flood_clients=3, flood_octets=64 * 1024, flood_seconds=3.0, connections=100,
            connect_parallel=10, transactions=30, slow_clients=10, slow_seconds=1.5,
            maildir_files=200, maildir_messages=10, cap_seconds=30.0,
        )  # fmt: skip


# -- the probe: a well-behaved client in a process of its own ---------------------------------


def _read_reply(stream: Any) -> int:
    """Read one (maybe multi-line) reply; its code. ``OSError`` if the server closed."""
    while True:
        line = stream.readline(70_000)
        if not line:
            raise ConnectionError("the server closed the connection")
        if line[3:4] != b"-":
            return int(line[:3])


def probe_transaction(port: int, timeout: float, source: str) -> dict[str, Any]:
    """One full transaction; its greeting delay, worst reply wait and total time (seconds).

    A wait that ends in a timeout or a reset counts with the time it lasted."""
    start = time.perf_counter()
    result: dict[str, Any] = {"ok": False, "greeting": None, "worst_wait": 0.0, "error": None}
    steps = [
        (b"EHLO probe.example\r\n", 250),
        (f"MAIL FROM:<{SENDER}>\r\n".encode(), 250),
        (f"RCPT TO:<{RECIPIENT}>\r\n".encode(), 250),
        (b"DATA\r\n", 354),
        (b"Subject: probe\r\n\r\nA well-behaved message.\r\n.\r\n", 250),
        (b"QUIT\r\n", 221),
    ]
    try:
        with socket.create_connection((HOST, port), timeout, (source, 0)) as sock:
            stream = sock.makefile("rb")
            try:
                code = _read_reply(stream)
            finally:
                result["greeting"] = time.perf_counter() - start
            if code != 220:
                raise ConnectionError(f"greeting {code}")
            for line, expected in steps:
                sent = time.perf_counter()
                try:
                    sock.sendall(line)
                    code = _read_reply(stream)
                finally:
                    result["worst_wait"] = max(result["worst_wait"], time.perf_counter() - sent)
                if code != expected:
                    raise ConnectionError(f"{code} to {line.split()[0].decode()}")
        result["ok"] = True
    except (OSError, ValueError) as error:
        result["error"] = f"{type(error).__name__}: {error}"
    result["total"] = time.perf_counter() - start
    return result


def probe_main(port: int, interval: float, timeout: float, source: str) -> int:
    """Run transactions until SIGTERM; print a JSON summary (the ``--probe`` mode)."""
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    results = []
    began = time.perf_counter()
    print("ready", flush=True)
    while not stopping:
        start = time.perf_counter()
        results.append(probe_transaction(port, timeout, source))
        rest = interval - (time.perf_counter() - start)
        if rest > 0 and not stopping:
            time.sleep(rest)
    print(json.dumps(summarize(results, time.perf_counter() - began)), flush=True)
    return 0


def summarize(results: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    ok = [r for r in results if r["ok"]]
    greetings = [r["greeting"] for r in results if r["greeting"] is not None]
    failed = [r["error"] for r in results if not r["ok"]]
    return {
        "transactions": len(ok),
        "failed": len(failed),
        "errors": sorted(set(failed))[:3],
        "median_ms": 1000 * statistics.median(r["total"] for r in ok) if ok else None,
        "worst_ms": 1000 * max(r["total"] for r in results) if results else None,
        "worst_greeting_ms": 1000 * max(greetings) if greetings else None,
        "worst_wait_ms": 1000 * max(r["worst_wait"] for r in results) if results else None,
        "per_second": len(ok) / seconds if seconds else 0.0,
    }


class Probe:
    """The probe process: started before an attack, stopped after it."""

    def __init__(self, port: int, interval: float, timeout: float) -> None:
        command = [sys.executable, __file__, "--probe", str(port), str(interval), str(timeout)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit("the probe did not start")

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=60)
        return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- the server under attack --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]  # type: ignore[no-any-return]


def memory_kb(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of a process, in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def reset_peak(pid: int) -> bool:
    """Make ``VmHWM`` start again from the current RSS (Linux: ``clear_refs`` 5)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class Server:
    """One server process for one attack."""

    name: str
    port: int
    maildir: str | None = None
    keep_endings: bool = False
    auth: bool = False
    transcript: str | None = None
    output: str = ""
    stop_seconds: float = 0.0

    def command(self) -> list[str]:
        if self.name == "aiosmtpd":
            return [sys.executable, "-c", AIOSMTPD_SERVER, str(self.port)]
        if self.keep_endings or self.auth:
            endings = "keep" if self.keep_endings else "reject"
            return [sys.executable, "-c", SMTPLAB_LAUNCHER, str(self.port), endings,
                    "auth" if self.auth else "-", self.transcript or ""]  # fmt: skip
        command = [sys.executable, "-m", "smtplab", "serve", "--port", str(self.port)]
        if self.maildir:
            command += ["--maildir", self.maildir]
        return command

    def __enter__(self) -> Server:
        self._log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited early: {self._read_log()}")
            with socket.socket() as probe:
                if probe.connect_ex((HOST, self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise SystemExit(f"{self.name}: nothing listening on {self.port}")

    def __exit__(self, *exc: object) -> None:
        start = time.perf_counter()
        self.process.send_signal(signal.SIGINT if self.name == "smtplab" else signal.SIGTERM)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stop_seconds = time.perf_counter() - start
        self.output = self._read_log()
        self._log.close()

    def _read_log(self) -> str:
        self._log.seek(0)
        return self._log.read()


# -- the attacks --------------------------------------------------------------------------------

Figures = dict[str, Any]


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(HOST, port, limit=1 << 20)


async def _reply(reader: asyncio.StreamReader, timeout: float = 30.0) -> int:
    """One reply's code (0 if the connection ended first)."""
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            return 0
        if line[3:4] != b"-":
            return int(line[:3]) if line[:3].isdigit() else 0


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        writer.close()


async def _send(writer: asyncio.StreamWriter, data: bytes, piece: int = 65536) -> int:
    """Write ``data`` in pieces, waiting for the socket to drain; the octets written."""
    sent = 0
    try:
        for start in range(0, len(data), piece):
            writer.write(data[start : start + piece])
            await writer.drain()
            sent += min(piece, len(data) - start)
    except (ConnectionError, OSError):
        pass
    return sent


async def _collect(reader: asyncio.StreamReader, seconds: float) -> int:
    """Count the replies (last lines) that arrive within ``seconds``."""
    count, deadline = 0, time.monotonic() + seconds
    with contextlib.suppress(TimeoutError, ConnectionError, OSError, asyncio.LimitOverrunError):
        while (left := deadline - time.monotonic()) > 0:
            line = await asyncio.wait_for(reader.readline(), left)
            if not line:
                break
            count += line[3:4] == b" "
    return count


async def _session_start(port: int, figures: Figures) -> tuple[Any, Any]:
    reader, writer = await _open(port)
    await _reply(reader)
    writer.write(
        f"EHLO attacker.example\r\nMAIL FROM:<{SENDER}>\r\nRCPT TO:<{RECIPIENT}>\r\n".encode()
    )
    await writer.drain()
    codes = [await _reply(reader) for _ in range(3)]
    figures.setdefault("codes", []).extend(codes)
    return reader, writer


async def bdat_10mb(port: int, sizes: Sizes, figures: Figures) -> None:
    """a: BDAT chunks of ``big_octets`` without a CRLF, one per client."""

    async def one() -> None:
        reader, writer = await _session_start(port, figures)
        sent = await _send(writer, f"BDAT {sizes.big_octets} LAST\r\n".encode())
        sent += await _send(writer, b"x" * sizes.big_octets)
        figures["bytes_sent"] = figures.get("bytes_sent", 0) + sent
        figures.setdefault("replies", []).append(await _reply(reader, 60))
        _close(writer)

    await asyncio.gather(*(one() for _ in range(sizes.big_clients)))


async def data_long_line(port: int, sizes: Sizes, figures: Figures) -> None:
    """a: DATA whose first line is ``big_octets`` long, then the final dot."""

    async def one() -> None:
        reader, writer = await _session_start(port, figures)
        writer.write(b"DATA\r\n")
        figures.setdefault("codes", []).append(await _reply(reader))
        sent = await _send(writer, b"y" * sizes.big_octets + b"\r\n.\r\n")
        figures["bytes_sent"] = figures.get("bytes_sent", 0) + sent
        figures.setdefault("replies", []).append(await _reply(reader, 60))
        _close(writer)

    await asyncio.gather(*(one() for _ in range(sizes.big_clients)))


def _bare(byte: bytes) -> Callable[[int, Sizes, Figures], Awaitable[None]]:
    async def attack(port: int, sizes: Sizes, figures: Figures) -> None:
        """b: a command line of ``bare_octets`` bare CRs (or LFs), sent as TCP delivers it."""
        reader, writer = await _open(port)
        await _reply(reader)
        for _ in range(sizes.bare_repeats):
            sent = await _send(writer, b"NOOP " + byte * sizes.bare_octets + b"\r\n", 16384)
            figures["bytes_sent"] = figures.get("bytes_sent", 0) + sent
            figures.setdefault("replies", []).append(await _reply(reader, 60))
        _close(writer)

    return attack


async def pipeline_flood(port: int, sizes: Sizes, figures: Figures) -> None:
    """c: clients pipelining ``flood_octets`` of EHLO and MAIL each, reading nothing.

    EHLO then MAIL, again and again: a NOOP/RSET flood is cut off by the junk limit after
    about 120 commands (421 4.7.0), which EHLO and a MAIL it makes valid again get past."""
    line = b"EHLO flood.example\r\nMAIL FROM:<flood@example.net>\r\n"
    block = line * (sizes.flood_octets // len(line))
    deadline = time.monotonic() + sizes.flood_seconds

    async def one() -> None:
        reader, writer = await _open(port)
        sent = 0
        try:
            sent = await asyncio.wait_for(
                _send(writer, block), max(deadline - time.monotonic(), 0.1)
            )
        except TimeoutError:
            sent = -1  # the server stopped reading: what got through is unknown
            figures["stopped_reading"] = figures.get("stopped_reading", 0) + 1
        figures["bytes_sent"] = figures.get("bytes_sent", 0) + max(sent, 0)
        figures["replies"] = figures.get("replies", 0) + await _collect(reader, 2.0)
        _close(writer)

    await asyncio.gather(*(one() for _ in range(sizes.flood_clients)))


async def connect_flood(port: int, sizes: Sizes, figures: Figures) -> None:
    """d: ``connections`` connections that read the greeting and close."""
    queue = iter(range(sizes.connections))
    figures.update(connections=0, greetings={})

    async def worker() -> None:
        for _ in queue:
            try:
                reader, writer = await _open(port)
                code = await _reply(reader, 30)
                _close(writer)
            except (OSError, TimeoutError):
                code = 0
            figures["connections"] += 1
            figures["greetings"][code] = figures["greetings"].get(code, 0) + 1

    await asyncio.gather(*(worker() for _ in range(sizes.connect_parallel)))


async def many_commands(port: int, sizes: Sizes, figures: Figures) -> None:
    """d: one session, ``transactions`` transactions (MAIL, RCPT, DATA, message) in it."""
    reader, writer = await _open(port)
    await _reply(reader)
    writer.write(b"EHLO busy.example\r\n")
    await _reply(reader)
    accepted = 0
    envelope = f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{RECIPIENT}>\r\nDATA\r\n".encode()
    for _ in range(sizes.transactions):
        writer.write(envelope)
        codes = [await _reply(reader) for _ in range(3)]
        if codes[-1] != 354:
            figures["stopped_by"] = codes
            break
        writer.write(b"Subject: one of many\r\n\r\nhello\r\n.\r\n")
        accepted += await _reply(reader) == 250
    figures.update(commands=4 * sizes.transactions, accepted=accepted)
    _close(writer)


async def slowloris(port: int, sizes: Sizes, figures: Figures) -> None:
    """e: ``slow_clients`` connections dripping one byte a second for ``slow_seconds``; a
    client refused (421) or cut off connects again, as a real attacker would."""
    drip = b"EHLO slowloris.example.net" + b"x" * 400  # never a whole line
    figures.update(most_held=0, refused=0, cut_off=0)
    held = 0
    end = time.monotonic() + sizes.slow_seconds

    async def one() -> None:
        nonlocal held
        while time.monotonic() < end:
            try:
                reader, writer = await _open(port)
                code = await _reply(reader)
            except (OSError, TimeoutError):
                code = 0
            if code != 220:
                figures["refused"] += 1
                await asyncio.sleep(0.5)
                continue
            held += 1
            figures["most_held"] = max(figures["most_held"], held)
            try:
                for byte in drip:
                    if time.monotonic() >= end:
                        break
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(1.0)
            except (ConnectionError, OSError):
                figures["cut_off"] += 1
            held -= 1
            _close(writer)

    await asyncio.gather(*(one() for _ in range(sizes.slow_clients)))


async def deliver_many(port: int, sizes: Sizes, figures: Figures) -> None:
    """f: ``maildir_messages`` deliveries, one after another, in one session."""
    start = time.perf_counter()
    await many_commands(port, Sizes(transactions=sizes.maildir_messages), figures)
    figures["deliveries_per_second"] = figures["accepted"] / (time.perf_counter() - start)


async def auth_pipelined(port: int, sizes: Sizes, figures: Figures) -> None:
    """g: AUTH LOGIN before TLS (538), the credentials pipelined right behind it."""
    reader, writer = await _open(port)
    await _reply(reader)
    user = base64.b64encode(USER.encode())
    password = base64.b64encode(PASSWORD.encode())
    writer.write(b"EHLO curious.example\r\nAUTH LOGIN\r\n" + user + b"\r\n" + password + b"\r\n")
    writer.write(b"QUIT\r\n")
    await writer.drain()
    figures["replies"] = [await _reply(reader) for _ in range(5)]
    _close(writer)


#: Spins for the given seconds: a process that takes a core and sends nothing.
SPIN = (
    "import sys, time\nend = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end: pass"
)


async def cpu_only(port: int, sizes: Sizes, figures: Figures) -> None:
    """-: no traffic at all, one spinning process per core: the stall that sharing the cores
    alone causes the probe (attacker, probe and server share them in every other run too)."""
    seconds = min(sizes.flood_seconds, 5.0)
    spinners = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", SPIN, str(seconds))
        for _ in range(os.cpu_count() or 1)
    ]
    for spinner in spinners:
        await spinner.wait()
    figures["spinning_processes"] = len(spinners)
    figures["seconds"] = seconds


@dataclass
class Attack:
    name: str
    item: str
    run: Callable[[int, Sizes, Figures], Awaitable[None]]
    servers: tuple[str, ...] = ("smtplab", "aiosmtpd")
    keep_endings: bool = False


ATTACKS = [
    Attack("cpu-only", "-", cpu_only, ("smtplab",)),
    Attack("bdat-10mb", "a", bdat_10mb),
    Attack("data-long-line", "a", data_long_line),
    Attack("bare-cr", "b", _bare(b"\r")),
    Attack("bare-lf-keep", "b", _bare(b"\n"), ("smtplab",), keep_endings=True),
    Attack("pipeline-flood", "c", pipeline_flood),
    Attack("connect-flood", "d", connect_flood),
    Attack("many-commands", "d", many_commands),
    Attack("slowloris", "e", slowloris),
    Attack("maildir-20k", "f", deliver_many, ("smtplab",)),
    Attack("auth-pipelined", "g", auth_pipelined, ("smtplab",)),
]


# -- running and reporting ------------------------------------------------------------------


@dataclass
class Result:
    attack: str
    item: str
    server: str
    rss_before_mb: float
    rss_peak_mb: float
    rss_after_mb: float
    probe: dict[str, Any]
    figures: Figures
    seconds: float
    stop_seconds: float
    memory_ok: bool = True
    stall_ok: bool = True
    repeat_growth_mb: float | None = None  # RSS added by a second round (see run_attack)
    verdict: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def peak_growth_mb(self) -> float:
        return self.rss_peak_mb - self.rss_before_mb

    @property
    def lasting_growth_mb(self) -> float:
        return self.rss_after_mb - self.rss_before_mb

    @property
    def stall_ms(self) -> float:
        """The longest a well-behaved client waited for a greeting or a reply."""
        probe = self.probe
        return max(probe["worst_greeting_ms"] or 0.0, probe["worst_wait_ms"] or 0.0)


def fill_maildir(path: Path, count: int) -> None:
    """A Maildir holding ``count`` small messages already."""
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    message = b"Subject: old\r\n\r\nAn old message.\r\n"
    for number in range(count):
        (path / "new" / f"1700000000.M{number}P1Q{number}.old").write_bytes(message)


def run_attack(attack: Attack, server_name: str, sizes: Sizes, args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="smtplab-abuse-") as tmp:
        maildir = None
        if attack.name == "maildir-20k":
            maildir = Path(tmp) / "Maildir"
            fill_maildir(maildir, sizes.maildir_files)
        auth = attack.name == "auth-pipelined"
        transcript = str(Path(tmp) / "transcript.csv") if auth else None
        server = Server(server_name, free_port(), str(maildir) if maildir else None,
                        attack.keep_endings, auth, transcript)  # fmt: skip
        with server:
            pid = server.process.pid
            warm = probe_transaction(server.port, 10, PROBE_SOURCE)  # imports, first parses
            if not warm["ok"]:
                raise SystemExit(f"{server_name} does not serve a plain transaction: {warm}")
            before = memory_kb(pid)["VmRSS"]
            exact_peak = reset_peak(pid)
            probe = Probe(server.port, args.interval, args.timeout)
            figures: Figures = {}
            start = time.perf_counter()
            try:
                asyncio.run(asyncio.wait_for(attack.run(server.port, sizes, figures),
                                             sizes.cap_seconds))  # fmt: skip
            except TimeoutError:
                figures["capped_at_seconds"] = sizes.cap_seconds
            except (OSError, ConnectionError) as error:
                figures["attack_error"] = f"{type(error).__name__}: {error}"
            seconds = time.perf_counter() - start
            time.sleep(max(args.min_seconds - seconds, 0))  # the probe gets a fair sample
            summary = probe.stop()
            time.sleep(args.settle)  # closing connections are let go
            memory = memory_kb(pid)
            repeat_kb = None
            if (memory["VmRSS"] - before) / 1024 > LASTING_GROWTH_MB:
                # Kept or leaked? The allocator keeps freed memory for reuse (Python's arenas,
                # glibc's heap): a second round reuses it, while a leak grows again.
                with contextlib.suppress(TimeoutError, OSError, ConnectionError):
                    asyncio.run(asyncio.wait_for(attack.run(server.port, sizes, {}),
                                                 sizes.cap_seconds))  # fmt: skip
                time.sleep(args.settle)
                repeat_kb = memory_kb(pid)["VmRSS"]
        result = Result(
            attack.name, attack.item, server_name, before / 1024, memory["VmHWM"] / 1024,
            memory["VmRSS"] / 1024, summary, figures, seconds, server.stop_seconds,
        )  # fmt: skip
        if not exact_peak:
            result.notes.append("peak since the server started (clear_refs refused)")
        if repeat_kb is not None:
            result.repeat_growth_mb = (repeat_kb - memory["VmRSS"]) / 1024
            result.notes.append(
                f"the same attack again added {result.repeat_growth_mb:.1f} MB "
                f"(RSS {repeat_kb / 1024:.1f} MB): "
                + ("kept by the allocator for reuse, not leaked"
                   if result.repeat_growth_mb <= REPEAT_GROWTH_MB else "growing: a leak")
            )  # fmt: skip
        if maildir is not None:
            stored = [line for line in server.output.splitlines() if "messages stored" in line]
            figures["serve_says"] = stored[-1].strip() if stored else server.output[-200:]
        if transcript is not None:
            figures["credentials_in_transcript"] = credentials_leaked(Path(transcript))
    judge(result)
    return result


def credentials_leaked(path: Path) -> bool | None:
    """Whether the user name or password (plain or base64) is anywhere in the transcript."""
    if not path.exists():
        return None
    text = path.read_text(errors="replace").lower()
    secrets = [USER, PASSWORD]
    secrets += [base64.b64encode(secret.encode()).decode() for secret in secrets]
    return any(secret.lower() in text for secret in secrets)


def judge(result: Result) -> None:
    probe = result.probe
    if result.attack == "auth-pipelined":
        leaked = result.figures.get("credentials_in_transcript")
        result.stall_ok = result.memory_ok = leaked is False
        result.verdict = "pass" if leaked is False else "FAIL (credentials in the transcript)"
        return
    lasting_ok = result.lasting_growth_mb <= LASTING_GROWTH_MB or (
        result.repeat_growth_mb is not None and result.repeat_growth_mb <= REPEAT_GROWTH_MB
    )
    result.memory_ok = result.peak_growth_mb <= PEAK_GROWTH_MB and lasting_ok
    result.stall_ok = probe["failed"] == 0 and probe["transactions"] > 0
    result.stall_ok = result.stall_ok and result.stall_ms <= STALL_MS
    failed = [name for name, ok in (("memory", result.memory_ok), ("stall", result.stall_ok))
              if not ok]  # fmt: skip
    result.verdict = "pass" if not failed else f"FAIL ({', '.join(failed)})"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def describe(figures: Figures) -> str:
    """The attack's own figures on one line."""
    parts = []
    for key, value in figures.items():
        if key == "codes":
            continue
        if isinstance(value, float):
            value = f"{value:,.1f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        elif isinstance(value, list) and len(value) > 6:
            value = f"{value[:6]}... ({len(value)})"
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def print_result(result: Result) -> None:
    probe = result.probe
    print(
        f"{result.attack:<15} {result.server:<9} "
        f"{result.rss_before_mb:7.1f} {result.rss_peak_mb:8.1f} {result.rss_after_mb:7.1f}  "
        f"{probe['transactions']:5d} {probe['failed']:5d} "
        f"{_ms(probe['median_ms']):>7} {_ms(probe['worst_ms']):>8} "
        f"{_ms(probe['worst_greeting_ms']):>8} {_ms(probe['worst_wait_ms']):>8} "
        f"{probe['per_second']:6.1f}  {result.verdict}",
        flush=True,
    )
    print(f"{'':<25} attack: {describe(result.figures)} ({result.seconds:.1f} s; server "
          f"stopped in {result.stop_seconds:.1f} s)", flush=True)  # fmt: skip
    if probe["errors"]:
        print(f"{'':<25} probe errors: {'; '.join(probe['errors'])}", flush=True)
    for note in result.notes:
        print(f"{'':<25} note: {note}", flush=True)


HEADER = (
    f"{'attack':<15} {'server':<9} {'RSS MB':>7} {'peak MB':>8} {'after':>7}  "
    f"{'probe':>5} {'fail':>5} {'med ms':>7} {'worst ms':>8} {'greet ms':>8} {'wait ms':>8} "
    f"{'tx/s':>6}  verdict"
)


def print_ratios(results: list[Result]) -> None:
    pairs = {}
    for result in results:
        pairs.setdefault(result.attack, {})[result.server] = result
    rows = [(name, both) for name, both in pairs.items() if len(both) == 2]
    if not rows:
        return
    print("\nsmtplab / aiosmtpd under the same attack (a ratio above 1: smtplab did worse)")
    print(
        f"{'attack':<15} {'peak RSS growth MB':>21} {'ratio':>7} {'worst stall ms':>19} "
        f"{'ratio':>7} {'probe failures':>15}"
    )
    for name, both in rows:
        ours, theirs = both["smtplab"], both["aiosmtpd"]
        growth = (ours.peak_growth_mb, theirs.peak_growth_mb)
        stall = (ours.stall_ms, theirs.stall_ms)
        failed = f"{ours.probe['failed']} / {theirs.probe['failed']}"
        print(
            f"{name:<15} {growth[0]:10.1f} {growth[1]:10.1f} {_ratio(*growth):>7} "
            f"{stall[0]:9,.0f} {stall[1]:9,.0f} {_ratio(*stall):>7} {failed:>15}"
        )


def _ratio(ours: float, theirs: float) -> str:
    floor = 1.0  # below 1 MB / 1 ms the ratio says nothing
    return f"{max(ours, floor) / max(theirs, floor):.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attack", action="append", choices=[a.name for a in ATTACKS],
                        help="run this attack (repeatable; default: all)")  # fmt: skip
    parser.add_argument("--server", action="append", choices=["smtplab", "aiosmtpd"],
                        help="attack this server (repeatable; default: both)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="small sizes, a short run")
    parser.add_argument("--slowloris-seconds", type=float, help="how long slowloris drips")
    parser.add_argument("--interval", type=float, default=0.05, help="probe every (0.05 s)")
    parser.add_argument("--timeout", type=float, default=10.0, help="probe reply timeout (10 s)")
    parser.add_argument("--settle", type=float, default=1.0, help="wait before RSS after (1 s)")
    parser.add_argument(
        "--min-seconds", type=float, default=2.0, help="probe at least this long per attack (2 s)"
    )
    parser.add_argument("--json", help="write every result to this JSON file")
    args = parser.parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.slowloris_seconds is not None:
        sizes.slow_seconds = args.slowloris_seconds
    chosen = [a for a in ATTACKS if not args.attack or a.name in args.attack]
    servers = args.server or ["smtplab", "aiosmtpd"]
    print("hostile clients against smtplab serve and aiosmtpd, over 127.0.0.1")
    print(f"  python    {platform.python_implementation()} {platform.python_version()}")
    print(f"  cpus      {os.cpu_count()} (load average {os.getloadavg()[0]:.2f} at start)")
    print(f"  smtplab   {version('smtplab')}, aiosmtpd {version('aiosmtpd')}")
    print(f"  probe     a full transaction every {args.interval * 1000:.0f} ms from "
          f"{PROBE_SOURCE}, replies awaited up to {args.timeout:g} s")  # fmt: skip
    print(f"  targets   peak RSS growth <= {PEAK_GROWTH_MB:g} MB, after the attack <= "
          f"{LASTING_GROWTH_MB:g} MB (or a second round adding <= {REPEAT_GROWTH_MB:g} MB); "
          f"every probe transaction done, no greeting or reply slower than "
          f"{STALL_MS:g} ms")  # fmt: skip
    print(f"  sizes     {'quick' if args.quick else 'full'}: {asdict(sizes)}\n")
    print(HEADER)
    results = []
    for attack in chosen:
        for name in servers:
            if name in attack.servers:
                results.append(run_attack(attack, name, sizes, args))
                print_result(results[-1])
    print_ratios(results)
    passed = sum(r.verdict == "pass" for r in results)
    print(f"\n{passed} of {len(results)} attack runs within the targets")
    if args.json:
        rows = [asdict(r) | {"peak_growth_mb": r.peak_growth_mb,
                             "lasting_growth_mb": r.lasting_growth_mb, "stall_ms": r.stall_ms}
                for r in results]  # fmt: skip
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--probe"]:
        port, interval, timeout = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
        raise SystemExit(probe_main(port, interval, timeout, PROBE_SOURCE))
    raise SystemExit(main())
