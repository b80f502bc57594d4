"""Conformance probes against real servers: smtplab's own, aiosmtpd, Postfix, and a broken toy.

Each server's known behaviour is the test: smtplab's server passes every probe that applies;
aiosmtpd advertises neither PIPELINING nor CHUNKING; Postfix's answers to the smuggling
sequences follow its ``smtpd_forbid_bare_newline`` setting; a toy server that answers every
line fails the probes that catch that.
"""

from __future__ import annotations

import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pandas as pd
import pytest
from aiosmtpd.controller import Controller

from smtplab import ServerThread, TcpServer
from smtplab.conformance import check, compare, probe_names, styled, write_report
from smtplab.private_postfix import PrivatePostfix

SMUGGLING = [name for name in probe_names() if name.startswith("smuggling-")]
LF_ENDS = ["smuggling-lf-dot-lf", "smuggling-lf-dot-crlf", "smuggling-crlf-dot-lf"]


@pytest.fixture(scope="module")
def smtplab_server() -> Iterator[str]:
    with ServerThread(TcpServer(host="127.0.0.1", port=0, tls=True)) as server:
        yield server.address


@pytest.fixture(scope="module")
def smtplab_report(smtplab_server):
    return check(smtplab_server)


class _Sink:
    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        return "250 OK"


@pytest.fixture(scope="module")
def aiosmtpd_server() -> Iterator[str]:
    with socket.socket() as probe:  # aiosmtpd's Controller wants a real port number
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(_Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        controller.stop()


def test_smtplab_passes_every_probe_that_applies(smtplab_report) -> None:
    table = smtplab_report.table.set_index("probe")
    assert len(table) == len(probe_names()) >= 30
    not_passed = table[table["status"] != "pass"]
    assert not_passed.empty, not_passed[["status", "detail"]].to_string()
    # The evidence is there, probe by probe.
    evidence = smtplab_report.evidence("rcpt-before-mail")
    assert evidence.loc[evidence["kind"] == "reply", "code"].tolist()[-2:] == [503, 221]
    assert set(smtplab_report.transcript["source"]) == {"probe"}


def test_aiosmtpd_known_behaviour(aiosmtpd_server) -> None:
    report = check(aiosmtpd_server).table.set_index("probe")["status"]
    # aiosmtpd implements neither extension, nor STARTTLS without a TLS context.
    assert report["pipelining"] == "n/a" and report["chunking"] == "n/a"
    assert report["starttls-injection"] == "n/a"
    # Since 1.4.5 (CVE-2024-27305) it ends data only at <CRLF>.<CRLF>.
    assert (report[SMUGGLING] == "pass").all()
    assert report["transaction"] == "pass" and report["hundred-recipients"] == "pass"
    assert report["bare-lf-command"] == "warn"  # it reads NOOP<LF> as a command


def test_postfix_smuggling_answers_follow_its_setting(postfix: PrivatePostfix) -> None:
    """The private instance's own main.cf is changed (postconf -c), then put back."""
    names = ["smtpd_forbid_bare_newline", "smtpd_forbid_bare_newline_exclusions"]
    before = {name: postfix.setting(name) for name in names}
    try:
        # Loopback is in $mynetworks, which the setting exempts by default: no exemptions.
        postfix.configure(smtpd_forbid_bare_newline="no", smtpd_forbid_bare_newline_exclusions="")
        lenient = check(postfix.address, SMUGGLING).table.set_index("probe")["status"]
        postfix.configure(smtpd_forbid_bare_newline="yes")
        strict = check(postfix.address, SMUGGLING).table.set_index("probe")["status"]
    finally:
        postfix.configure(**before)
    # With bare newlines allowed, Postfix takes <LF>.<LF> (and kin) for the end of data.
    assert (lenient[LF_ENDS] == "fail").all()
    assert (lenient.drop(LF_ENDS) == "pass").all()  # a bare CR never ends a line for it
    assert (strict == "pass").all()
    assert {name: postfix.setting(name) for name in names} == before


def test_compare_shows_where_servers_differ(
    smtplab_server, aiosmtpd_server, postfix: PrivatePostfix
) -> None:
    probes = ["transaction", "pipelining", "chunking", "mail-before-ehlo", "syntax-errors"]
    table = compare(
        {"smtplab": smtplab_server, "aiosmtpd": aiosmtpd_server, "postfix": postfix.address},
        probes,
    )
    assert list(table.columns) == ["rfc", "smtplab", "aiosmtpd", "postfix", "differs"]
    assert table.loc["pipelining", "aiosmtpd"] == "n/a"
    assert table.loc["pipelining", "postfix"].startswith("pass: 250")
    # Postfix lets it be unless smtpd_helo_required = yes: the private instance's default.
    assert table.loc["mail-before-ehlo", "postfix"].startswith("warn")
    assert not table.loc["transaction", "differs"] and table.loc["pipelining", "differs"]
    html = styled(table).to_html()
    assert "font-weight: bold" in html


def test_a_postfix_setting_changes_the_grade(postfix: PrivatePostfix) -> None:
    """smtpd_helo_required = yes on the private instance: MAIL before EHLO is refused, and
    the probe that warned passes; the setting is the test's own, put back afterwards."""
    assert postfix.setting("smtpd_helo_required") == "no"
    try:
        postfix.configure(smtpd_helo_required="yes")
        strict = check(postfix.address, ["mail-before-ehlo"]).table.set_index("probe")
    finally:
        postfix.configure(smtpd_helo_required="no")
    assert strict.loc["mail-before-ehlo", "status"] == "pass", strict.loc["mail-before-ehlo"]
    assert "503" in strict.loc["mail-before-ehlo", "replies"]


class _Toy(socketserver.StreamRequestHandler):
    """A deliberately broken SMTP server: it answers every line with 250, message lines too."""

    def handle(self) -> None:
        self.wfile.write(b"220 toy ESMTP\r\n")
        for line in self.rfile:
            if line.upper().startswith(b"QUIT"):
                self.wfile.write(b"221 bye\r\n")
                return
            self.wfile.write(
                b"354 go ahead\r\n" if line.upper().startswith(b"DATA") else b"250 ok\r\n"
            )


@pytest.fixture(scope="module")
def toy_server() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Toy)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_broken_server_fails_and_is_told_why(toy_server) -> None:
    report = check(toy_server, ["rcpt-before-mail", "silent-during-data", "unknown-command"])
    table = report.table.set_index("probe")
    assert (table["status"] == "fail").all()
    assert "must be refused (503); got 250" in table.loc["rcpt-before-mail", "detail"]
    assert (
        "replies where one, after the final dot, is due"
        in table.loc["silent-during-data", "detail"]
    )


