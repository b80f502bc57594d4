"""Reading Sendmail's syslog lines (issue 18).

The fixtures were recorded by tests/fixtures/record_sendmail.py: Debian's Sendmail 8.17, run
privately on loopback (port 2531) with ``LogLevel`` 9, its syslog lines written by a stand-in
syslog daemon (``sendmail.log``), and the same traffic captured by dumpcap
(``sendmail.pcapng``). What Sendmail logged is counted here with plain searches of the file,
independently of the reader, and compared with the reader's rows and with the capture."""

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
LOG = FIXTURES / "sendmail.log"


def read_quietly(path: Path = LOG, **options: object) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("error", IngestWarning)  # nothing of the fixture is skipped
        return smtplab.read(path, **{"year": 2026, **options})  # type: ignore[arg-type]


def lines() -> list[str]:
    return LOG.read_text().splitlines()


def logged(pattern: str) -> int:
    """Lines of the fixture that match ``pattern``: what Sendmail itself says, by grep."""
    return sum(1 for line in lines() if re.search(pattern, line))


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return read_quietly()


@pytest.fixture(scope="module")
def capture() -> pd.DataFrame:
    return smtplab.read(FIXTURES / "sendmail.pcapng")


def test_the_fixture_is_real_sendmail_output() -> None:
    assert logged(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d mx sendmail\[\d+\]: ") == len(lines())
    assert logged(r"starting daemon \(8\.17") == 1


# -- what Sendmail logged -------------------------------------------------------------------------


def test_each_smtp_server_process_is_a_session(frame) -> None:
    # One process per connection: its pid is on each of the connection's lines (the lines
    # with "relay=NAME [ADDRESS]" of a client, a refusal, or the connection's end).
    pids = {
        re.search(r"sendmail\[(\d+)\]", line)[1]  # type: ignore[index]
        for line in lines()
        if re.search(
            r": \w+: (from=.*proto=|ruleset=|<\S+>\.\.\. |lost input|.* did not issue)", line
        )
    }
    assert frame["session"].nunique() == len(pids) == 10
    assert set(frame["source"]) == {"sendmail"}


def test_every_transaction_refusal_and_delivery_sendmail_logged_is_in_the_rows(frame) -> None:
    commands = frame[frame["kind"] == "command"]
    assert (commands["verb"] == "MAIL").sum() == logged(r": from=<.*, proto=")
    assert (commands["verb"] == "DATA").sum() == logged(r": from=<.*, msgid=")
    notes = frame.loc[frame["kind"] == "note", "text"].dropna()
    assert notes.str.match(r"\w+: to=<").sum() == logged(r": \w+: to=<")
    assert notes.str.match(r"\w+: from=<").sum() == logged(r": \w+: from=<")
    # Accepted recipients: nrcpts= counts them (not named); refused ones: a line each.
    accepted = sum(int(n) for n in re.findall(r"nrcpts=(\d+)", LOG.read_text()))
    refused = logged(r"reject=\d{3} .*\brcpt|ruleset=check_rcpt") + logged(r"\.\.\. User unknown")
    assert (commands["verb"] == "RCPT").sum() == accepted + refused


def test_a_reject_line_gives_its_reply_code_and_user_unknown_none(frame) -> None:
    replies = frame[frame["kind"] == "reply"]
    coded = replies[replies["code"].notna()]
    rejects = re.findall(r"reject=(\d{3}) (\d\.\d\.\d) (.*)$", LOG.read_text(), re.M)
    assert [(int(c), e, t) for c, e, t in rejects] == list(
        zip(coded["code"], coded["enhanced"], coded["text"], strict=True)
    )
    assert list(coded["verb"]) == ["RCPT", "MAIL"]  # check_rcpt, check_mail
    assert coded["text"].str.endswith(("Relaying denied", "Access denied")).all()
    # "<x>... User unknown": Sendmail replied 550 5.1.1 but logs no code; none is made up.
    uncoded = replies[replies["code"].isna()]
    assert len(uncoded) == logged(r"\.\.\. User unknown") == 2
    assert uncoded["text"].str.endswith("... User unknown").all()
    assert uncoded["enhanced"].isna().all()


def test_a_refusal_is_paired_with_its_command_after_the_transactions_mail(frame) -> None:
    session = frame[frame["session"] == "sendmail-4"]
    rows = session[session["kind"].isin(["command", "reply"])]
    assert list(zip(rows["verb"], rows["argument"].fillna(""), strict=True)) == [
        ("MAIL", "FROM:<alice@example.net>"),
        ("RCPT", "TO:<someone@elsewhere.example>"),
        ("RCPT", ""),  # the reply row: it answers the RCPT
    ]
    reply = rows.iloc[-1]
    assert reply["reply_to"] == rows.iloc[1]["seq"] and reply["code"] == 550


def test_a_lost_connection_closes_by_the_client_and_others_have_no_made_up_end(frame) -> None:
    closes = frame[frame["kind"] == "close"]
    assert len(closes) == logged("lost input channel") == 1
    assert closes["sender"].item() == "client"
    # Connections are not logged at LogLevel 9: no time, no port, no greeting.
    connects = frame[frame["kind"] == "connect"]
    assert connects["time"].isna().all() and len(connects) == 10
    assert set(frame["client"]) == {"127.0.0.1", "127.0.0.2"}
    assert (frame["verb"] == "CONNECT").sum() == 10


def test_the_deferred_delivery_is_a_note_of_the_session_that_took_the_message(frame) -> None:
    notes = frame[(frame["kind"] == "note") & frame["text"].str.contains("stat=Deferred", na=False)]
    assert len(notes) == logged("stat=Deferred") == 1
    session = frame[frame["session"] == notes["session"].item()]
    assert "TO:<someone@slow.example>" not in set(session["argument"].dropna())  # not logged so
    assert session["text"].str.contains("to=<someone@slow.example>", na=False).any()


def test_sessions_and_transactions_say_what_sendmail_logged(frame) -> None:
    from smtplab.analysis import sessions, transactions

    table = sessions(frame)
    assert table["messages"].sum() == logged(r": from=<.*, msgid=")
    assert table["errors"].sum() == logged(r"reject=|\.\.\. User unknown")
    deals = transactions(frame)
    assert (deals["outcome"] == "delivered").sum() == logged(r": from=<.*, msgid=")
    assert (deals["outcome"] == "rejected at RCPT").sum() == logged(r"ruleset=check_rcpt")
    assert (deals["outcome"] == "rejected at MAIL").sum() == logged(r"ruleset=check_mail")
    # A refused MAIL is logged twice (its reject= line, then from=): one MAIL row.
    assert logged(r"from=<spammer@bad\.example>") == 1


def test_starttls_is_a_tls_row_before_the_transaction_it_protected(frame) -> None:
    tls = frame[frame["kind"] == "tls"]
    assert len(tls) == logged(r"STARTTLS=server, relay=") == 1
    session = frame[frame["session"] == tls["session"].item()]
    assert (session.loc[session["kind"] == "command", "tls"]).all()
    assert session["text"].str.contains("proto=ESMTPS", na=False).any()


# -- the same traffic in the capture -------------------------------------------------------------


def captured_all(capture: pd.DataFrame, replies: pd.DataFrame) -> pd.DataFrame:
    """All the capture's rows of the session of ``replies``."""
    return capture[capture["session"] == replies["session"].iloc[0]]


def test_the_log_agrees_with_the_capture_connection_by_connection(frame, capture) -> None:
    wire = capture[capture["kind"] == "reply"]
    ours = frame.groupby("session", observed=True, sort=False)
    theirs = wire.groupby("session", observed=True, sort=False)
    assert ours.ngroups == capture["session"].nunique()
    # In the order they came (the capture's sessions are numbered so; the log's by first line).
    for (_, log), (_, captured) in zip(ours, theirs, strict=True):
        assert log["client"].iloc[0] == captured["client"].iloc[0].rpartition(":")[0]
        refused = captured[captured["code"] >= 400]
        replies = log[log["kind"] == "reply"]
        assert len(refused) == len(replies)
        for (_, mine), (_, wired) in zip(replies.iterrows(), refused.iterrows(), strict=True):
            assert mine["verb"] == wired["verb"]
            if pd.notna(mine["code"]):  # a reject= line: the code and text on the wire
                assert (mine["code"], mine["enhanced"]) == (wired["code"], wired["enhanced"])
                assert mine["text"] == wired["text"]
            else:  # "User unknown": on the wire, 550 5.1.1 and the same words
                assert wired["code"] == 550 and mine["text"] in wired["text"]
        assert (log["kind"] == "tls").any() == (
            captured_all(capture, captured)["kind"] == "tls"
        ).any()
        if (log["kind"] == "tls").any():
            continue  # the capture is blind after STARTTLS: the rest is Sendmail's word only
        taken = ((captured["verb"] == "DATA-END") & (captured["code"] == 250)).sum()
        assert taken == (log["verb"] == "DATA").sum()


# -- formats and bad input ------------------------------------------------------------------------


def test_a_sendmail_log_is_told_from_its_content(tmp_path) -> None:
    renamed = tmp_path / "whatever.dat"
    shutil.copy(LOG, renamed)
    assert detect(renamed, renamed.read_bytes()) == "sendmail"
    assert read_quietly(renamed, format="sendmail")["session"].nunique() == 10


def test_debians_sm_mta_tag_and_rfc3339_stamps_are_read(tmp_path) -> None:
    log = tmp_path / "mail.log"
    log.write_text(
        "2026-12-05T22:33:42.123456+00:00 mx sm-mta[7]: 6B5MXg1k005478: ruleset=check_rcpt, "
        "arg1=<a@b.example>, relay=c.example [192.0.2.7], reject=550 5.7.1 <a@b.example>... "
        "Relaying denied\n"
        "2026-12-05T22:33:43+00:00 mx sm-mta[7]: 6B5MXg1k005478: from=<x@c.example>, size=0, "
        "class=0, nrcpts=0, proto=SMTP, daemon=MTA, relay=c.example [192.0.2.7]\n"
    )
    frame = read_quietly(log)
    assert frame["client"].iloc[0] == "192.0.2.7"
    assert frame["code"].dropna().tolist() == [550]
    assert str(frame["time"].dropna().iloc[0]) == "2026-12-05 22:33:42.123456+00:00"


def test_the_year_turns_in_a_log_that_spans_new_year(tmp_path) -> None:
    log = tmp_path / "mail.log"
    first, second = lines()[4], lines()[5]
    log.write_text(f"Dec 31{first[6:]}\nJan  1{second[6:]}\n")
    frame = read_quietly(log, year=2025)
    years = frame["time"].dropna().dt.year
    assert set(years) == {2025, 2026}


def test_garbled_lines_are_skipped_and_counted_in_one_warning(tmp_path) -> None:
    text = LOG.read_text().splitlines(keepends=True)
    damaged = tmp_path / "maillog"
    text.insert(5, "garbage that is no log line\n")
    text.insert(9, "Feb 30 22:33:42 mx sendmail[1]: 6B5MXg1k005478: from=<a@b>, relay=[1.2.3.4]\n")
    text.insert(len(text) - 2, "\x00\x01\x02 binary junk\n")
    damaged.write_text("".join(text))
    with pytest.warns(IngestWarning) as caught:
        frame = smtplab.read(damaged, format="sendmail", year=2026)  # junk in 4 KB: named
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "maillog: skipped 3 unreadable part(s)" in message
    assert "maillog line 6: not a syslog line" in message
    assert "maillog line 10: impossible timestamp" in message
    assert frame["session"].nunique() == 10


def test_another_format_read_as_sendmail_is_an_error_naming_the_file_and_line() -> None:
    with pytest.raises(IngestError, match=r"swaks\.txt line 1: not a Sendmail log line"):
        smtplab.read(FIXTURES / "swaks.txt", format="sendmail")
    with pytest.raises(IngestError, match=r"postfix\.log line 1: not a Sendmail log line"):
        smtplab.read(FIXTURES / "postfix.log", format="sendmail", year=2026)


def test_an_auth_identity_sendmail_logged_is_not_kept_in_clear(tmp_path) -> None:
    log = tmp_path / "maillog"
    log.write_text(
        "Dec  5 22:33:42 mx sendmail[9]: AUTH=server, relay=c.example [192.0.2.7], "
        "authid=alice.secret, mech=PLAIN, bits=0\n"
        "Dec  5 22:33:42 mx sendmail[9]: STARTTLS=server, relay=c.example [192.0.2.7], "
        "version=TLSv1.3, verify=NO, cipher=TLS_AES_256_GCM_SHA384, bits=256/256\n"
    )
    frame = read_quietly(log)
    text = " ".join(frame["text"].dropna())
    assert "authid=***" in text and "alice.secret" not in text
    assert (frame["kind"] == "tls").sum() == 1


def test_a_reject_text_with_commas_is_kept_whole(tmp_path) -> None:
    log = tmp_path / "maillog"
    log.write_text(
        "Dec  5 22:33:42 mx sendmail[9]: 6B5MXg1k000009: ruleset=check_mail, arg1=<a@b.example>, "
        "relay=c.example [192.0.2.7], reject=553 5.7.1 <a@b.example>... Rejected, listed at "
        "dnsbl.example, see its page\n"
    )
    reply = read_quietly(log).query("kind == 'reply'").iloc[0]
    assert (reply["verb"], reply["code"], reply["enhanced"]) == ("MAIL", 553, "5.7.1")
    assert reply["text"] == "<a@b.example>... Rejected, listed at dnsbl.example, see its page"


def test_lines_of_the_processes_that_deliver_a_message_are_notes_not_sessions(tmp_path) -> None:
    log = tmp_path / "maillog"
    head = "Dec  5 22:33:42 mx sendmail"
    log.write_text(
        f"{head}[9]: 6B5MXg1k000009: from=<a@b.example>, size=10, class=0, nrcpts=1, "
        "msgid=<m@b>, proto=ESMTP, daemon=MTA, relay=c.example [192.0.2.7]\n"
        f"{head}[10]: 6B5MXg1k000009: <d@e.example>... Connection refused by mx.e.example\n"
        f"{head}[10]: 6B5MXg1k000009: 6B5MXg1k000011: DSN: Service unavailable\n"
        f"{head}[12]: 6B5MXg1k000077: <old@e.example>... Deferred: Connection timed out\n"
        f"{head}[13]: 6B5MXg1k000078: SYSERR(root): collect: I/O error\n"
    )
    frame = read_quietly(log)
    assert frame["session"].nunique() == 1  # the queue runner's lines open no session
    notes = frame.loc[frame["kind"] == "note", "text"]
    assert notes.str.contains("Connection refused").any() and notes.str.contains("DSN:").any()
    assert not (frame["kind"] == "reply").any()
