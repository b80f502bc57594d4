"""Reading Exim's mainlog and rejectlog (issue 18).

The fixtures were recorded by tests/fixtures/record_exim.py: Debian's Exim 4.96, run privately
on loopback, with the default log_selector (port 2525) and with ``+all`` (port 2526), the same
traffic each time, captured by dumpcap (``exim.pcapng``). What Exim logged is counted here
with plain searches of the files, independently of the reader, and compared with the reader's
rows; the ``+all`` log is compared with the capture connection by connection."""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

import smtplab
from smtplab.ingest import IngestError, IngestWarning, detect

FIXTURES = Path(__file__).parents[1] / "fixtures"
LOGS = ["exim-mainlog.log", "exim-mainlog-all.log", "exim-rejectlog.log", "exim-rejectlog-all.log"]
PORTS = {"exim-mainlog.log": 2525, "exim-mainlog-all.log": 2526}


def read_quietly(path: Path, **options: object) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("error", IngestWarning)  # nothing of the fixtures is skipped
        return smtplab.read(path, **options)  # type: ignore[arg-type]


def lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def logged(name: str, pattern: str) -> int:
    """Lines of a fixture that match ``pattern``: what Exim itself says, counted by grep."""
    return sum(1 for line in lines(name) if re.search(pattern, line))


def notes(frame: pd.DataFrame, marker: str) -> int:
    text = frame.loc[frame["kind"] == "note", "text"].dropna()
    return int(text.str.match(rf"\S+ {re.escape(marker)}(?: |$)").sum())


def refusals(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["kind"] == "reply"]


@pytest.fixture(scope="module")
def capture() -> pd.DataFrame:
    return smtplab.read(FIXTURES / "exim.pcapng")


def captured_sessions(capture: pd.DataFrame, port: int) -> pd.DataFrame:
    servers = capture.groupby("session", observed=True)["server"].first()
    return capture[capture["session"].isin(servers[servers == f"127.0.0.1:{port}"].index)]


# -- what Exim logged -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOGS)
def test_every_message_delivery_and_refusal_exim_logged_is_in_the_rows(name: str) -> None:
    frame = read_quietly(FIXTURES / name)
    assert set(frame["source"]) == {"exim"}
    for marker in ("<=", "=>", "->", "**", "==", "Completed"):
        count = logged(name, rf"^\S+ \S+ (\[\d+\] )?\S+ {re.escape(marker)}(?: |$)")
        assert notes(frame, marker) == count, marker
        assert count > 0 or "rejectlog" in name, marker  # the mainlogs have each kind
    replies = refusals(frame)
    assert (replies["text"].str.startswith("rejected")).sum() == logged(
        name, r" (?<!temporarily )rejected "
    )
    assert (replies["text"].str.startswith("temporarily rejected")).sum() == logged(
        name, " temporarily rejected "
    )
    # Exim logs that it refused, not with which code: none is made up.
    assert replies["code"].isna().all() and replies["enhanced"].isna().all()


def test_each_message_received_over_smtp_is_a_mail_and_data_in_its_session() -> None:
    for name in ("exim-mainlog.log", "exim-mainlog-all.log"):
        frame = read_quietly(FIXTURES / name)
        received = logged(name, r" <= \S+ H=")  # over SMTP: not the bounces Exim made itself
        data = frame[(frame["kind"] == "command") & (frame["verb"] == "DATA")]
        assert len(data) == received + logged(name, " rejected after DATA")
    # With +all (received_recipients) the <= line lists the recipients: a RCPT each, accepted
    # (no reply row: Exim does not log the 250); the refused ones have their reply.
    name = "exim-mainlog-all.log"
    frame = read_quietly(FIXTURES / name)
    listed = sum(
        len(line.rsplit(" for ", 1)[1].split())
        for line in lines(name)
        if re.search(r" <= \S+ H=", line)
    )
    answered = set(zip(frame["session"], frame["reply_to"], strict=True))
    rcpt = frame[(frame["kind"] == "command") & (frame["verb"] == "RCPT")]
    unanswered = [(s, q) not in answered for s, q in zip(rcpt["session"], rcpt["seq"], strict=True)]
    assert sum(unanswered) == listed


