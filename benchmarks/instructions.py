"""Instructions per in-process transaction, counted by valgrind: a quieter tuning gauge.

Wall-clock rates on a shared or virtual machine swing by 30% from one run to the next, more
than most single optimisations change them. Counting the CPU instructions a transaction
executes (valgrind's callgrind tool, with a fixed ``PYTHONHASHSEED``) varies far less, so two
versions of the code can be compared where the clock cannot tell them apart. It is not
noise-free: start-up is not the same number of instructions in every process (up to some 15
million apart), which a small N spreads over few transactions; use N = 300 or more and count
both versions in the same hour (see benchmarks/README.md). It is a gauge for tuning, not a
speed: the rates that count are ``inprocess.py``'s.

The transaction is ``inprocess.py``'s (connect, EHLO, MAIL, RCPT, DATA, 1 KB message, QUIT).
Three child runs are counted: ``0`` and ``N`` transactions without a DataFrame, and ``N`` with
``lab.transcript()``; the differences give instructions per transaction for the session loop
and for building the DataFrame, with start-up (importing pandas) mostly cancelled out.

::

    .venv/bin/python benchmarks/instructions.py            # N = 300, about 3 minutes
    .venv/bin/python benchmarks/instructions.py -n 100     # quicker, a little less exact

Needs ``valgrind`` (Debian: ``apt install valgrind``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = """
import sys
sys.path.insert(0, {here!r})
import inprocess
import smtplab

n, build_frame = int(sys.argv[1]), sys.argv[2] == "frame"
message = inprocess.build_message()
lab = smtplab.Lab()
for i in range(n + 1):  # one untimed transaction first: caches and lazy imports warmed
    session = lab.connect(inprocess.CLIENT_NAME)
    session.ehlo()
    session.mail(inprocess.SENDER)
    session.rcpt(inprocess.RECIPIENT)
    session.data()
    session.message(message)
    session.quit()
    if i == 0:
        lab.transcript()
if build_frame:
    lab.transcript()
"""


def count(n: int, build_frame: bool) -> int:
    """Instructions callgrind counted for one child run."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-c",
        CHILD.format(here=str(HERE)),
        str(n),
        "frame" if build_frame else "loop",
    ]
    # A fixed hash seed: string hashing is randomised per process, and set and dict layouts
    # move the count by about 5% from one run to the next without it.
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or found is None:
        raise SystemExit(f"valgrind run failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--transactions", type=int, default=300)
    args = parser.parse_args(argv)
    if args.transactions < 1:
        parser.error("--transactions must be at least 1")
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt install valgrind)", file=sys.stderr)
        return 2
    n = args.transactions
    print(f"counting instructions with callgrind: 0 and {n} transactions (a few minutes)")
    start, loop, frame = count(0, False), count(n, False), count(n, True)
    print(f"session loop     {(loop - start) / n:>12,.0f} instructions per transaction")
    print(f"DataFrame build  {(frame - loop) / n:>12,.0f} instructions per transaction")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
