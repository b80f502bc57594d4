"""Notebook 13's facts, checked against the programs themselves: the capture it falls back on,
and the lines ``openssl s_client`` keeps to itself without ``-quiet``."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

import smtplab
from smtplab.teaching.checks import check

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LINES = ["EHLO x.example", "MAIL FROM:<alice@example.net>", "RCPT TO:<bob@example.org>"]
LINES += ["DATA", "QUIT"]


def test_the_committed_capture_holds_the_three_sessions_the_notebook_reads() -> None:
    capture = smtplab.read(FIXTURES / "terminal.pcapng")
    typed, bare_lf, starttls = capture["session"].drop_duplicates().tolist()
    rows = {name: capture[capture["session"] == name] for name in (typed, bare_lf, starttls)}
    assert rows[typed]["code"].dropna().tolist() == [220, 250, 250, 250, 354, 250, 221]
    assert rows[bare_lf]["code"].dropna().tolist() == [220, 500, 500]
    assert (rows[bare_lf]["kind"] == "note").sum() == 2  # each bare LF, said
    tls = rows[starttls]
    assert tls["verb"].dropna().tolist()[-2:] == ["STARTTLS", "STARTTLS"]
    assert (tls["kind"] == "tls").sum() == 1 and not (tls["verb"] == "RCPT").any()
    assert check("13-2", None).ok  # what the capture cannot tell


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl (Debian: openssl)")
def test_without_quiet_s_client_keeps_some_lines_to_itself() -> None:
    with smtplab.ServerThread(smtplab.TcpServer(port=0, tls=True)) as server:
        for line in LINES:  # each in a session of its own, as a student would try them
            client = subprocess.Popen(
                ["openssl", "s_client", "-starttls", "smtp", "-crlf", "-connect", server.address],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                text=True,
            )  # fmt: skip
            client.stdin.write(line + "\n")
            client.stdin.flush()
            time.sleep(0.5)  # the line arrives and is answered before the hang-up
            client.stdin.close()
            assert client.wait(timeout=30) is not None
        rows = server.transcript()
    after_tls = rows[(rows["kind"] == "command") & rows["tls"].fillna(False).astype(bool)]
    said = after_tls["verb"].astype(str) + " " + after_tls["argument"].fillna("")
    arrived = set(said.str.strip())
    assert arrived  # the other lines did reach it
    assert check("13-3", set(LINES) - arrived).ok
