"""A hostile Zeek smtp.log: lines past the line bound, binary junk, JSON whose strings never
close or nest without end, values that are all escapes, sets of thousands of addresses. The
reader must finish, keep every row bounded, skip and count what is no smtp.log line in one
warning, and never raise anything but IngestError. A sender chooses its HELO name, addresses
and headers, which Zeek logs as they came; no clock is read here."""

from __future__ import annotations

import pytest

import smtplab
from smtplab.ingest.inputs import MAX_LINE
from smtplab.log.limits import MAX_TEXT
from tests.hardening.hostile_logs import assert_rows_bounded, hostile_log, read_warned

NEAR_BOUND = MAX_LINE - 200
JSON_HEAD = '{"ts":1795917475.2,"uid":"CHostile","id.orig_h":"192.0.2.1","id.orig_p":1,'


def hostile_json_lines() -> list[str]:
    fill = NEAR_BOUND
    return [
        JSON_HEAD + '"helo":"' + "\\" * 2 * (fill // 2) + '"}\n',  # escapes, closed
        JSON_HEAD + '"helo":"' + "x" * fill + "\n",  # a string that never closes
        "[" * (fill // 2) + "\n",  # nested without end: not an object
        "[" * (fill // 4) + "]" * (fill // 4) + "\n",  # nested past Python's stack
        JSON_HEAD + '"rcptto":[' + '"a@b",' * (fill // 7) + '"c@d"],"trans_depth":1}\n',
        JSON_HEAD + '"last_reply":"' + "9" * 1000 + '","trans_depth":1}\n',
        JSON_HEAD + '"last_reply":"250 ' + "x" * fill + '","trans_depth":1}\n',
        JSON_HEAD.replace("1795917475.2", "1e308") + '"trans_depth":1}\n',  # no such time
        JSON_HEAD + '"mailfrom":' + "1" * 5000 + "}\n",  # a number, not an address
    ]


def hostile_tsv_lines() -> list[str]:
    fill = NEAR_BOUND
    return [
        "\\x41" * (fill // 4) + "\n",  # escapes only, one field
        "1795917475.2\tC1\t192.0.2.1\t1\t192.0.2.25\t25\t1\t" + "\t" * fill + "\n",
        "1795917475.2\tC2\t192.0.2.1\t1\t192.0.2.25\t25\t1\th\tm@x\t"
        + ",".join(["a@b"] * (fill // 4))
        + "\t-" * 16
        + "\n",
    ]


@pytest.mark.parametrize(
    ("fixture", "lines"),
    [("zeek-smtp.json", hostile_json_lines()), ("zeek-smtp.log", hostile_tsv_lines())],
)
def test_a_hostile_zeek_log_is_read_with_bounded_rows_and_one_warning(
    fixture: str, lines: list[str], tmp_path
) -> None:
    overlong = b'{"ts":1,"uid":"' + b"y" * (MAX_LINE * 2)
    log = hostile_log(tmp_path / fixture, fixture, lines, overlong)
    frame, ours = read_warned(log, format="zeek")
    assert len(ours) == 1  # one warning for the file
    counts = frame.attrs["skipped"][str(log)]["counts"]
    assert counts[f"line longer than {MAX_LINE} characters"] == 1
    assert counts["not a Zeek smtp.log line"] >= 2  # at least the junk
    assert_rows_bounded(frame)
    assert frame["session"].nunique() >= 9


@pytest.mark.parametrize("line", hostile_json_lines())
def test_each_hostile_json_line_alone_reads_or_is_refused_by_name(line: str, tmp_path) -> None:
    log = tmp_path / "smtp.json"
    log.write_text(line)
    try:
        frame, _ = read_warned(log, format="zeek")
    except smtplab.IngestError as error:
        assert "smtp.json" in str(error)
        return
    assert (frame["text"].dropna().str.len() <= MAX_TEXT + 1).all()
