"""Hostile Exchange message tracking logs and Microsoft 365 message trace exports: quotes
that never close (which would let a CSV reader swallow every line after them as one field),
lines past the line bound, binary junk, thousands of recipients and statuses in one field.
The readers split each line alone, so a quote left open costs its own line only; they must
finish, keep every row bounded, skip and count in one warning, and raise nothing but
IngestError. A sender chooses the subject and addresses these logs hold; no clock is read."""

from __future__ import annotations

import warnings

import pytest

import smtplab
from smtplab.ingest.inputs import MAX_LINE
from smtplab.log.limits import MAX_TEXT
from tests.hardening.hostile_logs import FIXTURES, assert_rows_bounded, hostile_log, read_warned

NEAR_BOUND = MAX_LINE - 200
STAMP = "2026-11-29T01:59:01.300Z"


def tracking_lines() -> list[str]:
    fill = NEAR_BOUND
    smtp = f"{STAMP},10.0.0.5,MBX1,203.0.113.25,mx,08DE,Internet,SMTP,SEND,9,<m@x>,n,"
    tail = ",1,2,,,subject,a@b,a@b,,Originating,,,,,,,15.02"
    return [
        f'{STAMP},"' + "x" * fill + "\n",  # a quote that never closes
        smtp + ";".join(["r@x.example"] * (fill // 12)) + ",250 2.1.5 OK" + tail + "\n",
        smtp + "r@x.example," + ";".join(["550 5.1.1 no"] * (fill // 13)) + tail + "\n",
        smtp + 'r@x.example,250 2.1.5 OK,"' + '""' * (fill // 2) + '"' + tail + "\n",
        "," * fill + "\n",  # the right count of fields? no: the wrong one
    ]


def trace_lines() -> list[str]:
    fill = NEAR_BOUND
    return [
        '11/29/2026 1:57:55 AM,"' + "y" * fill + "\n",  # never closed
        "11/29/2026 1:57:55 AM,a@b,c@d,"
        + '"'
        + '"",' * (fill // 3)
        + '",Failed,<m>,t,,1.2.3.4,1\n',
        "13/45/2026 99:57:55 AM,a@b,c@d,s,Delivered,<m>,t2,,1.2.3.4,1\n",  # no such time
        "11/29/2026 1:57:55 AM,a@b," + "c" * fill + ",s,Delivered,<m>,t3,,1.2.3.4,1\n",
    ]


@pytest.mark.parametrize(
    ("fixture", "lines", "sessions", "last"),
    [
        ("exchange-tracking.log", tracking_lines(), 3, "Exchange FAIL (SMTP)"),
        ("m365-message-trace.csv", trace_lines(), 6, "status=Quarantined"),
    ],
)
def test_a_hostile_csv_log_is_read_with_bounded_rows_and_one_warning(
    fixture: str, lines: list[str], sessions: int, last: str, tmp_path
) -> None:
    overlong = b'"' + b"z" * (MAX_LINE * 2)  # past the bound, and never closed
    again = (FIXTURES / fixture).read_bytes().splitlines(keepends=True)[-1]
    log = hostile_log(tmp_path / fixture, fixture, lines, overlong, after=again)
    frame, ours = read_warned(log)
    assert len(ours) == 1
    counts = frame.attrs["skipped"][str(log)]["counts"]
    assert counts[f"line longer than {MAX_LINE} characters"] == 1
    assert sum(counts.values()) >= 3  # the unclosed quote, the junk, the long line at least
    assert_rows_bounded(frame)
    # The fixture's sessions are all there: no open quote swallowed the lines after it.
    assert frame["session"].nunique() >= sessions
    # and the fixture's last line, written again after the hostile ones, was read again.
    assert frame["text"].str.contains(last, regex=False, na=False).sum() == 2


@pytest.mark.parametrize("line", tracking_lines() + trace_lines())
def test_each_hostile_line_alone_reads_or_is_refused_by_name(line: str, tmp_path) -> None:
    for name, head in (
        ("tracking.log", "#Software: Microsoft Exchange Server\n#Log-type: Message Tracking Log\n"
         "#Fields: " + ",".join(["f"] * 30) + "\n"),
        ("trace.csv", "Received,Sender address,Recipient address,Subject,Status,Message ID,"
         "Message trace ID,To IP,From IP,Size\n"),
    ):  # fmt: skip
        log = tmp_path / name
        log.write_text(head + line)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", smtplab.IngestWarning)
            try:
                frame = smtplab.read(log)
            except smtplab.IngestError as error:
                assert name in str(error)
                continue
        assert (frame["text"].dropna().str.len() <= MAX_TEXT + 1).all()