def test_with_plus_all_each_connection_exim_logged_is_a_session() -> None:
    name = "exim-mainlog-all.log"
    frame = read_quietly(FIXTURES / name)
    opened = [
        re.search(r"\[127\.0\.0\.1\]:(\d+) ", line)[1]  # type: ignore[index]
        for line in lines(name)
        if "SMTP connection from" in line and "connection count" in line
    ]
    firsts = frame.groupby("session", observed=True, sort=False).first()
    assert list(firsts["client"]) == [f"127.0.0.1:{port}" for port in opened]
    assert set(firsts["server"]) == {"127.0.0.1:2526"}
    assert firsts["time"].notna().all()  # the connection's time: logged
    closes = frame[frame["kind"] == "close"]
    assert len(closes) == len(opened)
    assert (closes["sender"] == "server").sum() == logged(name, "closed by QUIT")


def test_a_refusal_is_a_command_and_its_reply() -> None:
    frame = read_quietly(FIXTURES / "exim-mainlog-all.log")
    replies = refusals(frame)
    first = replies.iloc[0]
    rows = frame[frame["session"] == first["session"]]
    command = rows[rows["seq"] == first["reply_to"]].iloc[0]
    assert (command["verb"], command["argument"]) == ("RCPT", "TO:<nobody@example.org>")
    assert (first["verb"], first["text"]) == ("RCPT", "rejected: Unrouteable address")
    grey = replies[replies["text"].str.startswith("temporarily")].iloc[0]
    assert grey["text"] == "temporarily rejected: greylisted, try again later"
    sender = replies[replies["verb"] == "MAIL"].iloc[0]
    asked = frame[(frame["session"] == sender["session"]) & (frame["seq"] == sender["reply_to"])]
    assert asked["argument"].item() == "FROM:<spammer@bad.example>"
    after_data = replies[replies["verb"] == "DATA-END"].iloc[0]
    assert after_data["text"] == "rejected: message content rejected"


def test_a_bounce_and_its_deferral_stay_with_the_session_that_took_the_message() -> None:
    frame = read_quietly(FIXTURES / "exim-mainlog-all.log")
    text = frame.loc[frame["kind"] == "note", ["session", "text"]]
    failed = text[text["text"].str.contains(r" \*\* nobody@downstream\.example ")]
    session = failed["session"].item()
    mine = " ".join(text.loc[text["session"] == session, "text"])
    assert "<= <> R=" in mine and "== alice@example.net" in mine  # the bounce, deferred
    assert "550 5.1.1" in failed["text"].item()  # the next hop's reply, as Exim logged it


def test_the_default_log_keeps_sessions_it_cannot_time() -> None:
    frame = read_quietly(FIXTURES / "exim-mainlog.log")
    connects = frame[frame["kind"] == "connect"]
    assert connects["time"].isna().all()  # no smtp_connection: when is unknown
    assert set(frame["client"]) == {"127.0.0.1"}  # no incoming_port: no port
    every = read_quietly(FIXTURES / "exim-mainlog-all.log")
    assert frame["session"].nunique() < every["session"].nunique()  # some connections merge


def test_the_rejectlog_holds_the_refusals_and_its_header_blocks_are_passed_over() -> None:
    for main, reject in (("exim-mainlog.log", "exim-rejectlog.log"),
                         ("exim-mainlog-all.log", "exim-rejectlog-all.log")):  # fmt: skip
        assert any(line.startswith("Envelope-from:") for line in lines(reject))
        ours = refusals(read_quietly(FIXTURES / reject))[["verb", "text"]].astype(str)
        theirs = refusals(read_quietly(FIXTURES / main))[["verb", "text"]].astype(str)
        assert ours.values.tolist() == theirs.values.tolist()


