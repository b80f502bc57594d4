"""A hostile Exim log: lines built to make a careless parser backtrack for ever, binary junk,
lines past the line bound. The reader must finish, keep every row bounded, skip and count what
is no Exim line in one warning, and never raise anything but IngestError.

A client chooses much of what Exim logs about it (its HELO name, its addresses), so the lines
below put the parser's delimiters (``H=(``, ``from (``, `` F=<``, quotes) thousands of times on
one line, unclosed. The reader's patterns bound each field they scan (smtplab/ingest/exim.py),
so each such line costs a bounded scan per delimiter; no clock is read here."""

from __future__ import annotations

import warnings

import pytest

import smtplab
from smtplab.ingest.inputs import MAX_LINE
from smtplab.log.limits import MAX_TEXT
from tests.hardening.hostile_logs import assert_rows_bounded, hostile_log, read_warned

STAMP = "2026-12-05 22:04:04"
NEAR_BOUND = MAX_LINE - 200  # long lines the reader still reads whole


def hostile_lines() -> list[str]:
    fill = NEAR_BOUND
    return [
        f"{STAMP} H=" + "H=(" * (fill // 3) + "\n",  # no ")" ever closes the HELO name
        f"{STAMP} H=(x) [127.0.0.1]:1" + " F=<" * (fill // 4) + " rejected RCPT <a@b>\n",
        f"{STAMP} 1xZxrL-00056I-1o <= a@b" + " H=(" * (fill // 4) + "\n",
        f'{STAMP} 1xZxrL-00056I-1o <= a@b H=(x) [127.0.0.1]:1 T="'
        + '\\"' * (fill // 2)
        + " from <a@b> for c@d\n",  # a quote that never closes
        f"{STAMP} 1xZxrL-00056I-1o <= a@b H=(x) [127.0.0.1]:1 "
        + " from <a@b> for" * (fill // 16)
        + "\n",
        f"{STAMP} SMTP connection from " + "from (" * (fill // 6) + "\n",
        f"{STAMP} no MAIL in SMTP connection from [127.0.0.1]:1 C=" + "EHLO," * (fill // 5) + "\n",
        f"{STAMP} H=(x) [127.0.0.1]:1 rejected RCPT <" + "a" * fill + ">: " + "b" * 100 + "\n",
        "P Received: " + ":" * fill + "\n",  # a header block's line, long
        "x" * fill + "\n",  # no timestamp: skipped
    ]


def test_a_hostile_exim_log_is_read_with_bounded_rows_and_one_warning(tmp_path) -> None:
    overlong = f"{STAMP} H=(".encode() + b"y" * (MAX_LINE * 2)
    log = hostile_log(tmp_path / "mainlog", "exim-mainlog-all.log", hostile_lines(), overlong)
    frame, ours = read_warned(log)
    assert len(ours) == 1  # one warning for the file
    counts = frame.attrs["skipped"][str(log)]["counts"]
    assert counts[f"line longer than {MAX_LINE} characters"] == 1
    assert counts["not an Exim log line"] >= 2  # the untimed line and the binary junk
    assert_rows_bounded(frame)
    # The fixture's sessions are all there, the hostile lines' beside them.
    assert frame["session"].nunique() >= 15


@pytest.mark.parametrize("line", hostile_lines()[:7])
def test_each_hostile_line_alone_reads_or_is_refused_by_name(line: str, tmp_path) -> None:
    log = tmp_path / "mainlog"
    log.write_text(line)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", smtplab.IngestWarning)
        try:
            frame = smtplab.read(log, format="exim")
        except smtplab.IngestError as error:
            assert "mainlog" in str(error)
            return
    assert (frame["text"].dropna().str.len() <= MAX_TEXT + 1).all()
