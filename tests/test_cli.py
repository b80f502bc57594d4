"""The command line, run as a user would."""

from __future__ import annotations

import subprocess
import sys


def test_demo_prints_the_transaction() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "smtplab", "demo"], capture_output=True, text=True, check=True
    ).stdout
    for expected in (
        "220 mx.example.org",
        "RCPT TO:<nobody@example.org>",
        "550 5.1.1",
        "354 End data",
        "250 2.0.0 OK: queued as",
        "221 2.0.0",
    ):
        assert expected in out
    assert "Refused nobody@example.org" in out


def test_demo_with_own_recipients() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "smtplab", "demo", "--to", "carol@example.org"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Delivered to carol@example.org" in out
