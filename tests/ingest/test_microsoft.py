"""Reading Exchange Server's message tracking log and Microsoft 365 message trace exports
(issue 18).

Neither producer can run here, so the fixtures are NOT their output: they were built by
tests/fixtures/make_microsoft_fixtures.py from Microsoft's published field lists (the
message tracking log's ``#Fields`` and event types; the message trace's columns and
statuses), and each says so in its first line. What each file says is counted here with plain
searches and CSV reads, independently of the readers, and compared with the rows."""

from __future__ import annotations

import csv
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

import smtplab
from smtplab.ingest import IngestError, IngestWarning, detect

FIXTURES = Path(__file__).parents[1] / "fixtures"
TRACKING = FIXTURES / "exchange-tracking.log"
TRACE = FIXTURES / "m365-message-trace.csv"


def read_quietly(path: Path, **options: object) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("error", IngestWarning)
        return smtplab.read(path, **options)  # type: ignore[arg-type]


def events() -> list[dict[str, str]]:
    """The tracking log's events, read with the csv module alone."""
    lines = TRACKING.read_text(encoding="utf-8-sig").splitlines()
    fields = next(line for line in lines if line.startswith("#Fields: "))[9:].split(",")
    return [
        dict(zip(fields, row, strict=True))
        for row in csv.reader(row for row in lines if row[:1] != "#")
    ]


def trace() -> list[dict[str, str]]:
    lines = TRACE.read_text().splitlines()
    return list(csv.DictReader(line for line in lines if not line.startswith("#")))


def test_each_fixture_says_it_is_built_not_recorded() -> None:
    assert TRACKING.read_text(encoding="utf-8-sig").startswith("# smtplab fixture: NOT written")
    assert TRACE.read_text().startswith("# smtplab fixture: NOT exported")


# -- Exchange ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracking() -> pd.DataFrame:
    return read_quietly(TRACKING)


def test_each_smtp_session_and_each_smtp_send_is_a_session(tracking) -> None:
    smtp = [e for e in events() if e["source"] == "SMTP" and e["event-id"] in ("RECEIVE", "SEND")]
    receive_sessions = {
        e["source-context"].split(";")[0] for e in smtp if e["event-id"] == "RECEIVE"
    }
    sends = [e for e in smtp if e["event-id"] == "SEND"]
    assert tracking["session"].nunique() == len(receive_sessions) + len(sends) == 3
    assert set(tracking["source"]) == {"exchange"}
    firsts = tracking.groupby("session", observed=True, sort=False).first()
    assert list(firsts["client"]) == ["192.0.2.10", "198.51.100.7", "10.0.0.5"]
    assert list(firsts["server"]) == ["10.0.0.5", "10.0.0.5", "203.0.113.25"]


def test_each_smtp_message_is_its_mail_rcpts_and_data(tracking) -> None:
    smtp = [e for e in events() if e["source"] == "SMTP" and e["event-id"] in ("RECEIVE", "SEND")]
    commands = tracking[tracking["kind"] == "command"]
    mail = commands.loc[commands["verb"] == "MAIL", "argument"].tolist()
    assert mail == [f"FROM:<{e['return-path']}>" for e in smtp]
    rcpt = commands.loc[commands["verb"] == "RCPT", "argument"].tolist()
    assert rcpt == [f"TO:<{a}>" for e in smtp for a in e["recipient-address"].split(";")]
    assert (commands["verb"] == "DATA").sum() == len(smtp)


def test_a_recipient_status_with_a_code_is_the_reply_to_its_rcpt(tracking) -> None:
    replies = tracking[tracking["kind"] == "reply"]
    assert list(zip(replies["code"], replies["enhanced"], replies["text"], strict=True)) == [
        (250, "2.1.5", "Recipient OK"),
        (550, "5.1.1", "User unknown"),
    ]
    asked = tracking.set_index(["session", "seq"]).loc[
        list(zip(replies["session"], replies["reply_to"], strict=True)), "argument"
    ]
    assert list(asked) == ["TO:<eve@fabrikam.example>", "TO:<frank@fabrikam.example>"]


def test_later_events_are_notes_of_the_session_that_took_the_message(tracking) -> None:
    notes = tracking.loc[tracking["kind"] == "note", ["session", "text"]]
    taken: set[str] = set()  # messages a session took so far, in the log's order
    expected = []
    for event in events():
        if event["source"] == "SMTP" and event["event-id"] in ("RECEIVE", "SEND"):
            taken.add(event["internal-message-id"])
        elif event["internal-message-id"] in taken:
            expected.append(event)
    assert notes["text"].str.match(r"Exchange (?!RECEIVE \(SMTP\)|SEND \(SMTP\))").sum() == len(
        expected
    )
    failed = notes[notes["text"].str.contains("RecipNotFound")]
    assert failed["session"].item() == "exchange-tracking-2"  # a note, no reply: taken first
    assert "550 5.1.1" in failed["text"].item()
    # The message submitted from a mailbox: its SUBMIT and STOREDRIVER RECEIVE came before
    # the SEND that made its session, and are not in it.
    assert not notes["text"].str.contains(r"SUBMIT|RECEIVE \(STOREDRIVER\)").any()


