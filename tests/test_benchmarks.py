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


def test_ingest_benchmark_runs_and_sees_every_session() -> None:
    import os
    import shutil

    import pytest

    tools = ("tshark", "dumpcap", "pflogsumm", "smtp-source", "smtp-sink")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(f"needs root and {', '.join(tools)} (.ci/run installs them); missing: "
                    f"{', '.join(missing) or 'root'}")  # fmt: skip
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "ingest.py"), "--messages", "200", "--log-copies",
         "20", "--repeat", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "x tshark's speed" in result.stdout and "x pflogsumm's speed" in result.stdout


def test_analysis_benchmark_runs_and_checks_its_results() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "analysis.py"), "--rows", "20000", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout
    assert "sessions()" in result.stdout and "MB in memory" in result.stdout
