"""The analysis layer on known transcripts: lab sessions, scenarios and the committed captures."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import smtplab
from smtplab.analysis import (
    code_distribution,
    latencies,
    oddities,
    sessions,
    steps,
    transactions,
)
from smtplab.log import Recorder, to_frame
from smtplab.protocol.config import DEFAULT_EXTENSIONS
from smtplab.protocol.events import Reply
from smtplab.server import Mailboxes

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def first_transaction() -> pd.DataFrame:
    """Issue 2's transaction: two recipients, one unknown."""
    lab = smtplab.Lab()
    lab.send("alice@example.net", ["bob@example.org", "nobody@example.org"])
    return lab.transcript()


@pytest.fixture(scope="module")
def scenarios() -> pd.DataFrame:
    return smtplab.concat(smtplab.run_scenario(n).transcript for n in smtplab.scenarios()["name"])


@pytest.fixture(scope="module")
def capture() -> pd.DataFrame:
    return smtplab.read(FIXTURES / "smtp.pcapng")


@pytest.fixture(scope="module")
def postfix_log() -> pd.DataFrame:
    return smtplab.read(FIXTURES / "postfix.log")


def test_code_distribution_of_the_first_transaction(first_transaction) -> None:
    # 220 250 250 250 550 354 250 221
    by_class = code_distribution(first_transaction)
    assert by_class.to_dict() == {"2xx": 6, "3xx": 1, "4xx": 0, "5xx": 1}
    assert code_distribution(first_transaction, "code").to_dict() == {
        220: 1,
        221: 1,
        250: 4,
        354: 1,
        550: 1,
    }
    assert code_distribution(first_transaction, "enhanced").to_dict() == {
        "2.0.0": 2,
        "2.1.0": 1,
        "2.1.5": 1,
        "5.1.1": 1,
    }
    by_command = code_distribution(first_transaction, "command")
    assert by_command.loc["RCPT"].to_dict() == {"2xx": 1, "3xx": 0, "4xx": 0, "5xx": 1}
    assert by_command.loc["DATA"].to_dict() == {"2xx": 0, "3xx": 1, "4xx": 0, "5xx": 0}
    assert by_command.index[0] == "RCPT"  # most replies first
    with pytest.raises(ValueError, match="by must be"):
        code_distribution(first_transaction, "colour")  # type: ignore[arg-type]


def test_latencies_on_the_virtual_clock(first_transaction) -> None:
    table = latencies(first_transaction)
    # The lab's server takes 0.2 ms to answer anything.
    assert set(table["median"].round(6)) == {0.2}
    assert table.loc["RCPT", "count"] == 2
    assert list(table.columns) == ["count", "median", "mean", "p90", "p99", "max"]


def test_steps_pair_each_command_with_its_reply(first_transaction) -> None:
    table = steps(first_transaction)
    assert table["verb"].tolist() == [
        "CONNECT",
        "EHLO",
        "MAIL",
        "RCPT",
        "RCPT",
        "DATA",
        "DATA-END",
        "QUIT",
    ]
    assert table["code"].tolist() == [220, 250, 250, 250, 550, 354, 250, 221]
    assert table["status"].tolist()[3:5] == ["accepted", "permanent"]
    assert not table["pipelined"].any()


def test_pipelined_groups_in_a_capture_and_in_the_lab(capture) -> None:
    # smtp-2 is swaks --pipe to Postfix: MAIL, RCPT, RCPT, DATA in one group (RFC 2920).
    table = steps(capture)
    group = table[table["session"] == "smtp-2"]
    assert group["pipelined"].tolist() == [False, False, False, True, True, True, False, False]
    assert group["group"].iloc[2:6].nunique() == 1

    lab = smtplab.Lab()
    session = lab.connect()
    session.ehlo()
    session.pipeline().mail("alice@example.net").rcpt("bob@example.org").data().send()
    session.message("Subject: hi\r\n\r\nhello\r\n")
    session.quit()
    live = steps(lab.transcript())
    assert live["pipelined"].tolist() == [False, False, False, True, True, False, False]


