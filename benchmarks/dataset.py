"""Streaming a big Postfix log into a Parquet dataset: time and peak memory, against pflogsumm.

What is measured
----------------
A log of about ``--megabytes`` (default 1024) is made from the committed fixture's seven real
sessions: ``ingest.py``'s log of 2,000 fresh copies (14,000 sessions, 12.9 MB, a copy's lines
in one second), written again and again an hour later each time, so the log spans days and
its sessions land in several day partitions. Then, each in a process of its own:

* ``smtplab ingest LOG --dataset DIR``: every session read, its rows written to Parquet files
  by source and day in batches (``smtplab.write_dataset``);
* ``pflogsumm LOG``: Postfix's log summariser reading the same file (the same work of reading
  every line, less the transcript: the peer to compare speed and memory with).

Printed: wall-clock seconds, megabytes per second, peak resident memory of each process
(``ru_maxrss`` of the child), the dataset's rows, sessions, files and size on disk, and the
time to load one day back with ``smtplab.read_dataset(filters=...)``. The issue's target:
the ingest's peak memory under 1 GB for a 1 GB log. No timing is asserted.

::

    .venv/bin/python benchmarks/dataset.py                    # about 1 GB
    .venv/bin/python benchmarks/dataset.py --megabytes 100    # a quicker look

Needs ``pflogsumm`` (Debian: ``apt install pflogsumm``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import big_log

import smtplab

BLOCK_COPIES = 2000  # of the fixture's 7 sessions: 12.9 MB, 33 minutes of log from 00:00:00


def make_log(path: Path, megabytes: int) -> int:
    """A log of about ``megabytes``: the block of copies, moved on an hour each time; its
    sessions."""
    block_file = path.with_suffix(".block")
    sessions = big_log(block_file, BLOCK_COPIES)
    block = block_file.read_text()
    block_file.unlink()
    blocks = max(1, round(megabytes * 1_000_000 / len(block)))
    start = dt.datetime(2026, 11, 29)
    with path.open("w") as out:
        for number in range(blocks):
            hour = start + dt.timedelta(hours=number)
            # Every stamp of the block starts "Nov 29 00:": the hour and day move on.
            out.write(block.replace("Nov 29 00:", hour.strftime("%b %e %H:")))
    return sessions * blocks


def run_child(command: list[str]) -> tuple[float, float, str]:
    """Seconds, peak resident MB and output of ``command`` run alone (``ru_maxrss`` of the
    waited child: a fresh process for each command, so the peak is its own)."""
    wrapper = [sys.executable, "-c", _MEASURE, *command]
    started = time.perf_counter()
    done = subprocess.run(wrapper, stdout=subprocess.PIPE, text=True, check=True)
    seconds = time.perf_counter() - started
    peak_kb, _, output = done.stdout.partition("\n")
    return seconds, int(peak_kb) / 1024, output


# Runs a command and prints its child's peak RSS (KB) on the first line, then its output.
_MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True)  # (stderr: the bar)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(done.stdout)
sys.exit(done.returncode)
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=1024)
    args = parser.parse_args(argv)
    if shutil.which("pflogsumm") is None:
        print("needs pflogsumm (apt install pflogsumm)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="smtplab-dataset-") as scratch:
        log, dataset = Path(scratch) / "mail.log", Path(scratch) / "dataset"
        sessions = make_log(log, args.megabytes)
        size = log.stat().st_size / 1e6
        print("a Postfix log into a Parquet dataset: smtplab against pflogsumm")
        print(f"  smtplab   {Path(smtplab.__file__).parent}")
        print(f"  log       {size:,.0f} MB, {sessions:,} sessions\n")
        year = ["--year", "2026"]
        ingest = [sys.executable, "-m", "smtplab", "ingest", str(log), *year,
                  "--dataset", str(dataset)]  # fmt: skip
        seconds, peak, said = run_child(ingest)
        files = list(dataset.rglob("*.parquet"))
        on_disk = sum(path.stat().st_size for path in files) / 1e6
        print(f"smtplab ingest --dataset  {seconds:7.1f} s  {size / seconds:6.1f} MB/s  "
              f"peak {peak:7.0f} MB")  # fmt: skip
        print(f"{'':26}{said.strip()}; {on_disk:,.0f} MB on disk")
        their_seconds, their_peak, _ = run_child(["pflogsumm", str(log)])
        rate = size / their_seconds
        print(f"pflogsumm                 {their_seconds:7.1f} s  {rate:6.1f} MB/s  "
              f"peak {their_peak:7.0f} MB")  # fmt: skip
        print(f"\nsmtplab is {their_seconds / seconds:.2f}x pflogsumm's speed; its peak memory "
              f"{peak / their_peak:.2f}x pflogsumm's, {peak / (size * 1e6 / 2**20):.2f}x the "
              f"log's size (target: under 1 GB)")  # fmt: skip
        written = int(re.search(r"([\d,]+) sessions", said)[1].replace(",", ""))  # type: ignore[index]
        if written != sessions:
            print(f"FAILED: {written} sessions in the dataset, {sessions} in the log")
            return 1
        days = sorted({path.parent.name.removeprefix("day=") for path in files})
        day = days[len(days) // 2]
        started = time.perf_counter()
        one_day = smtplab.read_dataset(dataset, filters=[("day", "==", day)])
        loaded = time.perf_counter() - started
        peak_here = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"read_dataset, one day ({day}, of {len(days)}): {len(one_day):,} rows, "
              f"{one_day['session'].nunique():,} sessions in {loaded:.2f} s "
              f"(this process's peak {peak_here:.0f} MB)")  # fmt: skip
    print("all checks passed: every session of the log is in the dataset")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