def test_the_analysis_counts_taken_messages_as_delivered(tracking) -> None:
    from smtplab.analysis import transactions

    table = transactions(tracking)
    assert (table["outcome"] == "delivered").sum() == 4
    assert table["refused"].sum() == 1  # frank, refused by the next hop


# -- Microsoft 365 -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def m365() -> pd.DataFrame:
    return read_quietly(TRACE)


def test_each_message_trace_id_is_a_session_with_its_sender_and_recipients(m365) -> None:
    rows = trace()
    assert m365["session"].nunique() == len({row["Message trace ID"] for row in rows}) == 6
    commands = m365[m365["kind"] == "command"]
    assert (commands["verb"] == "RCPT").sum() == len(rows)
    assert commands.loc[commands["verb"] == "RCPT", "argument"].tolist() == [
        f"TO:<{row['Recipient address']}>" for row in rows
    ]
    senders = commands.loc[commands["verb"] == "MAIL", "argument"].tolist()
    assert senders == [f"FROM:<{s}>" for s in dict.fromkeys(r["Sender address"] for r in rows)] or (
        len(senders) == 6
    )
    # No SMTP reply is in a message trace: none is made up.
    assert not (m365["kind"] == "reply").any()


def test_each_recipients_status_is_a_note(m365) -> None:
    notes = m365.loc[m365["kind"] == "note", "text"]
    statuses = notes.str.extract(r"^to=<[^>]*> status=(\w+)$")[0].dropna().tolist()
    assert statuses == [row["Status"] for row in trace()]
    assert {"Delivered", "Failed", "Pending", "Expanded", "Quarantined", "FilteredAsSpam"} <= set(
        statuses
    )


def test_received_times_are_utc_and_quoted_fields_keep_their_commas(m365) -> None:
    times = m365["time"].dropna()
    assert str(times.iloc[0]) == "2026-11-29 01:57:55+00:00"
    assert m365["text"].str.contains("subject=Draft, comments", regex=False).any()
    assert m365["text"].str.contains('subject=Your "account" needs you', regex=False).any()


def test_the_cmdlets_property_names_are_read_too(tmp_path) -> None:
    export = tmp_path / "trace.csv"
    export.write_text(
        "#TYPE Deserialized.Microsoft.Exchange.Management.FfoReporting.MessageTrace\n"
        '"Organization","MessageId","Received","SenderAddress","RecipientAddress","Subject",'
        '"Status","ToIP","FromIP","Size","MessageTraceId","StartDate","EndDate","Index"\n'
        '"contoso.example","<a@b>","2026-11-29T01:57:55.2490000Z","a@b.example","c@contoso.example",'
        '"Hi","Failed","","192.0.2.1","100","6a1f","","","0"\n'
    )
    frame = read_quietly(export)
    assert frame["client"].iloc[0] == "192.0.2.1"
    assert frame["text"].str.contains("status=Failed").any()


# -- formats and bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(("path", "kind"), [(TRACKING, "exchange"), (TRACE, "m365")])
def test_each_format_is_told_from_its_content(path: Path, kind: str, tmp_path) -> None:
    renamed = tmp_path / "whatever.dat"
    shutil.copy(path, renamed)
    assert detect(renamed, renamed.read_bytes()) == kind


@pytest.mark.parametrize("path", [TRACKING, TRACE])
def test_garbled_lines_are_skipped_and_counted_in_one_warning(path: Path, tmp_path) -> None:
    lines = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    damaged = tmp_path / path.name
    lines.insert(len(lines) - 1, 'an "unclosed quote, and, commas\n')
    lines.insert(len(lines) - 1, "too,few\n")
    damaged.write_text("".join(lines))
    with pytest.warns(IngestWarning) as caught:
        frame = smtplab.read(damaged)
    assert len(caught) == 1
    assert "skipped 2 unreadable part(s)" in str(caught[0].message)
    assert frame["session"].nunique() == read_quietly(path)["session"].nunique()


def test_another_format_is_an_error_naming_the_file_and_line() -> None:
    with pytest.raises(IngestError, match=r"swaks\.txt line 1: not a message tracking log line"):
        smtplab.read(FIXTURES / "swaks.txt", format="exchange")
    with pytest.raises(IngestError, match=r"swaks\.txt line 1: not a message trace export"):
        smtplab.read(FIXTURES / "swaks.txt", format="m365")
