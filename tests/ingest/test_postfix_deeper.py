"""Postfix logs, deeper: the year of classic stamps (file time, December into January), RFC 3339
stamps, NOQUEUE refusals, and delivery lines kept whole, with the ``queued as`` of a content
filter's hand-off and of a relay to another host (the fixtures ``postfix-hops-mx1.log`` and
``-mx2.log``, recorded by ``tests/fixtures/record_postfix_hops.py`` from two private Postfix
instances; the tests compare the rows with what Postfix logged, found with plain searches)."""

from __future__ import annotations

import datetime as dt
import os
import re
import warnings
from pathlib import Path

import pandas as pd

import smtplab
from smtplab.ingest import IngestWarning

FIXTURES = Path(__file__).parents[1] / "fixtures"
MX1, MX2 = FIXTURES / "postfix-hops-mx1.log", FIXTURES / "postfix-hops-mx2.log"


def read_quietly(path: Path | list[Path], **options) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("error", IngestWarning)
        return smtplab.read(path, **options)


def written_on(path: Path, day: dt.datetime) -> None:
    stamp = day.replace(tzinfo=dt.UTC).timestamp()
    os.utime(path, (stamp, stamp))


def session_lines(pid: int, month_day: str, clock: str, client: str) -> str:
    return (
        f"{month_day} {clock} vm postfix/smtpd[{pid}]: connect from unknown[{client}]\n"
        f"{month_day} {clock} vm postfix/smtpd[{pid}]: disconnect from unknown[{client}] "
        "ehlo=1 quit=1 commands=2\n"
    )


# -- timestamps -------------------------------------------------------------------------------


def test_a_log_from_december_into_january_goes_on_into_the_new_year(tmp_path) -> None:
    log = tmp_path / "maillog"
    log.write_text(
        session_lines(1, "Dec 31", "23:59:58", "192.0.2.1")
        + session_lines(2, "Jan  1", "00:00:02", "192.0.2.2")
    )
    written_on(log, dt.datetime(2027, 1, 1, 0, 5))  # rotated just after midnight
    frame = read_quietly(log)  # no year given: the file's time tells it
    starts = frame.groupby("session", observed=True)["time"].first().sort_values()
    assert [str(t) for t in starts] == [
        "2026-12-31 23:59:58+00:00",
        "2027-01-01 00:00:02+00:00",
    ]
    assert frame["time"].dropna().is_monotonic_increasing


def test_a_december_line_written_late_among_januarys_stays_in_december(tmp_path) -> None:
    log = tmp_path / "maillog"
    log.write_text(
        session_lines(1, "Jan  1", "00:00:01", "192.0.2.1")
        + session_lines(2, "Dec 31", "23:59:59", "192.0.2.2")  # syslog wrote it late
        + session_lines(3, "Jan  1", "00:00:03", "192.0.2.3")
    )
    frame = read_quietly(log, year=2027)
    starts = frame.groupby("session", observed=True)["time"].first()
    assert [str(starts[f"maillog-{n}"].date()) for n in (1, 2, 3)] == [
        "2027-01-01",
        "2026-12-31",
        "2027-01-01",
    ]


def test_a_log_of_a_later_month_than_its_file_is_from_the_year_before(tmp_path) -> None:
    log = tmp_path / "maillog"
    log.write_text((FIXTURES / "postfix.log").read_text())  # lines of November
    written_on(log, dt.datetime(2027, 2, 3))
    assert read_quietly(log)["time"].dt.year.dropna().unique().tolist() == [2026]
    written_on(log, dt.datetime(2026, 12, 1))
    assert read_quietly(log)["time"].dt.year.dropna().unique().tolist() == [2026]


