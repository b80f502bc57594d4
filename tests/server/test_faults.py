"""Fault injection: override, delay, drop or shut down at any stage, reproducibly."""

from __future__ import annotations

import pytest

import smtplab
from smtplab.server import Fault, Faults, Mailboxes

MESSAGE = "Subject: test\n\nhello\n"


def lab_with(*faults: Fault, seed: int = 0) -> smtplab.Lab:
    return smtplab.Lab(Faults(Mailboxes(), faults, seed=seed))


def test_a_reply_fault_overrides_one_address_only_and_leaves_a_note() -> None:
    lab = lab_with(Fault.reply("RCPT", 450, "Mailbox busy", "4.2.1", address="bob@example.org"))
    result = lab.send("alice@example.net", ["bob@example.org", "carol@example.org"])
    assert result.accepted == ["carol@example.org"]
    assert (result.refused["bob@example.org"].code, result.refused["bob@example.org"].enhanced) == (
        450,
        "4.2.1",
    )
    notes = lab.transcript().query("kind == 'note'")["text"].tolist()
    assert notes == ["fault: answer '450 4.2.1 Mailbox busy' at RCPT for <bob@example.org>"]


def test_nth_counts_each_stage_within_a_session() -> None:
    lab = lab_with(Fault.reply("RCPT", 452, "Too many", "4.5.3", nth=2))
    result = lab.send(
        "a@example.net", ["alice@example.org", "bob@example.org", "carol@example.org"]
    )
    assert result.accepted == ["alice@example.org", "carol@example.org"]
    assert result.refused["bob@example.org"].code == 452


def test_a_delay_fault_delays_the_reply_in_virtual_time() -> None:
    lab = lab_with(Fault.delay("DATA-END", 30))
    assert lab.send("a@example.net", "bob@example.org").delivered
    frame = lab.transcript()
    dot = frame.query("kind == 'reply' and verb == 'DATA-END'").iloc[0]
    assert dot["code"] == 250
    assert dot["latency"] == pytest.approx(30.0002)


def test_shutdown_answers_421_and_closes_and_nothing_is_stored() -> None:
    # RFC 5321 3.8: a server shutting down may answer any command with 421 and close.
    lab = lab_with(Fault.shutdown("DATA-END"))
    session = lab.connect()
    session.ehlo()
    session.mail("a@example.net")
    session.rcpt("bob@example.org")
    session.data()
    reply = session.message(MESSAGE)
    assert (reply.code, reply.enhanced) == (421, "4.3.2")
    assert session.closed
    assert lab.messages == []
    assert lab.transcript()["kind"].iloc[-1] == "close"


def test_drop_closes_without_a_reply_mid_transaction() -> None:
    lab = lab_with(Fault.drop("DATA"))
    session = lab.connect()
    session.ehlo()
    session.mail("a@example.net")
    session.rcpt("bob@example.org")
    with pytest.raises(smtplab.LocalProtocolError, match="without replying"):
        session.data()
    last = lab.transcript().iloc[-1]
    assert (last["kind"], last["sender"]) == ("close", "server")
    assert "dropped" in last["text"]


def test_a_dropped_greeting_leaves_the_session_without_one() -> None:
    lab = lab_with(Fault.drop("CONNECT"))
    session = lab.connect()
    assert session.greeting is None and session.closed


def test_random_faults_are_reproducible_with_a_seed_and_times_limits_them() -> None:
    def refused(seed: int) -> list[str]:
        lab = lab_with(Fault.reply("RCPT", 451, "later", "4.3.0", probability=0.5), seed=seed)
        rcpts = [f"{n}@example.org" for n in ("alice", "bob", "carol", "postmaster")] * 3
        return sorted(lab.send("a@example.net", rcpts).refused)

    assert refused(7) == refused(7)
    assert any(refused(seed) != refused(7) for seed in range(8))
    lab = lab_with(Fault.shutdown("MAIL", times=1))
    assert not lab.send("a@example.net", "bob@example.org").delivered
    assert lab.send("a@example.net", "bob@example.org").delivered


def test_a_fault_that_breaks_the_protocol_becomes_451() -> None:
    lab = lab_with(Fault.reply("DATA", 250, "sure"))  # DATA must be answered 354 or an error
    session = lab.connect()
    session.ehlo()
    session.mail("a@example.net")
    session.rcpt("bob@example.org")
    assert session.data().code == 451
    notes = lab.transcript().query("kind == 'note'")["text"].tolist()
    assert any("cannot answer DATA" in note for note in notes)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Fault("RCPT", "explode"), "unknown fault action"),
        (lambda: Fault.reply("RCPT", 451, probability=2), "between 0 and 1"),
        (lambda: Fault.delay("RCPT", -1), "negative"),
        (lambda: Fault.drop("RCPT", nth=0), "from 1"),
        (lambda: Fault.drop("RCPT", command=0), "from 1"),
    ],
)
def test_bad_faults_are_refused_clearly(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_command_counts_every_command_of_the_session_whatever_its_verb() -> None:
    # EHLO is command 1, MAIL 2, RCPT 3 and 4: shut down at the 4th command.
    lab = lab_with(Fault.shutdown("*", command=4))
    result = lab.send("a@example.net", ["alice@example.org", "bob@example.org"])
    assert result.refused["bob@example.org"].code == 421
    assert lab.transcript().query("kind == 'note'")["text"].tolist() == [
        "fault: answer '421 4.3.2 Service not available, closing transmission channel' "
        "at * (the session's 4th command)"
    ]


def test_command_counts_include_commands_the_protocol_rejected() -> None:
    lab = lab_with(Fault.shutdown("*", command=3))
    session = lab.connect()
    session.ehlo()  # 1
    assert session.send("FOO bar").code == 500  # 2: rejected by the protocol, still counted
    assert session.mail("a@example.net").code == 421  # 3


def test_a_faults_policy_shared_by_two_labs_counts_each_session_apart() -> None:
    policy = Faults(Mailboxes(), [Fault.reply("RCPT", 452, "Too many", "4.5.3", nth=2)])
    for lab in (smtplab.Lab(policy), smtplab.Lab(policy)):  # both have a session "lab-1"
        result = lab.send("a@example.net", ["alice@example.org", "bob@example.org"])
        assert result.accepted == ["alice@example.org"]
        assert result.refused["bob@example.org"].code == 452


def test_a_connect_fault_that_is_no_greeting_becomes_421() -> None:
    # RFC 5321 3.1: a greeting is 220, 421 or 554; anything else is the fault's mistake.
    session = lab_with(Fault.reply("CONNECT", 250, "hi")).connect()
    assert session.greeting is not None and session.greeting.code == 421
