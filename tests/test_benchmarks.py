"""The benchmarks stay runnable: each runs once on a tiny workload (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_inprocess_benchmark_runs_and_checks_every_message() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "inprocess.py"), "--transactions", "20", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout
    assert "ratio smtplab / aiosmtpd" in result.stdout