def test_postfix_fingerprints_match_the_log_itself(postfix_log) -> None:
    """The fingerprint computed from rows equals what Postfix wrote at disconnect."""
    table = sessions(postfix_log)
    logged = postfix_log[postfix_log["kind"] == "close"].set_index("session")["text"]
    for session, fingerprint in table["fingerprint"].items():
        assert logged[session] == f"disconnect {fingerprint}"


def test_capture_and_log_of_the_same_traffic_agree(capture, postfix_log) -> None:
    """The capture's sessions with Postfix (not hidden by TLS) fingerprint as the log does."""
    seen = sessions(capture)
    to_postfix = seen[(seen["server"] == "127.0.0.1:25") & (seen["outcome"] != "encrypted")]
    logged = sessions(postfix_log)
    plain = logged[~logged["fingerprint"].str.contains("starttls")]
    assert Counter(to_postfix["fingerprint"]) == Counter(plain["fingerprint"])
    assert len(to_postfix) == 5
    # Both know the rejected recipient's reply.
    assert (
        code_distribution(capture[capture["server"] == "127.0.0.1:25"], "enhanced")["5.1.1"]
        == code_distribution(postfix_log, "enhanced")["5.1.1"]
    )


def test_sessions_table(capture) -> None:
    table = sessions(capture)
    assert table.index.tolist() == [f"smtp-{n}" for n in range(1, 10)]
    assert table["outcome"].value_counts().to_dict() == {
        "delivered": 7,
        "encrypted": 2,
        "refused": 0,
        "rejected": 0,
        "deferred": 0,
        "no mail": 0,
        "aborted": 0,
    }
    chunked = table.loc["smtp-9"]
    assert chunked["fingerprint"] == "ehlo=1 mail=1 rcpt=1/2 bdat=3 quit=1 commands=7/8"
    assert chunked["messages"] == 1
    assert chunked["recipients"] == 1
    assert table.loc["smtp-3", "tls"]
    assert (table["duration"] > 0).all()
    assert table["start"].dt.tz is not None


def test_session_outcomes_of_the_scenarios(scenarios) -> None:
    outcome = sessions(scenarios)["outcome"].astype(str).to_dict()
    assert outcome["basic-1"] == "delivered"
    assert outcome["greylisting-1"] == "deferred"
    assert outcome["greylisting-2"] == "delivered"
    assert outcome["relay-denied-1"] == "rejected"
    assert outcome["dropped-connection-1"] == "aborted"
    assert outcome["vrfy-expn-1"] == "no mail"
    fingerprint = sessions(scenarios)["fingerprint"]
    # Postfix has no EXPN: it counts it as unknown (the fingerprint is Postfix's, to compare).
    assert fingerprint["vrfy-expn-1"] == "ehlo=1 vrfy=3/5 quit=1 unknown=1 commands=6/8"
    # Postfix counts DATA as failed when the message after it was refused.
    assert fingerprint["bare-lf-smuggling-1"] == "ehlo=1 mail=1 rcpt=1 data=0/1 quit=1 commands=4/5"


def test_refused_greeting() -> None:
    class Closed(Mailboxes):
        def on_connect(self, ctx):  # type: ignore[no-untyped-def]
            return Reply(554, "No SMTP service here", "5.3.2")

    lab = smtplab.Lab(Closed())
    session = lab.connect()
    session.quit()
    assert sessions(lab.transcript())["outcome"].tolist() == ["refused"]


