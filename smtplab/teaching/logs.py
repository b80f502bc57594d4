"""A bigger Postfix log made from a real one: for trying out datasets and clusters.

A log of real size is rarely at hand in a course. :func:`grown_log` writes one from a real
log (the committed fixture, by default): its sessions again and again, each copy with its own
process ids, queue ids and times and, when ``hosts`` are given, spread over several mail
hosts, as a month of a few MX hosts' logs would be. Every line is one Postfix wrote; only the
pids, queue ids, times and host names change, so the reader meets real shapes.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Sequence
from pathlib import Path

#: The real log of ``tests/fixtures/record.py``: seven sessions from swaks, smtplib and smtplab.
FIXTURE_LOG = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "postfix.log"
_STAMP = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d", re.MULTILINE)
_PID = re.compile(r"\[(\d+)\]:")
_QUEUE_ID = re.compile(r"\b([0-9A-F]{11})\b")


def grown_log(
    path: str | Path,
    copies: int,
    *,
    hosts: Sequence[str] = ("vm",),
    start: dt.datetime = dt.datetime(2026, 11, 29),
    every: dt.timedelta = dt.timedelta(seconds=1),
    source: str | Path = FIXTURE_LOG,
) -> Path:
    """Write ``copies`` copies of ``source``'s sessions to ``path``: copy ``n`` on host
    ``hosts[n % len(hosts)]``, all its lines at ``start + n * every`` (classic syslog stamps:
    read them with ``year=start.year``), with pids and queue ids of its own. Returns ``path``."""
    text = Path(source).read_text()
    queue_ids = sorted(set(_QUEUE_ID.findall(text)))
    host = text.split(" ", 4)[3]  # "Nov 29 01:57:55 HOST postfix/...": the log's own host
    path = Path(path)
    with path.open("w") as out:
        for copy in range(copies):
            stamp = (start + copy * every).strftime("%b %e %H:%M:%S")
            lines = _PID.sub(functools.partial(_pid, shift=copy * 10), text)
            lines = _QUEUE_ID.sub(functools.partial(_queue_id, copy=copy, known=queue_ids), lines)
            lines = lines.replace(f" {host} ", f" {hosts[copy % len(hosts)]} ")
            out.write(_STAMP.sub(stamp, lines))
    return path


def _pid(match: re.Match[str], shift: int) -> str:
    """A pid of the copy's own (the fixture's are less than 10 apart)."""
    return f"[{int(match[1]) + shift}]:"


def _queue_id(match: re.Match[str], copy: int, known: list[str]) -> str:
    """A queue id of the copy's own: its number, and the id's place in the source."""
    return f"{copy:07X}{known.index(match[1]):04X}"