def test_rfc3339_stamps_give_the_rows_classic_stamps_give(tmp_path) -> None:
    classic = (FIXTURES / "postfix.log").read_text()
    months = {"Nov": "11", "Dec": "12"}
    rfc3339 = re.sub(
        r"^(\w{3}) +(\d+) (\d\d:\d\d:\d\d) ",
        lambda m: f"2026-{months[m[1]]}-{int(m[2]):02d}T{m[3]}.000000+00:00 ",
        classic,
        flags=re.MULTILINE,
    )
    assert rfc3339 != classic and "T01:57:55.000000+00:00 vm postfix/smtpd" in rfc3339
    (tmp_path / "classic").mkdir(), (tmp_path / "rfc3339").mkdir()
    (tmp_path / "classic" / "maillog").write_text(classic)
    (tmp_path / "rfc3339" / "maillog").write_text(rfc3339)
    written_on(tmp_path / "rfc3339" / "maillog", dt.datetime(2031, 6, 1))  # not used: no effect
    pd.testing.assert_frame_equal(
        read_quietly(tmp_path / "rfc3339" / "maillog"),
        read_quietly(tmp_path / "classic" / "maillog", year=2026),
    )


# -- NOQUEUE refusals ---------------------------------------------------------------------------


def test_noqueue_refusals_are_rows_as_postfix_logged_them() -> None:
    logged = re.findall(
        r"NOQUEUE: reject: RCPT from \S+: (\d{3}) (\d\.\d+\.\d+) (<[^>]+>)", MX2.read_text()
    )
    assert len(logged) == 2  # the access map's 554 5.7.1 and the unknown user's 550 5.1.1
    frame = read_quietly(MX2, year=2026)
    replies = frame[(frame["kind"] == "reply") & (frame["verb"] == "RCPT")]
    assert [(str(c), e, t.split(":")[0]) for c, e, t in logged] == [
        (str(c), e, t.split(":")[0])
        for c, e, t in replies[["code", "enhanced", "text"]].itertuples(index=False)
    ]
    asked = (
        replies[["session", "reply_to"]]
        .rename(columns={"reply_to": "seq"})
        .astype({"seq": "int64"})
    )
    commands = frame.merge(asked, on=["session", "seq"])
    assert sorted(commands["argument"]) == sorted(f"TO:{address}" for *_, address in logged)


# -- delivery lines kept whole: relay, delays, dsn, status, queued as -----------------------------


def test_each_delivery_line_is_a_note_as_postfix_logged_it() -> None:
    for log in (MX1, MX2, FIXTURES / "postfix.log"):
        logged = re.findall(r"postfix/\w+\[\d+\]: ([0-9A-F]+: to=<.*status=.*)$", log.read_text(),
                            flags=re.MULTILINE)  # fmt: skip
        frame = read_quietly(log, year=2026)
        notes = frame.loc[frame["kind"] == "note", "text"]
        assert sorted(notes[notes.str.contains(" status=", regex=False)]) == sorted(logged), log
    assert len(logged) == 7


def test_the_queue_ids_of_a_content_filters_hand_off_are_in_the_rows() -> None:
    text = MX1.read_text()
    handed = re.findall(r"([0-9A-F]+): to=<[^>]+>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*"
                        r"status=sent \(250 2\.0\.0 Ok: queued as ([0-9A-F]+)\)", text)  # fmt: skip
    # The filter's way back in is smtpd with myhostname "filter.localhost": its lines' host.
    returned = set(re.findall(r" filter postfix/smtpd\[\d+\]: ([0-9A-F]+): client=", text))
    handed = [(first, second) for first, second in handed if second in returned]
    assert len(handed) == 5 and len(returned) == 3  # five recipients of three messages
    frame = read_quietly(MX1, year=2026)
    queued = frame.loc[frame["text"].str.endswith(": queued", na=False), "text"]
    taken = {text.split(":")[0] for text in queued}
    # Both ends of each hand-off are messages of the frame: the first id's session (the
    # client's) and the second's (the filter's way back in, a session of its own).
    assert {first for first, _ in handed} | {second for _, second in handed} <= taken
