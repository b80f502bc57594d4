"""The analysis layer on a million-row transcript: time and memory of each function.

What is measured
----------------
A transcript of ``--rows`` rows (default 1,000,000) is built from real sessions: every teaching
scenario run in the lab (deliveries, greylisting, relay refusals, 100-recipient messages, a
dropped connection, VRFY/EXPN, ...) plus the committed capture of ``swaks`` and ``smtplib``
talking to Postfix and aiosmtpd (pipelining, STARTTLS, BDAT). Those sessions are repeated with
fresh session ids and later times until the row count is reached, in the schema's dtypes
(categorical session, sender, kind, verb, source, enhanced code and endpoints).

Timed, each the median of ``--repeat`` runs: the reply-code distributions (by class, code,
enhanced code, command), latencies per command, the session table with its Postfix-style
fingerprints, the transaction table and the protocol checks. Printed: the frame's memory
(``memory_usage(deep=True)``), each function's time, and the process's peak memory. The
issue's target: distributions and the session summary in about a second, the frame well under
500 MB. No timing is asserted anywhere in the tests.

::

    .venv/bin/python benchmarks/analysis.py
    .venv/bin/python benchmarks/analysis.py --rows 100000 --repeat 1
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import smtplab
from smtplab.analysis import (
    code_distribution,
    latencies,
    oddities,
    sessions,
    transactions,
)

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def real_sessions() -> pd.DataFrame:
    """Every scenario's sessions and the committed capture's, as one transcript."""
    frames = [smtplab.run_scenario(name).transcript for name in smtplab.scenarios()["name"]]
    frames.append(smtplab.read(FIXTURES / "smtp.pcapng"))
    return smtplab.concat(frames)


def repeated(base: pd.DataFrame, rows: int) -> pd.DataFrame:
    """``base`` repeated to ``rows`` rows, each copy with its own session ids and later times."""
    copies = -(-rows // len(base))
    take = np.tile(np.arange(len(base)), copies)[:rows]
    copy = np.repeat(np.arange(copies), len(base))[:rows]
    frame = base.iloc[take].reset_index(drop=True)
    names = base["session"].cat.categories
    codes = base["session"].cat.codes.to_numpy()[take].astype(np.int64) + copy * len(names)
    labels = [f"{name}.{k}" for k in range(copies) for name in names]
    frame["session"] = pd.Categorical.from_codes(codes, categories=labels)
    frame["time"] = frame["time"] + pd.to_timedelta(copy * 60, unit="s")  # a copy a minute
    return frame


def timed(function: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    base = real_sessions()
    frame = repeated(base, args.rows)
    megabytes = frame.memory_usage(deep=True).sum() / 1e6
    count = frame["session"].nunique()
    print(f"frame     {len(frame):,} rows, {count:,} sessions, {megabytes:,.0f} MB in memory")
    print(f"          (from {base['session'].nunique()} real sessions of {len(base)} rows)")
    print()

    work: list[tuple[str, Callable[[], Any]]] = [
        ("code_distribution(by='class')", lambda: code_distribution(frame, "class")),
        ("code_distribution(by='code')", lambda: code_distribution(frame, "code")),
        ("code_distribution(by='enhanced')", lambda: code_distribution(frame, "enhanced")),
        ("code_distribution(by='command')", lambda: code_distribution(frame, "command")),
        ("latencies()", lambda: latencies(frame)),
        ("sessions()", lambda: sessions(frame)),
        ("transactions()", lambda: transactions(frame)),
        ("oddities()", lambda: oddities(frame)),
    ]
    results = {}
    for name, function in work:
        seconds, result = timed(function, args.repeat)
        results[name] = result
        print(f"{name:34} {seconds:7.3f} s   ({len(result):,} rows out)")

    summary = results["sessions()"]
    assert len(summary) == count, "every session is summarised"
    assert results["code_distribution(by='class')"].sum() == int(
        (frame["kind"] == "reply").sum()
    ), "every reply is counted"
    assert results["oddities()"].empty, "real traffic has no oddities"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(f"peak memory of this process: {peak:,.0f} MB")
    print("all checks passed")


if __name__ == "__main__":
    main()