def test_check_command_writes_reports(smtplab_server, toy_server, tmp_path) -> None:
    command = [sys.executable, "-m", "smtplab", "check"]
    page = tmp_path / "report.html"
    ok = subprocess.run(
        [*command, smtplab_server, "--probe", "greeting", "--probe", "rset", "--report", str(page)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "2 pass" in ok.stdout
    assert '<h3 id="rset">' in page.read_text()

    table = tmp_path / "report.csv"
    bad = subprocess.run(
        [*command, toy_server, "--probe", "unknown-command", "--report", str(table)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert "FAIL  unknown-command" in bad.stdout
    assert pd.read_csv(table)["status"].tolist() == ["fail"]
    assert pd.read_csv(tmp_path / "report.transcript.csv")["source"].eq("probe").all()

    unreachable = subprocess.run([*command, "127.0.0.1:1"], capture_output=True, text=True)
    assert unreachable.returncode == 2
    assert "cannot connect to 127.0.0.1:1" in unreachable.stderr
    assert "%|" not in unreachable.stderr  # no progress bar before the connection failed
    assert unreachable.stderr.count("\n") == 1  # one line says it all


def test_report_formats(smtplab_server, tmp_path) -> None:
    report = check(smtplab_server, ["greeting", "noop"])
    assert repr(report).endswith(": 2 pass>")
    assert "<table" in report._repr_html_()
    with pytest.raises(ValueError, match=r"write a table as \.csv or \.parquet"):
        write_report(report, tmp_path / "report.txt")
    with pytest.raises(ValueError, match="no probe named nope"):
        check(smtplab_server, ["nope"])


class _Hangup(socketserver.BaseRequestHandler):
    """A server that accepts a connection and closes it without a word."""

    def handle(self) -> None:
        self.request.close()


def test_a_server_that_will_not_serve_is_not_probed() -> None:
    """No greeting, or a 554 (RFC 5321 3.1): the check stops at once and says why."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Hangup)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(ConnectionError, match=r"did not greet with 220 \(no reply\)"):
            check(f"127.0.0.1:{server.server_address[1]}", ["greeting", "noop"])
    finally:
        server.shutdown()
        server.server_close()


class _SlowSmuggler(socketserver.StreamRequestHandler):
    """Ends data at <LF>.<LF> and answers everything late: timing must not hide it."""

    def handle(self) -> None:
        self.wfile.write(b"220 slow ESMTP\r\n")
        in_data = False
        for line in self.rfile:
            time.sleep(0.3)
            if in_data:
                if line.strip() == b".":
                    in_data = False
                    self.wfile.write(b"250 queued\r\n")
                continue
            verb = line[:4].upper()
            if verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            if verb == b"DATA":
                in_data = True
                self.wfile.write(b"354 go ahead\r\n")
            elif verb.startswith(b"XSMT") or not line.strip():
                self.wfile.write(b"500 what?\r\n")
            else:
                self.wfile.write(b"250 ok\r\n")


def test_a_slow_vulnerable_server_is_still_caught() -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SlowSmuggler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        report = check(f"127.0.0.1:{server.server_address[1]}", LF_ENDS, quiet=0.2)
    finally:
        server.shutdown()
        server.server_close()
    assert (report.table["status"] == "fail").all(), report.table[["probe", "detail"]]