def test_transactions_of_the_scenarios(scenarios) -> None:
    table = transactions(scenarios).set_index("session")
    basic = table.loc["basic-1"]
    assert (basic["mail_from"], basic["recipients"], basic["outcome"]) == (
        "alice@example.net",
        ["bob@example.org"],
        "delivered",
    )
    assert basic["size"] > 0
    grey = table.loc["greylisting-1"]
    assert (grey["outcome"], grey["stage"], grey["code"], grey["enhanced"]) == (
        "deferred",
        "RCPT",
        451,
        "4.7.1",
    )
    assert table.loc["relay-denied-1", "outcome"] == "rejected at RCPT"
    assert table.loc["message-too-large-1", "outcome"] == "rejected at MAIL"
    assert table.loc["bare-lf-smuggling-1", "outcome"] == "rejected at DATA"
    assert table.loc["dropped-connection-1", "outcome"] == "aborted"
    many = table.loc["too-many-recipients-1"]
    assert (many["accepted"], many["refused"]) == (100, 2)


def test_transactions_from_a_log_of_refusals(postfix_log) -> None:
    """The log's rejected RCPT, logged before the counted commands, joins its transaction."""
    table = transactions(postfix_log)
    assert len(table) == 7
    assert (table["outcome"] == "delivered").all()
    assert table["accepted"].tolist() == [1] * 7
    assert table["refused"].tolist() == [1, 1, 0, 1, 0, 1, 1]
    assert table.loc[0, "rejected"] == ["no-such-user@localhost"]


def test_transaction_abandoned_by_rset() -> None:
    lab = smtplab.Lab()
    session = lab.connect()
    session.ehlo()
    session.mail("alice@example.net")
    session.rcpt("bob@example.org")
    session.rset()
    session.mail("alice@example.net")
    session.rcpt("bob@example.org")
    session.data()
    session.message("Subject: again\r\n\r\nhi\r\n")
    session.quit()
    table = transactions(lab.transcript())
    assert table["outcome"].tolist() == ["aborted", "delivered"]
    assert table["transaction"].tolist() == [1, 2]


def test_no_oddities_in_well_behaved_traffic(scenarios, capture, postfix_log) -> None:
    for frame in (scenarios, capture, postfix_log, smtplab.read(FIXTURES / "swaks.txt")):
        assert oddities(frame).empty


def test_oddities_pipelining_without_the_extension() -> None:
    lab = smtplab.Lab()
    session = lab.connect()
    session.send_raw(b"HELO client.example.net\r\nMAIL FROM:<alice@example.net>\r\n")
    session.quit()
    found = oddities(lab.transcript())
    assert found["check"].tolist() == ["pipelining not offered", "group not ended"]
    assert (found["seq"] == 4).all()
    assert found["rfc"].tolist() == ["RFC 2920 3.1", "RFC 2920 3.1"]


def test_oddities_in_replies(first_transaction) -> None:
    class Odd(Mailboxes):
        def on_mail(self, ctx, event):  # type: ignore[no-untyped-def]
            return Reply(250, "class and code disagree", "4.1.0")

    lab = smtplab.Lab(Odd())
    lab.send("alice@example.net", ["bob@example.org"])
    found = oddities(lab.transcript())
    assert found["check"].tolist() == ["enhanced class"]
    assert "class 4 does not match" in found["detail"].iloc[0]

    # smtplab's server will not send a 250 to DATA (it answers 451 instead); a broken server
    # in a capture might. Rewrite the 354 as such a server would have sent it.
    broken = first_transaction.copy()
    broken.loc[(broken["kind"] == "reply") & (broken["verb"] == "DATA"), "code"] = 250
    found = oddities(broken)
    assert found["check"].tolist() == ["unexpected reply"]
    assert found["detail"].iloc[0] == (
        "DATA cannot be answered 250 (a positive reply it may get: 354)"
    )
    assert found["rfc"].iloc[0] == "RFC 5321 4.3.2"


def test_talking_before_the_greeting_is_flagged() -> None:
    """An early talker, as a capture records it: EHLO on the wire before the 220."""
    recorder = Recorder("capture-1", source="pcap")
    recorder.connect(0.0)
    recorder.command(0.001, "EHLO", "eager.example.net")
    recorder.reply(0.5, Reply(220, "mx.example.org ESMTP"))
    recorder.reply(0.501, Reply(250, "mx.example.org"))
    found = oddities(to_frame(recorder.rows))
    assert found["check"].tolist() == ["talked before greeting"]
    assert found["seq"].tolist() == [1]


