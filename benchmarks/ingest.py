"""Reading captured traffic: smtplab against tshark (a capture) and pflogsumm (a Postfix log).

What is measured
----------------
**A capture.** Postfix's ``smtp-source`` sends ``--messages`` one-message sessions (1 KB each,
20 at a time) to Postfix's ``smtp-sink`` on 127.0.0.1 while ``dumpcap`` records them into a
pcapng file (made once, outside the timed region; a few hundred thousand packets). Then, timed:

* ``tshark`` extracting the SMTP commands and reply codes of every packet (``-Y smtp -T
  fields -e tcp.stream -e smtp.req.command -e smtp.response.code``);
* ``smtplab.read()`` building the transcript DataFrame: every connection reassembled, every
  command, reply, message paired, with times and latencies.

**A Postfix log.** The committed fixture's log (seven real sessions from ``swaks``,
``smtplib`` and smtplab, with rejections, TLS and BDAT) repeated ``--log-copies`` times with
fresh process ids, queue ids and times, so that every session is distinct. ``--log-shape``
says how its times fall: ``clustered`` (the default: each copy writes all its lines in the
same second, so lines come 54 to a second and a reader's per-second caches pay) or ``spread``
(every line in a second of its own, as on a quiet server). Timed: ``pflogsumm`` summarising
it, and ``smtplab.read()`` building the transcript.

The script checks both readers saw the same traffic (sessions and reply codes against tshark,
sessions against the log's ``connect from`` lines), prints seconds, rates and the ratios. The
median of ``--repeat`` runs is reported. No timing is asserted.

::

    .venv/bin/python benchmarks/ingest.py                  # 10,000 sessions, 2,000 log copies
    .venv/bin/python benchmarks/ingest.py --messages 1000 --log-copies 100 --repeat 1
    .venv/bin/python benchmarks/ingest.py --only log      # the log comparison alone
    .venv/bin/python benchmarks/ingest.py --only log --log-shape spread  # a second per line

Needs root for ``dumpcap`` on ``lo``, and ``tshark``, ``pflogsumm``, ``smtp-source`` and
``smtp-sink`` (Debian: ``apt install tshark pflogsumm postfix``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import smtplab

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
LOG_SHAPES = {"clustered": "a copy's lines in one second", "spread": "a second per line"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def record_capture(path: Path, messages: int) -> int:
    """Capture ``messages`` smtp-source sessions to smtp-sink; return the port used."""
    port = free_port()
    sink = ["smtp-sink", "-u", "nobody"] if os.geteuid() == 0 else ["smtp-sink"]
    server = subprocess.Popen([*sink, f"127.0.0.1:{port}", "1000"], stdout=subprocess.DEVNULL)
    dumpcap = subprocess.Popen(
        ["dumpcap", "-q", "-i", "lo", "-B", "64", "-f", f"tcp port {port}", "-w", str(path)],
        stderr=subprocess.DEVNULL,
    )
    time.sleep(2)
    try:
        subprocess.run(
            ["smtp-source", "-s", "20", "-m", str(messages), "-l", "1024",
             "-f", "alice@example.net", "-t", "bob@example.org", f"127.0.0.1:{port}"],
            check=True, timeout=600,
        )  # fmt: skip
        time.sleep(2)
    finally:
        dumpcap.terminate()
        dumpcap.wait(timeout=60)
        server.terminate()
        server.wait(timeout=60)
    return port


def big_log(path: Path, copies: int, shape: str = "clustered") -> int:
    """The fixture log ``copies`` times with fresh pids, queue ids and times; sessions.

    ``shape`` is ``clustered`` (each copy writes all its lines in one second, copy ``n`` at
    second ``n``: lines come many to a second, so a reader's per-second caches pay) or
    ``spread`` (every line in a second of its own, as on a quiet server)."""
    lines = (FIXTURES / "postfix.log").read_text().splitlines()
    queue_ids = sorted(set(re.findall(r"\b([0-9A-F]{11})\b", "\n".join(lines))))
    start = dt.datetime(2026, 11, 29)
    with path.open("w") as out:
        for copy in range(copies):
            minute, second = divmod(copy, 60)
            hour, minute = divmod(minute, 60)
            stamp = f"Nov 29 {hour % 24:02d}:{minute:02d}:{second:02d}"
            text = "\n".join(lines)
            shift = copy * 10
            text = re.sub(r"\[(\d+)\]:", lambda m, shift=shift: f"[{int(m[1]) + shift}]:", text)
            for index, queue_id in enumerate(queue_ids):
                text = text.replace(queue_id, f"{copy:07X}{index:04X}")
            if shape == "clustered":
                text = re.sub(r"^Nov 29 \d\d:\d\d:\d\d", stamp, text, flags=re.MULTILINE)
            else:
                first = copy * len(lines)
                text = "\n".join(
                    (start + dt.timedelta(seconds=first + number)).strftime("%b %e %H:%M:%S")
                    + line[len("Nov 29 00:00:00") :]
                    for number, line in enumerate(text.split("\n"))
                )
            out.write(text + "\n")
    return copies * (len([line for line in lines if " connect from " in line]))


def timed(run: Callable[[], object], repeat: int) -> tuple[float, object]:
    seconds, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--log-copies", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("capture", "log"), help="run one comparison")
    parser.add_argument(
        "--log-shape",
        choices=("clustered", "spread"),
        default="clustered",
        help="clustered: each copy's lines in one second (default); spread: a second per line",
    )
    args = parser.parse_args(argv)
    needed = {
        None: ("tshark", "dumpcap", "pflogsumm", "smtp-source", "smtp-sink"),
        "capture": ("tshark", "dumpcap", "smtp-source", "smtp-sink"),
        "log": ("pflogsumm",),
    }[args.only]
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        print(f"missing {', '.join(missing)} (apt install tshark pflogsumm postfix)",
              file=sys.stderr)  # fmt: skip
        return 2
    complete = True
    with tempfile.TemporaryDirectory() as work:
        capture, log = Path(work) / "load.pcapng", Path(work) / "maillog"
        port = record_capture(capture, args.messages) if args.only != "log" else 0
        log_sessions = 0
        if args.only != "capture":
            log_sessions = big_log(log, args.log_copies, args.log_shape)
        print("reading captured SMTP: smtplab against tshark and pflogsumm")
        print(f"  smtplab   {Path(smtplab.__file__).parent}")
        if args.only != "log":
            print(f"  capture   {capture.stat().st_size / 1e6:,.1f} MB, {args.messages:,} sessions")
        if args.only != "capture":
            print(f"  log       {log.stat().st_size / 1e6:,.1f} MB, {log_sessions:,} sessions, "
                  f"{args.log_shape} ({LOG_SHAPES[args.log_shape]})")  # fmt: skip
        print(f"  repeats   {args.repeat} (median)\n")
        if args.only != "log":
            complete &= compare_capture(capture, port, args.repeat) == args.messages
        if args.only != "capture":
            complete &= compare_log(log, args.repeat) == log_sessions
    if not complete:
        print("WARNING: the readers did not see every session", file=sys.stderr)
        return 1
    return 0


def compare_capture(capture: Path, port: int, repeat: int) -> int:
    """Time tshark and smtplab on the capture, print both; the sessions smtplab saw."""

    def run_tshark() -> str:
        return subprocess.run(
            ["tshark", "-r", str(capture), "-d", f"tcp.port=={port},smtp", "-Y", "smtp",
             "-T", "fields", "-e", "tcp.stream", "-e", "smtp.req.command",
             "-e", "smtp.response.code"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    tshark_s, fields = timed(run_tshark, repeat)
    ours_s, frame = timed(lambda: smtplab.read(capture, progress=False), repeat)
    streams = {line.split("\t")[0] for line in str(fields).splitlines()}
    codes = sum(len(c.split(",")) for c in re.findall(r"\t(\d[\d,]*)$", str(fields), re.M))
    sessions = frame["session"].nunique()  # type: ignore[index]
    replies = int((frame["kind"] == "reply").sum())  # type: ignore[index]
    print(f"capture  tshark   {tshark_s:7.2f} s  "
          f"({len(streams):,} connections, {codes:,} codes)")  # fmt: skip
    print(f"         smtplab  {ours_s:7.2f} s  ({sessions:,} sessions, {replies:,} replies)")
    print(f"         smtplab is {tshark_s / ours_s:.2f}x tshark's speed\n")
    return int(sessions)


def compare_log(log: Path, repeat: int) -> int:
    """Time pflogsumm and smtplab on the log, print both; the sessions smtplab saw."""

    def run_pflogsumm() -> str:
        return subprocess.run(
            ["pflogsumm", "--detail", "10", str(log)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip

    summary_s, summary = timed(run_pflogsumm, repeat)
    year = 2026
    read_s, logged = timed(lambda: smtplab.read(log, year=year, progress=False), repeat)
    received = re.search(r"(\d+)\s+received", str(summary))
    count = received[1] if received else "?"
    seen_in_log = logged["session"].nunique()  # type: ignore[index]
    print(f"log      pflogsumm {summary_s:6.2f} s  ({count} received)")
    print(f"         smtplab   {read_s:6.2f} s  ({seen_in_log:,} sessions)")
    print(f"         smtplab is {summary_s / read_s:.2f}x pflogsumm's speed")
    return int(seen_in_log)


if __name__ == "__main__":
    raise SystemExit(main())
