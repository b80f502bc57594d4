"""Reading logs and transcripts as they come: shared syslog files, detection past other
programs' lines, smtpd pids reused without a disconnect, swaks output without ``=== Trying``,
and endpoints written one way by every reader."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import pandas as pd
import pytest

import smtplab
from smtplab.ingest import IngestError, IngestWarning
from smtplab.log.schema import endpoint

FIXTURES = Path(__file__).parents[1] / "fixtures"

#: Lines of other programs, as a shared /var/log/mail.log or syslog holds them.
OTHERS = [
    "Nov 29 01:57:54 vm dovecot: imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.7",
    "Nov 29 01:57:54 vm dovecot[812]: master: Dovecot v2.3.19 (9f4e0a3b) starting up",
    "Nov 29 01:57:54 vm CRON[4242]: (root) CMD (command -v debian-sa1 > /dev/null)",
    'Nov 29 01:57:54 vm kernel: [ 1234.567890] audit: type=1400 apparmor="DENIED"',
    "Nov 29 01:57:54 vm systemd[1]: Started Session 7 of user alice.",
    "Nov 29 01:57:54 vm sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; COMMAND=/bin/true",
    "Nov 29 01:57:54 vm postfix/pickup[23482]: 7E1A416A0E3: uid=0 from=<root>",
    "Nov 29 01:57:54 vm postfix/postfix-script[23480]: starting the Postfix mail system",
    "Nov 29 01:57:54 vm last message repeated 3 times",
    '2026-11-29T01:57:54.123456+00:00 vm rsyslogd: [origin software="rsyslogd"] start',
]


def fixture_lines() -> list[str]:
    return (FIXTURES / "postfix.log").read_text().splitlines(keepends=True)


def read_quietly(path: Path, **options) -> pd.DataFrame:
    """smtplab.read, failing on any IngestWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", IngestWarning)
        return smtplab.read(path, **options)


def shared(lines: list[str], every: int = 3) -> str:
    """``lines`` with other programs' lines before and between them."""
    out = [line + "\n" for line in OTHERS]
    for number, line in enumerate(lines):
        out.append(line)
        if number % every == 0:
            out.append(OTHERS[number % len(OTHERS)] + "\n")
    return "".join(out)


# -- 1. other programs' lines in a shared log ---------------------------------------------------


def test_other_programs_lines_in_a_shared_log_are_passed_over_silently(tmp_path) -> None:
    alone, mixed = tmp_path / "alone" / "mail.log", tmp_path / "mixed" / "mail.log"
    alone.parent.mkdir()
    mixed.parent.mkdir()
    alone.write_text("".join(fixture_lines()))
    mixed.write_text(shared(fixture_lines()))
    frame = read_quietly(mixed, year=2026)
    assert frame.attrs["skipped"] == {}
    pd.testing.assert_frame_equal(frame, read_quietly(alone, year=2026))


def test_only_lines_that_are_no_syslog_lines_count_as_skipped(tmp_path) -> None:
    lines = fixture_lines()
    lines.insert(5, "\x07garbage that is no log line\n")
    lines.insert(9, "Nov 29 01:57:5x vm dovecot: a clock that is no clock\n")
    log = tmp_path / "mail.log"
    log.write_text(shared(lines, every=4))
    with pytest.warns(IngestWarning, match="skipped 2 unreadable"):
        frame = smtplab.read(log, year=2026)
    assert frame.attrs["skipped"][str(log)]["counts"] == {"not a syslog line": 2}
    assert frame["session"].nunique() == 7


# -- 2. detection past the first lines ----------------------------------------------------------


def filler(octets: int) -> str:
    """Other programs' lines, at least ``octets`` of them."""
    lines = []
    while sum(map(len, lines)) < octets:
        lines.append(f"Nov 29 01:50:00 vm dovecot[812]: imap(alice)<{len(lines)}>: Logged out\n")
    return "".join(lines)


def test_a_shared_log_whose_postfix_lines_start_late_is_recognised(tmp_path) -> None:
    log = tmp_path / "mail.log"
    log.write_text(filler(40_000) + "".join(fixture_lines()))
    frame = read_quietly(log, year=2026)
    assert frame["session"].nunique() == 7 and set(frame["source"]) == {"postfix"}
    with gzip.open(tmp_path / "mail.log.1.gz", "wt") as packed:
        packed.write(log.read_text())
    assert read_quietly(tmp_path / "mail.log.1.gz", year=2026)["session"].nunique() == 7


def test_a_syslog_file_without_postfix_lines_gets_a_clear_error(tmp_path) -> None:
    syslog = tmp_path / "syslog"
    syslog.write_text("".join(line + "\n" for line in OTHERS if "postfix" not in line))
    with pytest.raises(IngestError, match=r"syslog: a syslog file with no Postfix line"):
        smtplab.read(syslog)
    late = tmp_path / "late.log"  # Postfix's first line past the detection window
    late.write_text(filler(100_000) + "".join(fixture_lines()))
    with pytest.raises(IngestError, match=r"late\.log: .*first 64 KB.*format='postfix'"):
        smtplab.read(late)
    assert read_quietly(late, format="postfix", year=2026)["session"].nunique() == 7