def test_simulated_traffic_is_reproducible_and_mixed() -> None:
    first = smtplab.simulate(60, seed=7)
    again = smtplab.simulate(60, seed=7)
    pd.testing.assert_frame_equal(first, again)
    assert first["session"].nunique() >= 60
    other = smtplab.simulate(60, seed=8)
    assert not first["text"].equals(other["text"])
    big = smtplab.simulate(200)
    codes = set(code_distribution(big, "code").index)
    # The mix the module promises: greylisting, full mailbox, unknown user, moved, relay.
    assert {250, 251, 354, 451, 452, 550, 551} <= codes
    outcomes = sessions(big)["outcome"].value_counts()
    assert outcomes["delivered"] > outcomes["deferred"] > 0 and outcomes["rejected"] > 0
    assert oddities(big).empty


# Found in review: each of these once gave a wrong table.

POSTFIX_LOG = """\
Nov 29 02:00:00 vm postfix/smtpd[100]: connect from unknown[127.0.0.1]
Nov 29 02:00:01 vm postfix/smtpd[100]: lost connection after DATA (0 bytes) from unknown[127.0.0.1]
Nov 29 02:00:01 vm postfix/smtpd[100]: disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 \
data=0/1 commands=3/4
Nov 29 02:00:02 vm postfix/smtpd[100]: connect from unknown[127.0.0.1]
Nov 29 02:00:03 vm postfix/smtpd[100]: disconnect from unknown[127.0.0.1] ehlo=1 auth=0/1 quit=1 \
commands=2/3
Nov 29 02:00:04 vm postfix/smtpd[100]: connect from unknown[127.0.0.1]
Nov 29 02:00:05 vm postfix/smtpd[100]: disconnect from unknown[127.0.0.1] ehlo=1 mail=2 rcpt=2 \
data=2 quit=1 commands=8
Nov 29 02:00:06 vm postfix/smtpd[100]: connect from unknown[127.0.0.1]
Nov 29 02:00:07 vm postfix/smtpd[100]: disconnect from unknown[127.0.0.1] ehlo=1 quit=1 \
unknown=0/3 commands=2/5
Nov 29 02:00:08 vm postfix/smtpd[100]: connect from unknown[127.0.0.1]
Nov 29 02:00:09 vm postfix/smtpd[100]: NOQUEUE: reject: CONNECT from unknown[127.0.0.1]: 554 5.7.1 \
<unknown[127.0.0.1]>: Client host rejected: Access denied; proto=SMTP
Nov 29 02:00:09 vm postfix/smtpd[100]: disconnect from unknown[127.0.0.1] quit=1 commands=1
Nov 29 02:00:10 vm postfix/smtpd[100]: connect from unknown[127.0.0.1]
Nov 29 02:00:10 vm postfix/smtpd[100]: disconnect from unknown[127.0.0.1] ehlo=1 starttls=1 \
commands=2
Nov 29 02:00:20 vm postfix/smtpd[100]: connect from unknown[127.0.0.1]
Nov 29 02:00:21 vm postfix/smtpd[100]: 4A1B2C3D4E: client=unknown[127.0.0.1]
Nov 29 02:00:21 vm postfix/smtpd[100]: 4A1B2C3D4E: reject: END-OF-MESSAGE from \
unknown[127.0.0.1]: 550 5.7.1 Message rejected; from=<a@example.net> to=<b@example.org> \
proto=ESMTP helo=<x>
Nov 29 02:00:21 vm postfix/smtpd[100]: disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 \
data=0/1 quit=1 commands=4/5
"""


