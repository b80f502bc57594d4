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


def test_ingest_benchmark_writes_a_log_with_a_second_per_line(tmp_path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("ingest_benchmark", BENCHMARKS / "ingest.py")
    assert spec is not None and spec.loader is not None
    ingest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ingest)
    clustered, spread = tmp_path / "clustered.log", tmp_path / "spread.log"
    assert ingest.big_log(clustered, 3) == ingest.big_log(spread, 3, "spread") == 21
    stamps = [line[:15] for line in spread.read_text().splitlines()]
    assert len(set(stamps)) == len(stamps)  # every line in a second of its own
    assert len({line[:15] for line in clustered.read_text().splitlines()}) == 3
    strip = [line[15:] for line in clustered.read_text().splitlines()]
    assert strip == [line[15:] for line in spread.read_text().splitlines()]


def test_abuse_benchmark_runs_every_attack_and_reports_each(tmp_path) -> None:
    import json

    out = tmp_path / "abuse.json"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "abuse.py"), "--quick", "--settle", "0.2",
         "--min-seconds", "0.3", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smtplab / aiosmtpd under the same attack" in result.stdout
    assert "attack runs within the targets" in result.stdout
    rows = json.loads(out.read_text())
    runs = {(row["attack"], row["server"]) for row in rows}
    both = {"bdat-10mb", "data-long-line", "bare-cr", "pipeline-flood", "connect-flood",
            "many-commands", "slowloris"}  # fmt: skip
    ours = both | {"cpu-only", "bare-lf-keep", "maildir-20k", "auth-pipelined"}
    assert {attack for attack, server in runs if server == "smtplab"} == ours
    assert {attack for attack, server in runs if server == "aiosmtpd"} == both
    for row in rows:
        assert 0 < row["rss_before_mb"] <= row["rss_peak_mb"], row
        assert row["probe"]["transactions"] + row["probe"]["failed"] > 0, row
        assert row["verdict"] == "pass" or row["verdict"].startswith("FAIL"), row
        assert row["figures"], row  # the attack's own figures
    auth = next(row for row in rows if row["attack"] == "auth-pipelined")
    assert auth["figures"]["credentials_in_transcript"] in (True, False)


def test_dataset_benchmark_runs_and_finds_every_session() -> None:
    import shutil

    import pytest

    if shutil.which("pflogsumm") is None:
        pytest.skip("needs pflogsumm (.ci/run installs it)")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "dataset.py"), "--megabytes", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout and "x pflogsumm's speed" in result.stdout
