"""A newcomer's path: the package built as a wheel, installed alone into a clean venv, and every
command of the ``smtplab`` CLI that the README and ``docs/`` document run once from it, outside
the clone.

Installing needs the package index (as ``pip install`` does); without it the test is skipped,
saying so.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from smtplab.cli.commands import build_parser

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
#: Every command the README and docs/ document, each run below.
COMMANDS = {"demo", "scenarios", "scenario", "serve", "send", "check", "ingest", "read", "course"}


@pytest.fixture(scope="module")
def smtplab_command(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``smtplab`` command of a clean venv that has the wheel and its dependencies only."""
    where = tmp_path_factory.mktemp("newcomer")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(where), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = where.glob("smtplab-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(where / "venv")], check=True, timeout=300)
    installed = subprocess.run(
        [str(where / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    if installed.returncode != 0:
        pytest.skip(f"pip could not install the wheel's dependencies: {installed.stderr[-300:]}")
    return where / "venv" / "bin" / "smtplab"


def run(command: Path, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(command), *arguments], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_every_command_is_tried_here() -> None:
    parser = build_parser()
    (commands,) = (action for action in parser._actions if action.dest == "command")
    assert set(commands.choices or ()) == COMMANDS


def test_the_commands_that_need_no_server(smtplab_command: Path, tmp_path: Path) -> None:
    version = run(smtplab_command, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("smtplab ")
    demo = run(smtplab_command, "demo", cwd=tmp_path)
    assert demo.returncode == 0 and "Delivered to bob@example.org: 250 2.0.0" in demo.stdout
    listed = run(smtplab_command, "scenarios", cwd=tmp_path)
    assert listed.returncode == 0 and "greylisting" in listed.stdout
    scenario = run(smtplab_command, "scenario", "greylisting", cwd=tmp_path)
    assert scenario.returncode == 0 and "451 4.7.1" in scenario.stdout
    log = str(FIXTURES / "postfix.log")
    table = run(smtplab_command, "ingest", log, str(FIXTURES / "smtp.pcapng"), "-o", "t.parquet",
                cwd=tmp_path)  # fmt: skip
    assert table.returncode == 0 and "16 sessions" in table.stdout, table.stderr
    dataset = run(smtplab_command, "ingest", log, "--dataset", "ds", cwd=tmp_path)
    assert dataset.returncode == 0 and "7 sessions" in dataset.stdout, dataset.stderr
    read = run(smtplab_command, "read", log, "-o", "t.csv", cwd=tmp_path)
    assert read.returncode == 0 and (tmp_path / "t.csv").exists()
    course = run(smtplab_command, "course", "build", "site", cwd=tmp_path)
    assert course.returncode == 1 and "built from a clone" in course.stderr
    for done in (version, demo, listed, scenario, table, dataset, read, course):
        assert "Traceback" not in done.stderr


def test_serve_send_and_check(smtplab_command: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(smtplab_command), "serve", "--port", str(port), "--tls", "--transcript", "t.csv"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert "listening on 127.0.0.1:" in server.stdout.readline()
        address = f"127.0.0.1:{port}"
        sending = ["--from", "a@example.net", "--to", "bob@example.org", "--starttls"]
        sent = run(smtplab_command, "send", "--server", address, *sending, cwd=tmp_path)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        checked = run(smtplab_command, "check", address, "--report", "r.html", cwd=tmp_path)
        assert checked.returncode in (0, 1), checked.stderr  # 1: a probe failed, reported
        assert (tmp_path / "r.html").exists()
    finally:
        server.send_signal(signal.SIGTERM)
        said, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert "sessions" in said
    assert (tmp_path / "t.csv").stat().st_size > 0
    for done in (sent, checked):
        assert "Traceback" not in done.stderr