def test_log_refusals_without_a_reject_line(tmp_path) -> None:
    """Postfix counts refusals it logs no reply for (lost connection, failed AUTH, unknown
    commands); the fingerprint from rows must still equal the logged one."""
    path = tmp_path / "maillog"
    path.write_text(POSTFIX_LOG.replace("\\\n", ""))
    log = smtplab.read(path, year=2026)
    table = sessions(log)
    logged = log[log["kind"] == "close"].set_index("session")["text"]
    for session, fingerprint in table["fingerprint"].items():
        assert logged[session] == f"disconnect {fingerprint}"
    assert table["outcome"].tolist() == [
        "aborted",  # lost connection after DATA
        "no mail",
        "delivered",
        "no mail",
        "refused",  # reject: CONNECT, Postfix's refused greeting
        "aborted",  # a log sees past STARTTLS: not "encrypted"
        "rejected",  # reject: END-OF-MESSAGE
    ]
    mail = transactions(log)
    assert mail["outcome"].tolist() == [
        "aborted",
        "delivered",
        "delivered",  # mail=2 data=2: two transactions
        "rejected at DATA",
    ]
    assert oddities(log).empty  # the greeting's and the message's refusals answer something


def test_sessions_of_a_filtered_frame() -> None:
    traffic = smtplab.simulate(40)
    chosen = ["mx-3", "mx-5", "mx-7"]
    part = traffic[traffic["session"].isin(chosen)]  # unused categories stay
    table = sessions(part)
    assert table.index.tolist() == chosen
    assert table.equals(sessions(traffic).loc[chosen])


def test_an_auth_exchange_is_one_command() -> None:
    lab = smtplab.Lab(
        Mailboxes(users={"alice": "secret"}),
        smtplab.ServerConfig(extensions=DEFAULT_EXTENSIONS | {"AUTH"}, auth_without_tls=True),
    )
    session = lab.connect()
    session.ehlo()
    assert session.send("AUTH LOGIN").code == 334
    assert session.send("YWxpY2U=").code == 334  # alice
    assert session.send("c2VjcmV0").code == 235  # secret
    session.quit()
    table = sessions(lab.transcript())
    assert table["fingerprint"].iloc[0] == "ehlo=1 auth=1 quit=1 commands=3"
    assert table["commands"].iloc[0] == 3
    paired = steps(lab.transcript())
    assert paired.loc[paired["verb"] == "AUTH", "code"].tolist() == [235]


def test_a_refused_nested_mail_leaves_the_transaction_alone() -> None:
    lab = smtplab.Lab()
    session = lab.connect()
    session.ehlo()
    session.send("MAIL FROM:<alice@example.net>")
    assert session.send("MAIL FROM:<eve@example.net>").code == 503  # nested: RFC 5321 4.1.1.2
    session.send("RCPT TO:<bob@example.org>")
    session.send("DATA")
    session.send_raw(b"Subject: one\r\n\r\nhi\r\n.\r\n")
    session.quit()
    table = transactions(lab.transcript())
    assert table["outcome"].tolist() == ["delivered"]
    assert table["recipients"].tolist() == [["bob@example.org"]]


def test_out_of_sequence_commands_alone_are_not_rejected_mail() -> None:
    lab = smtplab.Lab()
    session = lab.connect()
    session.ehlo()
    assert session.send("RCPT TO:<bob@example.org>").code == 503
    session.quit()
    assert sessions(lab.transcript())["outcome"].tolist() == ["no mail"]


def test_empty_frames_give_empty_tables(first_transaction) -> None:
    empty = first_transaction.iloc[:0]
    assert sessions(empty).empty and transactions(empty).empty and oddities(empty).empty
    assert steps(empty).empty
    replies_only = first_transaction[first_transaction["kind"] == "reply"]
    assert transactions(replies_only).empty
    assert code_distribution(empty).sum() == 0


def test_concat_keeps_sessions_of_the_same_name_apart() -> None:
    basic = smtplab.run_scenario("basic").transcript
    both = smtplab.concat([basic, basic])
    table = sessions(both)
    assert table.index.tolist() == ["basic-1", "basic-1~2"]
    assert (table["fingerprint"] == "ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5").all()