# -- the same traffic in the capture ----------------------------------------------------------


def test_the_plus_all_log_agrees_with_the_capture_connection_by_connection(capture) -> None:
    log = read_quietly(FIXTURES / "exim-mainlog-all.log")
    captured = captured_sessions(capture, 2526)
    by_client = {
        rows["client"].iloc[0]: rows for _, rows in captured.groupby("session", observed=True)
    }
    assert len(by_client) == log["session"].nunique()
    for _, ours in log.groupby("session", observed=True):
        theirs = by_client[ours["client"].iloc[0]]
        wire = theirs[theirs["kind"] == "reply"]
        # Each refusal Exim logged is a 5xx (rejected) or 4xx (temporarily) to that command.
        for _, refusal in refusals(ours).iterrows():
            klass = 4 if refusal["text"].startswith("temporarily") else 5
            same = wire[(wire["verb"] == refusal["verb"]) & (wire["code"] // 100 == klass)]
            assert len(same) >= 1, (refusal["session"], refusal["verb"])
        # And no other command was refused: every other 4xx/5xx is the 421 Exim sends to a
        # client already gone.
        refused = wire[(wire["code"] >= 400) & (wire["code"] != 421)]
        assert len(refused) == len(refusals(ours))
        # STARTTLS in the capture; P=esmtps and X= in the log.
        assert (ours["kind"] == "tls").any() == (theirs["kind"] == "tls").any()
        if (theirs["kind"] == "tls").any():
            continue  # the capture is blind after STARTTLS: the rest is Exim's word only
        # Each message the log says was received got a 250 after its final dot.
        text = ours.loc[ours["kind"] == "note", "text"]
        received = text.str.match(r"\S+ <= \S+ H=").sum()  # not its bounces: Exim made those
        assert ((wire["verb"] == "DATA-END") & (wire["code"] == 250)).sum() == received


def test_the_default_log_agrees_with_the_capture_in_total(capture) -> None:
    log = read_quietly(FIXTURES / "exim-mainlog.log")
    wire = captured_sessions(capture, 2525)
    wire = wire[wire["kind"] == "reply"]
    # The message sent under TLS (P=esmtps) is out of the capture's sight.
    assert ((wire["verb"] == "DATA-END") & (wire["code"] == 250)).sum() == logged(
        "exim-mainlog.log", r" <= \S+ H=.* P=esmtp "
    )
    texts = refusals(log)["text"]
    assert (wire["code"] // 100 == 5).sum() == texts.str.startswith("rejected").sum()
    assert ((wire["code"] // 100 == 4) & (wire["code"] != 421)).sum() == texts.str.startswith(
        "temporarily"
    ).sum()


# -- formats and bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOGS)
def test_an_exim_log_is_told_from_its_content(name: str, tmp_path) -> None:
    renamed = tmp_path / "whatever.dat"
    shutil.copy(FIXTURES / name, renamed)
    assert detect(renamed, renamed.read_bytes()) == "exim"
    assert read_quietly(renamed, format="exim")["session"].nunique() > 0


def test_garbled_lines_are_skipped_and_counted_in_one_warning(tmp_path) -> None:
    text = (FIXTURES / "exim-mainlog-all.log").read_text().splitlines(keepends=True)
    damaged = tmp_path / "mainlog"
    text.insert(5, "garbage that is no log line\n")
    text.insert(9, "2026-13-45 25:61:00 1xZxrL-00056I-1o Completed\n")
    text.insert(len(text) - 2, "\x00\x01\x02 binary junk\n")  # past detection's 4 KB
    damaged.write_text("".join(text))
    with pytest.warns(IngestWarning) as caught:
        frame = smtplab.read(damaged)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "mainlog: skipped 3 unreadable part(s)" in message
    assert "mainlog line 6: not an Exim log line" in message
    assert "mainlog line 10: impossible timestamp" in message
    assert frame.attrs["skipped"][str(damaged)]["counts"] == {
        "not an Exim log line": 2,
        "impossible timestamp": 1,
    }
    assert (
        frame["session"].nunique()
        == read_quietly(FIXTURES / "exim-mainlog-all.log")["session"].nunique()
    )


def test_another_format_read_as_exim_is_an_error_naming_the_file_and_line() -> None:
    with pytest.raises(IngestError, match=r"postfix\.log line 1: not an Exim log line"):
        smtplab.read(FIXTURES / "postfix.log", format="exim", year=2026)


def test_a_file_of_no_known_format_names_exim_among_the_formats(tmp_path) -> None:
    notes_file = tmp_path / "notes.txt"
    notes_file.write_text("2026-12-05 some notes, not a log\n")
    with pytest.raises(IngestError, match=r"notes\.txt: cannot tell .*Postfix, Exim"):
        smtplab.read(notes_file)


def test_a_line_past_the_line_bound_is_skipped_as_for_the_other_readers(tmp_path) -> None:
    from smtplab.ingest.inputs import MAX_LINE

    text = (FIXTURES / "exim-mainlog-all.log").read_text()
    long = tmp_path / "mainlog"
    long.write_text(text + "2026-12-05 22:04:06 H=(" + "x" * MAX_LINE + ") [1.2.3.4]\n")
    with pytest.warns(IngestWarning, match=rf"line longer than {MAX_LINE} characters"):
        frame = smtplab.read(long)
    assert (
        frame["session"].nunique()
        == read_quietly(FIXTURES / "exim-mainlog-all.log")["session"].nunique()
    )


# -- the analysis reads an Exim log as it reads a Postfix log ----------------------------------


def test_sessions_and_steps_of_an_exim_log_say_what_exim_logged() -> None:
    from smtplab.analysis import sessions, steps

    name = "exim-mainlog-all.log"
    frame = read_quietly(FIXTURES / name)
    table = sessions(frame)
    # A message received: accepted commands have no reply row, yet count as accepted.
    assert table["messages"].sum() == logged(name, r" <= \S+ H=")
    assert table["errors"].sum() == logged(name, r" rejected ")
    assert (table["outcome"] == "no mail").sum() == logged(
        name, r"no MAIL in SMTP connection .* C="
    )
    assert "ehlo=1 quit=1 commands=2" in set(table["fingerprint"])
    status = steps(frame).set_index(["verb", "argument"])["status"]
    assert status.loc[("RCPT", "TO:<grey@example.org>")] == "temporary"
    assert status.loc[("RCPT", "TO:<someone@elsewhere.example>")] == "permanent"
    assert status.loc[("RCPT", "TO:<carol@example.org>")].eq("accepted").all()


def test_an_auth_identity_exim_logged_is_not_kept_in_clear(tmp_path) -> None:
    log = tmp_path / "mainlog"
    log.write_text(
        "2026-12-05 22:04:04 1xZxrL-00056I-1o <= a@example.net H=(x) [192.0.2.1] P=esmtpsa "
        "A=dovecot_plain:alice.secret S=512\n"
    )
    frame = read_quietly(log)
    text = " ".join(frame["text"].dropna())
    assert "A=dovecot_plain:***" in text and "alice.secret" not in text


def test_a_message_of_the_default_log_is_delivered_though_its_recipients_are_not_listed() -> None:
    from smtplab.analysis import transactions

    name = "exim-mainlog.log"
    table = transactions(read_quietly(FIXTURES / name))
    # The default log_selector lists no recipients on <= lines; the accepted DATA says one was.
    assert (table["outcome"] == "delivered").sum() == logged(name, r" <= \S+ H=")
    assert (table["accepted"] == 0).all()  # which, and how many: not known
