"""A hostile Sendmail log: lines built to make a careless parser backtrack for ever, binary
junk, lines past the line bound. The reader must finish, keep every row bounded, skip and count
what is no syslog line in one warning, and never raise anything but IngestError.

A client chooses much of what Sendmail logs about it (its addresses, its host name as the
``relay=`` field names it when a lookup says so), so the lines below put the parser's
delimiters (``relay=``, ``<``, ``[``, ``, ``) thousands of times on one line, unclosed. The
reader's patterns bound each field they scan (smtplab/ingest/sendmail.py); no clock is read."""

from __future__ import annotations

import warnings

import pytest

import smtplab
from smtplab.ingest.inputs import MAX_LINE
from smtplab.log.limits import MAX_TEXT
from tests.hardening.hostile_logs import assert_rows_bounded, hostile_log, read_warned

HEAD = "Dec  5 22:33:42 mx sendmail[5478]: 6B5MXg1k005478: "
NEAR_BOUND = MAX_LINE - 200  # long lines the reader still reads whole


def hostile_lines() -> list[str]:
    fill = NEAR_BOUND
    return [
        HEAD + "from=<" + "<" * fill + ", relay=[1.2.3.4], proto=ESMTP\n",  # never closed
        HEAD + "ruleset=check_rcpt, arg1=<a@b>, relay=" + "relay=x [" * (fill // 9) + "\n",
        HEAD + "ruleset=check_rcpt, reject=550 5.7.1 " + "<a>... " * (fill // 7) + "\n",
        HEAD + "<" + "a" * fill + ">... User unknown\n",
        HEAD + "from=" + "x=y, " * (fill // 5) + "proto=ESMTP, relay=[1.2.3.4]\n",
        HEAD + "lost input channel from " + "a [" * (fill // 3) + "\n",
        HEAD + "to=<" + "a>,<" * (fill // 4) + ", stat=Sent\n",
        "Dec  5 22:33:42 mx sendmail[5478]: AUTH=server, relay=[1.2.3.4], authid="
        + "x" * fill
        + "\n",
        "x" * fill + "\n",  # no timestamp: skipped
    ]


def test_a_hostile_sendmail_log_is_read_with_bounded_rows_and_one_warning(tmp_path) -> None:
    overlong = HEAD.encode() + b"from=<" + b"y" * (MAX_LINE * 2)
    log = hostile_log(tmp_path / "maillog", "sendmail.log", hostile_lines(), overlong)
    frame, ours = read_warned(log, format="sendmail", year=2026)
    assert len(ours) == 1  # one warning for the file
    counts = frame.attrs["skipped"][str(log)]["counts"]
    assert counts[f"line longer than {MAX_LINE} characters"] == 1
    assert counts["not a syslog line"] >= 2  # the untimed line and the binary junk
    assert_rows_bounded(frame)
    assert "x" * 100 not in " ".join(frame["text"].dropna())  # the authid is hidden
    assert frame["session"].nunique() >= 10  # the fixture's sessions are all there


@pytest.mark.parametrize("line", hostile_lines()[:8])
def test_each_hostile_line_alone_reads_or_is_refused_by_name(line: str, tmp_path) -> None:
    log = tmp_path / "maillog"
    log.write_text(line)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", smtplab.IngestWarning)
        try:
            frame = smtplab.read(log, format="sendmail", year=2026)
        except smtplab.IngestError as error:
            assert "maillog" in str(error)
            return
    assert (frame["text"].dropna().str.len() <= MAX_TEXT + 1).all()