# -- 3. an smtpd pid reused without a disconnect ------------------------------------------------


def test_a_reused_smtpd_pid_starts_a_new_session_and_closes_the_old_one(tmp_path) -> None:
    log = tmp_path / "maillog"
    log.write_text(
        "Nov 29 01:57:55 vm postfix/smtpd[100]: connect from one.example[192.0.2.1]\n"
        "Nov 29 01:57:55 vm postfix/smtpd[100]: NOQUEUE: reject: RCPT from one.example"
        "[192.0.2.1]: 554 5.7.1 <x@example.net>: Relay access denied; from=<a@b.example> "
        "to=<x@example.net> proto=ESMTP helo=<one>\n"
        # smtpd 100 died here; its pid came back, serving another client:
        "Nov 29 02:10:00 vm postfix/smtpd[100]: connect from two.example[192.0.2.2]\n"
        "Nov 29 02:10:01 vm postfix/smtpd[100]: disconnect from two.example[192.0.2.2] "
        "ehlo=1 quit=1 commands=2\n"
    )
    frame = read_quietly(log, year=2026)
    first, second = (frame[frame["session"] == s] for s in ("maillog-1", "maillog-2"))
    assert first["client"].iloc[0] == "192.0.2.1" and second["client"].iloc[0] == "192.0.2.2"
    assert first["kind"].tolist() == ["connect", "command", "reply", "close"]
    closed = first.iloc[-1]
    assert "no disconnect" in closed["text"] and pd.isna(closed["time"])
    assert second["kind"].tolist() == ["connect", "command", "command", "close"]
    assert second["verb"].tolist()[1:3] == ["EHLO", "QUIT"]


# -- 4. swaks output without "=== Trying host:port..." ------------------------------------------

SWAKS_PIPE = """\
=== Trying pipe to /usr/sbin/sendmail -bs...
=== Connected to /usr/sbin/sendmail -bs.
<-  220 vm ESMTP Postfix (Debian/GNU)
 -> EHLO vm
<-  250-vm
<-  250-PIPELINING
<-  250 CHUNKING
 -> MAIL FROM:<alice@example.net>
<-  250 2.1.0 Ok
 -> RCPT TO:<root@localhost>
<-  250 2.1.5 Ok
 -> DATA
<-  354 End data with <CR><LF>.<CR><LF>
 -> Subject: test
 ->\x20
 -> This is a test mailing
 -> .
<-  250 2.0.0 Ok: queued as 2121A16A0E3
 -> QUIT
<-  221 2.0.0 Bye
=== Connection closed with child process.
"""


@pytest.mark.parametrize(
    "text",
    [
        SWAKS_PIPE,  # swaks --pipe
        SWAKS_PIPE.split("\n", 2)[2],  # cut from a longer transcript: starts at "<-  220"
    ],
    ids=["pipe", "from-the-greeting"],
)
def test_swaks_output_without_a_trying_line_is_one_session(text: str, tmp_path) -> None:
    transcript = tmp_path / "out.txt"
    transcript.write_text(text)
    frame = read_quietly(transcript)
    assert set(frame["source"]) == {"swaks"} and frame["session"].nunique() == 1
    codes = frame[frame["kind"] == "reply"]["code"].tolist()
    assert codes == [220, 250, 250, 250, 354, 250, 221]
    assert frame["server"].isna().all()  # a pipe (or nothing said) is no network endpoint
    assert frame["kind"].iloc[-1] == "close"


# -- 5. one way to write an endpoint ------------------------------------------------------------


def test_every_reader_writes_endpoints_as_the_schema_does(tmp_path) -> None:
    assert endpoint(("192.0.2.1", 25)) == "192.0.2.1:25"
    assert endpoint(("2001:db8::1", 25, 0, 0)) == "[2001:db8::1]:25"
    assert endpoint(("2001:db8::1", None)) == "[2001:db8::1]"
    log = tmp_path / "maillog"
    log.write_text(
        "Nov 29 01:57:55 vm postfix/smtpd[1]: connect from unknown[::1]\n"
        "Nov 29 01:57:56 vm postfix/smtpd[2]: connect from a.example[2001:db8::1]:52114\n"
    )
    clients = read_quietly(log, year=2026).groupby("session", observed=True)["client"].first()
    assert clients.tolist() == ["[::1]", "[2001:db8::1]:52114"]
    transcript = tmp_path / "swaks.txt"
    transcript.write_text(
        "=== Trying ::1:25...\n=== Connected to ::1.\n<-  220 vm ESMTP Postfix\n"
        " -> QUIT\n<-  221 2.0.0 Bye\n=== Connection closed with remote host.\n"
    )
    assert read_quietly(transcript)["server"].iloc[0] == endpoint(("::1", 25)) == "[::1]:25"
