"""The transaction every user starts with, end to end, and its transcript DataFrame."""

from __future__ import annotations

import pandas as pd
import pytest

import smtplab
from smtplab.log.schema import COLUMNS


@pytest.fixture
def lab_and_result():
    lab = smtplab.Lab()
    result = lab.send("alice@example.net", ["bob@example.org", "nobody@example.org"], subject="Hi")
    return lab, result


def test_reply_codes_of_the_first_transaction(lab_and_result) -> None:
    lab, result = lab_and_result
    frame = lab.transcript()
    replies = frame[frame["kind"] == "reply"]
    assert replies["code"].tolist() == [220, 250, 250, 250, 550, 354, 250, 221]
    assert replies["verb"].tolist() == [
        "CONNECT",
        "EHLO",
        "MAIL",
        "RCPT",
        "RCPT",
        "DATA",
        "DATA-END",
        "QUIT",
    ]
    assert replies["enhanced"].astype("string").tolist()[2:] == [
        "2.1.0",
        "2.1.5",
        "5.1.1",
        pd.NA,
        "2.0.0",
        "2.0.0",
    ]
    assert result.accepted == ["bob@example.org"]
    assert list(result.refused) == ["nobody@example.org"]
    assert result.delivered and result.reply.code == 250


def test_columns_and_dtypes(lab_and_result) -> None:
    frame = lab_and_result[0].transcript()
    assert list(frame.columns) == list(COLUMNS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == COLUMNS
    assert frame["seq"].tolist() == list(range(len(frame)))
    assert set(frame["kind"]) == {"connect", "command", "reply", "data", "close"}
    assert (frame["source"] == "lab").all()
    assert not frame["tls"].any()


def test_reply_to_pairs_each_reply_with_its_command(lab_and_result) -> None:
    frame = lab_and_result[0].transcript().set_index("seq")
    replies = frame[frame["kind"] == "reply"]
    for seq, reply in replies.iterrows():
        asked = frame.loc[reply["reply_to"]]
        assert asked["verb"] == reply["verb"], f"reply {seq} answers {asked['verb']}"
        assert asked["kind"] in ("connect", "command", "data")
        assert reply["latency"] == pytest.approx(
            (reply["time"] - asked["time"]).total_seconds(), abs=1e-6
        )
        assert reply["latency"] >= 0
    data_row = frame[frame["kind"] == "data"].iloc[0]
    assert data_row["size"] > 100 and data_row["lines"] >= 6
    assert data_row["text"].startswith("Date:")


def test_message_is_stored_with_a_received_header(lab_and_result) -> None:
    lab, result = lab_and_result
    [stored] = lab.messages
    assert stored.recipients == ("bob@example.org",)
    assert stored.id in result.reply.text
    assert stored.content.startswith(b"Received: from client.example.net")
    assert stored.message["Subject"] == "Hi"
    assert lab.store.frame()["subject"].tolist() == ["Hi"]


def test_transcripts_are_deterministic() -> None:
    def run() -> pd.DataFrame:
        lab = smtplab.Lab()
        lab.send("alice@example.net", ["bob@example.org"])
        lab.send("carol@example.net", ["alice@example.org"])
        return lab.transcript()

    pd.testing.assert_frame_equal(run(), run())


def test_several_sessions_in_one_frame_and_concat() -> None:
    lab = smtplab.Lab()
    for sender in ("a@example.net", "b@example.net", "c@example.net"):
        lab.send(sender, ["bob@example.org"])
    frame = lab.transcript()
    assert frame["session"].cat.categories.tolist() == ["lab-1", "lab-2", "lab-3"]
    assert frame.groupby("session", observed=True)["seq"].min().tolist() == [0, 0, 0]
    other = smtplab.Lab(name="other")
    other.send("x@example.net", "alice@example.org")
    both = smtplab.concat([frame, other.transcript()])
    assert str(both["session"].dtype) == "category"
    assert both["session"].nunique() == 4


def test_step_by_step_session() -> None:
    lab = smtplab.Lab()
    s = lab.connect()
    assert s.greeting.code == 220
    assert s.ehlo().code == 250
    assert "PIPELINING" in s.extensions
    assert s.mail("alice@example.net").code == 250
    assert s.rcpt("nobody@example.org").code == 550
    with pytest.raises(smtplab.LocalProtocolError, match="accepted recipient"):
        s.data()
    assert s.send("DATA").code == 554  # sent anyway: the server's answer
    assert s.rcpt("bob@example.org").code == 250
    assert s.data().code == 354
    assert s.message("Subject: steps\n\nhello\n").code == 250
    assert s.quit().code == 221
    assert s.closed
    with pytest.raises(smtplab.LocalProtocolError, match="closed"):
        s.noop()
    verbs = s.transcript.query("kind == 'command'")["verb"].tolist()
    assert verbs == ["EHLO", "MAIL", "RCPT", "DATA", "RCPT", "DATA", "QUIT"]


def test_send_raw_shows_what_the_server_does_with_bare_lf() -> None:
    lab = smtplab.Lab(line_endings="normalize")
    s = lab.connect()
    replies = s.send_raw(b"NOOP\nNOOP\r\n")
    assert [r.code for r in replies] == [250, 250]
    strict = smtplab.Lab().connect()
    assert [r.code for r in strict.send_raw(b"NOOP\nNOOP\r\n")] == [500, 250]


def test_client_dropping_mid_data_leaves_nothing() -> None:
    lab = smtplab.Lab()
    s = lab.connect()
    s.ehlo()
    s.mail("alice@example.net")
    s.rcpt("bob@example.org")
    s.data()
    s.send_raw(b"Subject: lost\r\n\r\nnever finished")
    s.close()
    assert lab.messages == []
    assert s.transcript["kind"].iloc[-1] == "close"


def test_policy_bug_becomes_451_not_a_crash() -> None:
    class Broken(smtplab.Policy):
        def on_rcpt(self, ctx, event):
            raise RuntimeError("database down")

    lab = smtplab.Lab(Broken())
    result = lab.send("a@example.net", ["bob@example.org"])
    assert result.refused["bob@example.org"].code == 451
    notes = lab.transcript().query("kind == 'note'")["text"].tolist()
    assert any("database down" in n for n in notes)


def test_auth_credentials_never_reach_a_row() -> None:
    from smtplab.log.recorder import Recorder

    rec = Recorder("x")
    rec.command(0.0, "AUTH", "PLAIN AGFsaWNlAHNlY3JldA==")
    assert rec.rows[0].argument == "PLAIN ***"


def test_row_fields_are_the_schema_columns_in_order() -> None:
    # The recorder stores plain tuples in Row's order and the frame builder zips them by
    # position: the three must agree.
    from smtplab.log.recorder import Row

    assert Row._fields == tuple(COLUMNS)


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"network_delay": -0.001}, "network delay"), ({"processing_time": -1}, "processing time")],
)
def test_negative_lab_times_are_refused(setting, message) -> None:
    with pytest.raises(ValueError, match=message):
        smtplab.Lab(**setting).connect()
