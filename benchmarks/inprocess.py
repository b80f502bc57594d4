"""Recorded in-process SMTP transactions per second: smtplab vs aiosmtpd + smtplib on loopback.

What is measured
----------------
One *transaction* is a complete SMTP session, identical on both sides:

    connect, EHLO, MAIL FROM:<alice@example.net>, RCPT TO:<bob@example.org>, DATA,
    a 1024-byte message (Subject/From/To/Date headers and a body), the final dot, QUIT

* **smtplab**: a fresh ``smtplab.Lab()`` per timed run; per transaction ``lab.connect()``,
  ``ehlo()``, ``mail()``, ``rcpt()``, ``data()``, ``message(msg)``, ``quit()`` -- the steps
  spelled out, not ``lab.send``. The timed region ends only after ``lab.transcript()`` has
  built the pandas DataFrame of every recorded row of every session ("recorded"
  transactions). Checked afterwards (outside the timed region): 7 reply rows per session with
  the codes 220, 250, 250, 250, 354, 250, 221, and ``len(lab.messages) == N`` with the envelope
  and content intact.
* **aiosmtpd + smtplib**: one ``aiosmtpd.controller.Controller`` on 127.0.0.1 (a free port
  found by binding 127.0.0.1:0 first), started once outside the timed region, whose handler's
  ``handle_DATA`` appends the envelope (sender, recipients, content) to a list and returns
  ``250 OK``. Per transaction ``smtplib.SMTP("127.0.0.1", port, local_hostname=...)``,
  ``ehlo()``, ``mail()``, ``rcpt()``, ``data(msg)``, ``quit()`` -- spelled out, not
  ``sendmail``, which would send a different MAIL command (``SIZE=`` is added when the server
  advertises SIZE) and RSET on errors. Checked afterwards: the handler stored N messages with
  the right envelope and content.

Both loops also check the final-dot reply code (250) of every transaction, at the same cost.
Each side runs ``--repeat`` times, interleaved (smtplab, aiosmtpd, smtplab, ...), after an
untimed warm-up and a ``gc.collect()`` before every timed run; the table reports the
**median** of the repeats (and the min..max range), plus the ratio of the medians.

Why the comparison is fair, and where it is not
-----------------------------------------------
Same transaction, same command sequence, same 1 KB message, same client and server names
(``client.example.net`` / ``mx.example.org``: smtplib's and aiosmtpd's per-connection
``socket.getfqdn()`` calls are avoided, so DNS plays no part), and both servers store every
accepted message with its envelope before replying 250. smtplab additionally records every
command and reply with virtual timestamps and latencies and builds a DataFrame from them;
aiosmtpd records nothing of the kind. smtplab also adds a ``Received:`` header on delivery.

The differences are what the comparison is about: aiosmtpd + smtplib pay for a real TCP
connection per transaction over loopback (connect/accept, one send/recv round trip per
command, close), and for the handoff between the client thread and the asyncio event loop
running in the Controller's thread (both under the same GIL). An in-process workbench avoids
exactly these costs -- client and server exchange bytes in memory on a virtual clock -- which
is why it can be used to run thousands of sessions in a notebook. Numbers are not comparable
with a real mail server's throughput (no TLS, no disk, no DNS, a single client).

Each connection leaves a socket in TIME_WAIT; the default run opens about ``N * R`` (10,000)
connections, well within Linux's default ephemeral port range (about 28,000 ports).

Both sides are CPU-bound Python; on a small machine other processes change the figures a lot
(the 1-minute load average at start is printed). Prefer an otherwise idle machine, and compare
ratios from the same run rather than rates from different runs.

How to run
----------
::

    .venv/bin/python benchmarks/inprocess.py                 # the real measurement (N=2000, R=5)
    .venv/bin/python benchmarks/inprocess.py --quick         # smoke test, a few seconds
    .venv/bin/python benchmarks/inprocess.py --transactions 5000 --repeat 7

The exit status is 0 when every correctness check passed (whatever the speeds), 1 otherwise.
There are no timing assertions.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import smtplib
import socket
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version

import aiosmtpd
import pandas as pd
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

import smtplab

SENDER = "alice@example.net"
RECIPIENT = "bob@example.org"
CLIENT_NAME = "client.example.net"
SERVER_NAME = "mx.example.org"
MESSAGE_SIZE = 1024
EXPECTED_CODES = [220, 250, 250, 250, 354, 250, 221]  # greeting, EHLO, MAIL, RCPT, DATA, dot, QUIT

DEFAULT_TRANSACTIONS = 2000
DEFAULT_REPEAT = 5
QUICK_TRANSACTIONS = 200
QUICK_REPEAT = 3
WARMUP_TRANSACTIONS = 50
#: The least smtplab must keep with a plain, untuned core (the earlier 10x target is retired).
FLOOR_RATIO = 5.0


class CheckFailed(Exception):
    """A correctness check failed: a message or a reply is missing or wrong."""


def build_message(size: int = MESSAGE_SIZE) -> bytes:
    """A deterministic RFC 5322 message of exactly ``size`` bytes, CRLF line ends."""
    head = (
        b"Subject: smtplab benchmark message\r\n"
        b"From: Alice <alice@example.net>\r\n"
        b"To: Bob <bob@example.org>\r\n"
        b"Date: Mon, 05 Jan 2026 09:00:00 +0000\r\n"
        b"\r\n"
    )
    text = b"The quick brown fox jumps over the lazy dog, line %03d of the benchmark body.\r\n"
    lines = []
    number = 1
    while len(head) + sum(map(len, lines)) + len(text % number) <= size - 2:
        lines.append(text % number)
        number += 1
    rest = size - len(head) - sum(map(len, lines)) - 2
    lines.append(b"x" * rest + b"\r\n")
    message = head + b"".join(lines)
    if len(message) != size:  # pragma: no cover - a bug in this function
        raise AssertionError(len(message))
    return message


# -- smtplab ---------------------------------------------------------------------------------


def run_smtplab(n: int, message: bytes) -> float:
    """Time ``n`` recorded in-process transactions on a fresh Lab; return seconds."""
    lab = smtplab.Lab()
    failures = 0
    gc.collect()
    start = time.perf_counter()
    for _ in range(n):
        session = lab.connect(CLIENT_NAME)
        session.ehlo()
        session.mail(SENDER)
        session.rcpt(RECIPIENT)
        session.data()
        if session.message(message).code != 250:
            failures += 1
        session.quit()
    frame = lab.transcript()
    elapsed = time.perf_counter() - start
    check_smtplab(lab, frame, n, message, failures)
    return elapsed


def check_smtplab(
    lab: smtplab.Lab, frame: pd.DataFrame, n: int, message: bytes, failures: int
) -> None:
    if failures:
        raise CheckFailed(f"smtplab: {failures} of {n} final dots were not answered 250")
    replies = frame[frame["kind"] == "reply"]
    if len(replies) != 7 * n:
        raise CheckFailed(f"smtplab: {len(replies)} reply rows in the transcript, want {7 * n}")
    if replies["code"].astype(int).tolist() != EXPECTED_CODES * n:
        raise CheckFailed(f"smtplab: reply codes are not {EXPECTED_CODES} in every session")
    if frame["session"].nunique() != n:
        raise CheckFailed(f"smtplab: {frame['session'].nunique()} sessions recorded, want {n}")
    stored = lab.messages
    if len(stored) != n:
        raise CheckFailed(f"smtplab: {len(stored)} messages stored, want {n}")
    for m in stored:
        if (m.mail_from, m.recipients) != (SENDER, (RECIPIENT,)):
            raise CheckFailed(f"smtplab: wrong envelope {m.mail_from!r} -> {m.recipients!r}")
        if not m.content.endswith(message):
            raise CheckFailed("smtplab: a stored message differs from the one sent")


# -- aiosmtpd + smtplib ----------------------------------------------------------------------


class StoringHandler:
    """An aiosmtpd handler that keeps every message's envelope, like smtplab's MemoryStore."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[str, ...], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:
        self.messages.append((envelope.mail_from, tuple(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (Controller in aiosmtpd 1.4.6 wants a number)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_aiosmtpd() -> tuple[Controller, StoringHandler, int]:
    handler = StoringHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname=SERVER_NAME)
    controller.start()
    return controller, handler, port


def run_aiosmtpd(n: int, message: bytes, handler: StoringHandler, port: int) -> float:
    """Time ``n`` smtplib transactions against the running aiosmtpd server; return seconds."""
    handler.messages.clear()
    failures = 0
    gc.collect()
    start = time.perf_counter()
    for _ in range(n):
        client = smtplib.SMTP("127.0.0.1", port, local_hostname=CLIENT_NAME)
        client.ehlo()
        client.mail(SENDER)
        client.rcpt(RECIPIENT)
        if client.data(message)[0] != 250:
            failures += 1
        client.quit()
    elapsed = time.perf_counter() - start
    check_aiosmtpd(handler, n, message, failures)
    return elapsed


def check_aiosmtpd(handler: StoringHandler, n: int, message: bytes, failures: int) -> None:
    if failures:
        raise CheckFailed(f"aiosmtpd: {failures} of {n} final dots were not answered 250")
    if len(handler.messages) != n:
        raise CheckFailed(f"aiosmtpd: {len(handler.messages)} messages received, want {n}")
    for mail_from, rcpt_tos, content in handler.messages:
        if (mail_from, rcpt_tos) != (SENDER, (RECIPIENT,)):
            raise CheckFailed(f"aiosmtpd: wrong envelope {mail_from!r} -> {rcpt_tos!r}")
        if content != message:
            raise CheckFailed("aiosmtpd: a received message differs from the one sent")


def say(*args: object) -> None:
    print(*args, flush=True)


# -- the report ------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    n: int
    seconds: list[float]

    @property
    def rates(self) -> list[float]:
        return [self.n / s for s in self.seconds]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def environment() -> list[tuple[str, str]]:
    return [
        ("date", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("platform", platform.platform()),
        ("cpus", f"{os.cpu_count()} (load average {os.getloadavg()[0]:.2f} at start)"),
        ("smtplab", smtplab.__version__),
        ("aiosmtpd", getattr(aiosmtpd, "__version__", None) or version("aiosmtpd")),
        ("pandas", version("pandas")),
    ]


def table(results: list[Result]) -> str:
    header = ("", "median tx/s", "min..max tx/s", "median run s")
    rows = [header]
    for r in results:
        low, high = min(r.rates), max(r.rates)
        seconds = statistics.median(r.seconds)
        rows.append((r.name, f"{r.median:,.0f}", f"{low:,.0f}..{high:,.0f}", f"{seconds:.3f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Recorded in-process SMTP transactions/s: smtplab vs aiosmtpd + smtplib "
        "over 127.0.0.1, measured in the same run."
    )
    parser.add_argument(
        "--transactions",
        "-n",
        type=int,
        help=f"transactions per timed run (default {DEFAULT_TRANSACTIONS}; "
        f"{QUICK_TRANSACTIONS} with --quick)",
    )
    parser.add_argument(
        "--repeat",
        "-r",
        type=int,
        help=f"timed runs per side; the median is reported (default {DEFAULT_REPEAT}; "
        f"{QUICK_REPEAT} with --quick)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small smoke-test run (a few seconds)"
    )
    args = parser.parse_args(argv)
    if args.transactions is None:
        args.transactions = QUICK_TRANSACTIONS if args.quick else DEFAULT_TRANSACTIONS
    if args.repeat is None:
        args.repeat = QUICK_REPEAT if args.quick else DEFAULT_REPEAT
    if args.transactions < 1 or args.repeat < 1:
        parser.error("--transactions and --repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n, repeat = args.transactions, args.repeat
    message = build_message()

    say("smtplab in-process vs aiosmtpd + smtplib over 127.0.0.1")
    for key, value in environment():
        say(f"  {key:<9} {value}")
    say(f"  workload  {n} transactions x {repeat} repeats, {len(message)}-byte message")
    say()

    controller, handler, port = start_aiosmtpd()
    smtplab_run = Result("smtplab in-process, recorded", n, [])
    aiosmtpd_run = Result("aiosmtpd + smtplib, 127.0.0.1", n, [])
    try:
        warmup = min(WARMUP_TRANSACTIONS, n)
        run_smtplab(warmup, message)
        run_aiosmtpd(warmup, message, handler, port)
        for i in range(1, repeat + 1):
            smtplab_run.seconds.append(run_smtplab(n, message))
            aiosmtpd_run.seconds.append(run_aiosmtpd(n, message, handler, port))
            say(
                f"repeat {i}/{repeat}: smtplab {smtplab_run.rates[-1]:,.0f} tx/s "
                f"({smtplab_run.seconds[-1]:.2f} s), aiosmtpd {aiosmtpd_run.rates[-1]:,.0f} tx/s "
                f"({aiosmtpd_run.seconds[-1]:.2f} s)"
            )
    except CheckFailed as error:
        print(f"CHECK FAILED: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        controller.stop()

    ratio = smtplab_run.median / aiosmtpd_run.median
    say()
    say(table([smtplab_run, aiosmtpd_run]))
    say()
    verdict = "held" if ratio >= FLOOR_RATIO else "NOT held"
    say(f"ratio smtplab / aiosmtpd (medians): {ratio:.2f}x  (floor >= {FLOOR_RATIO:g}x: {verdict})")
    say("all checks passed: every message stored, every transcript complete")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
