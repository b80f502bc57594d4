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


def test_serve_runs_until_sigterm_and_writes_the_transcript(tmp_path) -> None:
    import signal
    import smtplib
    import socket

    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transcript = tmp_path / "served.csv"
    server = subprocess.Popen(
        [sys.executable, "-m", "smtplab", "serve", "--port", str(port), "--scenario",
         "unknown-recipient", "--transcript", str(transcript)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert "listening on 127.0.0.1:" in server.stdout.readline()
        with smtplib.SMTP("127.0.0.1", port) as client:
            refused = client.sendmail(
                "a@example.net",
                ["bob@example.org", "nobody@example.org"],
                b"Subject: x\r\n\r\nhi\r\n",
            )
        assert refused["nobody@example.org"][0] == 550
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=20)
    assert server.returncode == 0, err
    assert "1 sessions, 1 messages stored" in out
    import pandas as pd

    rows = pd.read_csv(transcript)
    assert set(rows["source"]) == {"tcp"}
    assert 550 in rows["code"].tolist()


def test_serve_refuses_a_bad_transcript_name_before_listening(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "smtplab", "serve", "--transcript", str(tmp_path / "t.xlsx")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert ".csv or .parquet" in done.stderr


def test_serve_explains_a_maildir_that_is_a_file(tmp_path) -> None:
    not_a_dir = tmp_path / "mail"
    not_a_dir.write_text("I am a file")
    done = subprocess.run(
        [sys.executable, "-m", "smtplab", "serve", "--maildir", str(not_a_dir)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Not a directory" in done.stderr and "Traceback" not in done.stderr


def smtplab(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smtplab", *arguments], capture_output=True, text=True, timeout=120
    )


def test_version_is_printed() -> None:
    done = smtplab("--version")
    assert done.returncode == 0 and done.stdout.startswith("smtplab 0.")


def test_read_is_ingest_as_the_python_name_has_it(tmp_path) -> None:
    from pathlib import Path

    log = Path(__file__).parents[1] / "fixtures" / "postfix.log"
    done = smtplab("read", str(log), "-o", str(tmp_path / "log.csv"))
    assert done.returncode == 0, done.stderr
    assert "7 sessions (7 postfix)" in done.stdout and (tmp_path / "log.csv").exists()


def test_an_unknown_format_names_the_flag_to_use(tmp_path) -> None:
    odd = tmp_path / "notes.txt"
    odd.write_text("nothing SMTP here\n")
    done = smtplab("ingest", str(odd), "-o", str(tmp_path / "out.csv"))
    assert done.returncode == 2
    assert "--format" in done.stderr and "Traceback" not in done.stderr


def test_a_scenario_explains_itself_in_plain_text_in_a_terminal() -> None:
    done = smtplab("scenario", "greylisting")
    assert done.returncode == 0
    explanation = done.stdout.split("Read:")[0]
    assert "transient" in explanation and "**" not in explanation and "`" not in explanation
