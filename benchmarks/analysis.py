"""The analysis layer on a million-row transcript: time and memory of each function.

What is measured
----------------
A transcript of ``--rows`` rows (default 1,000,000) is built from real sessions: every teaching
scenario run in the lab (deliveries, greylisting, relay refusals, 100-recipient messages, a
dropped connection, VRFY/EXPN, ...), the committed capture of ``swaks`` and ``smtplib``
talking to Postfix and aiosmtpd (pipelining, STARTTLS, BDAT), and the committed Postfix log of
the same traffic (a log of refusals: the commands it accepted are known only from its
``disconnect`` counts). Those sessions are repeated with fresh session ids and later times
until the row count is reached, in the schema's dtypes (categorical session, sender, kind,
verb, source, enhanced code and endpoints).

Timed, each the median of ``--repeat`` runs: the reply-code distributions (by class, code,
enhanced code, command), latencies per command, the session table with its Postfix-style
fingerprints, the transaction table and the protocol checks. Printed: the frame's memory
(``memory_usage(deep=True)``), each function's time, ``sessions()`` and ``transactions()``
relative to ``code_distribution`` (issue 16's target: within 10x of it, and under 10 s for ten
million rows on one core), how the cost grows with size (the same functions on the first
quarter, half and all of the rows, in microseconds per row: flat when the work is linear), and
the process's peak memory. The first issue's target: distributions and the session summary in
about a second for a million rows, the frame well under 500 MB. No timing is asserted anywhere
in the tests.

::

    .venv/bin/python benchmarks/analysis.py
    .venv/bin/python benchmarks/analysis.py --rows 100000 --repeat 1
    .venv/bin/python benchmarks/analysis.py --rows 10000000 --repeat 1
    .venv/bin/python benchmarks/analysis.py --no-growth     # skip the quarter and half runs
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
    """Every scenario's sessions, the committed capture's and the committed Postfix log's, as
    one transcript."""
    frames = [smtplab.run_scenario(name).transcript for name in smtplab.scenarios()["name"]]
    frames.append(smtplab.read(FIXTURES / "smtp.pcapng"))
    frames.append(smtplab.read(FIXTURES / "postfix.log", format="postfix", year=2026))
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


#: What the size runs compare: the two tables of issue 16 and the distribution they are held to.
GROWTH = ("code_distribution(by='class')", "sessions()", "transactions()")
#: The distributions the tables' times are compared with.
REFERENCES = ("code_distribution(by='class')", "code_distribution(by='command')")


def relative(seconds: dict[str, float]) -> None:
    """Print the tables' times as multiples of the distributions' (issue 16: within 10x)."""
    print()
    for name in ("sessions()", "transactions()"):
        ratios = "   ".join(
            f"{seconds[name] / seconds[ref]:6.1f}x {ref}" for ref in REFERENCES if seconds[ref]
        )
        print(f"{name:16} {ratios}")


def growth(base: pd.DataFrame, rows: int, repeat: int) -> None:
    """Time :data:`GROWTH` on a quarter, a half and all of ``rows``: per row, flat if linear."""
    print()
    print("how the cost grows with size (microseconds per row; flat: linear)")
    sizes = [rows // 4, rows // 2, rows]
    print(f"{'':34}" + "".join(f"{size:>14,}" for size in sizes))
    functions = {
        "code_distribution(by='class')": lambda frame: code_distribution(frame, "class"),
        "sessions()": sessions,
        "transactions()": transactions,
    }
    per_row: dict[str, list[float]] = {name: [] for name in GROWTH}
    for size in sizes:
        frame = repeated(base, size)
        for name in GROWTH:
            seconds, _ = timed(lambda f=functions[name], frame=frame: f(frame), repeat)
            per_row[name].append(seconds / size * 1e6)
        del frame
    for name in GROWTH:
        print(f"{name:34}" + "".join(f"{value:>14.3f}" for value in per_row[name]))


def in_session_order(table: pd.DataFrame) -> pd.DataFrame:
    """A sessions() or transactions() table by session name (stably), numbered afresh."""
    if "session" not in table.columns:  # sessions(): one row per session, by its name
        return table.sort_index()
    keys = table["session"].astype(str)
    return table.iloc[np.argsort(keys.to_numpy(), kind="stable")].reset_index(drop=True)


def on_dask(
    frame: pd.DataFrame, workers: int, times: dict[str, float], results: dict[str, Any]
) -> None:
    """sessions() and transactions() on a local cluster of ``workers`` processes (one thread
    each), over ``frame`` written as a dataset: time, speedup over pandas on one core, and
    the answers checked equal to pandas'."""
    import tempfile

    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory(prefix="smtplab-analysis-") as scratch:
        started = time.perf_counter()
        # Files of about a 40th of the rows each: partitions for every worker to share.
        report = smtplab.write_dataset(frame, Path(scratch), batch_rows=max(1, len(frame) // 40))
        written = time.perf_counter() - started
        print()
        print(f"dask: the frame as a dataset of {len(report.files)} files in {written:.1f} s; "
              f"{workers} local worker processes, one thread each")  # fmt: skip
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
        with cluster, Client(cluster):
            dataset = smtplab.dask_dataset(scratch)
            for name, analysis in (("sessions()", sessions), ("transactions()", transactions)):
                seconds, answer = timed(lambda analysis=analysis: analysis(dataset), 1)
                pandas_seconds = times[name]
                print(f"{name:34} {seconds:7.3f} s on Dask (pandas {pandas_seconds:.3f} s): "
                      f"{pandas_seconds / seconds:.2f}x")  # fmt: skip
                # The dataset holds the sessions in another order (by source and day): the
                # answers are compared session by session.
                answer, expected = in_session_order(answer), in_session_order(results[name])
                pd.testing.assert_frame_equal(
                    answer, expected, check_dtype=False, check_categorical=False, obj=name
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--no-growth", action="store_true", help="skip the runs on a quarter and a half of the rows"
    )
    parser.add_argument(
        "--dask",
        type=int,
        metavar="WORKERS",
        default=0,
        help="also run sessions() and transactions() on a local Dask cluster of this many worker "
        "processes, over the frame written as a Parquet dataset, and print the speedup",
    )
    args = parser.parse_args()

    base = real_sessions()
    frame = repeated(base, args.rows)
    megabytes = frame.memory_usage(deep=True).sum() / 1e6
    count = frame["session"].nunique()
    from_log = frame["source"].isin(["postfix"]).to_numpy()
    log_sessions = frame["session"][from_log].nunique()
    print(f"frame     {len(frame):,} rows, {count:,} sessions, {megabytes:,.0f} MB in memory "
          f"({megabytes * 1e6 / len(frame):.0f} bytes per row)")  # fmt: skip
    print(f"          (from {base['session'].nunique()} real sessions of {len(base)} rows;")
    print(f"          {log_sessions:,} sessions, {from_log.sum():,} rows from the Postfix log)")
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
    results, times = {}, {}
    for name, function in work:
        seconds, result = timed(function, args.repeat)
        results[name], times[name] = result, seconds
        print(f"{name:34} {seconds:7.3f} s   ({len(result):,} rows out)")
    relative(times)

    summary = results["sessions()"]
    assert len(summary) == count, "every session is summarised"
    assert results["code_distribution(by='class')"].sum() == int(
        (frame["kind"] == "reply").sum()
    ), "every reply is counted"
    assert results["oddities()"].empty, "real traffic has no oddities"
    if args.dask:
        on_dask(frame, args.dask, times, results)
    if not args.no_growth:
        del frame, results
        growth(base, args.rows, args.repeat)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(f"peak memory of this process: {peak:,.0f} MB")
    print("all checks passed")


if __name__ == "__main__":
    main()
