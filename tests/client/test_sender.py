"""Sending like a real client: 251 reported, 551 followed, 4xx retried with backoff."""

from __future__ import annotations

import pytest

import smtplab
from smtplab.client.sender import LOST, forward_path
from smtplab.server import Fault, Faults, Mailboxes


def test_251_forward_path_is_reported() -> None:
    lab = smtplab.Lab(Mailboxes(forwards={"dave": "dave@elsewhere.example"}))
    result = lab.send("alice@example.net", "dave@example.org")
    assert result.delivered and result.forwarded == {"dave@example.org": "dave@elsewhere.example"}
    rcpt = result.transcript.query("kind == 'reply' and verb == 'RCPT'").iloc[0]
    assert rcpt["code"] == 251 and "<dave@elsewhere.example>" in rcpt["text"]


def test_551_is_followed_only_when_asked() -> None:
    policy = Mailboxes(
        domains=["example.org", "new.example"],
        mailboxes=["alice", "erin@new.example"],
        moved={"erin@example.org": "erin@new.example"},
    )
    plain = smtplab.Lab(policy).send("alice@example.net", "erin@example.org")
    assert not plain.delivered and plain.refused["erin@example.org"].code == 551
    lab = smtplab.Lab(policy)
    result = lab.send("alice@example.net", "erin@example.org", follow_redirects=True)
    assert result.delivered and result.accepted == ["erin@new.example"]
    assert result.redirected == {"erin@example.org": "erin@new.example"}
    rcpts = result.transcript.query("kind == 'command' and verb == 'RCPT'")["argument"].tolist()
    assert rcpts == ["TO:<erin@example.org>", "TO:<erin@new.example>"]
    assert lab.messages[0].recipients == ("erin@new.example",)


def test_a_551_to_a_domain_the_server_does_not_host_is_refused_as_relaying_when_followed() -> None:
    """Following a 551 asks the same server; where it does not host the new address (the
    usual case: the client should go to that domain's MX), the second RCPT is relaying."""
    lab = smtplab.Lab(Mailboxes(moved={"erin": "erin@new.example"}))
    result = lab.send("alice@example.net", "erin@example.org", follow_redirects=True)
    assert result.redirected == {"erin@example.org": "erin@new.example"}
    assert not result.delivered
    refused = result.refused["erin@example.org"]
    assert (refused.code, refused.enhanced) == (550, "5.7.1")
    explanation = smtplab.scenario("redirect-551").explanation
    assert "hosts `new.example` too" in explanation and "MX" in explanation


def test_retries_pass_greylisting_in_virtual_time_with_doubling_delays() -> None:
    lab = smtplab.Lab(Mailboxes(greylist=500))
    result = lab.send("alice@example.net", "bob@example.org", retries=3, retry_delay=300)
    # Tries at 0 s, 300 s (too early) and 900 s (300 + 600): accepted on the third.
    assert result.delivered and result.attempts == 3
    starts = lab.transcript().query("kind == 'connect'")["time"]
    gaps = starts.diff().dt.total_seconds().round().tolist()[1:]
    assert gaps == [300, 600]
    assert [r.code for verb, r in result.replies if verb == "RCPT"] == [451, 451, 250]


def test_permanent_refusals_are_final_and_transients_stay_refused_after_the_last_try() -> None:
    lab = smtplab.Lab(Mailboxes(greylist=10_000))
    result = lab.send(
        "alice@example.net", ["bob@example.org", "nobody@example.org"], retries=1, retry_delay=60
    )
    assert result.attempts == 2
    assert result.refused["nobody@example.org"].code == 550
    assert result.refused["bob@example.org"].code == 451
    rcpts = lab.transcript().query("kind == 'command' and verb == 'RCPT'")["argument"].tolist()
    assert rcpts.count("TO:<nobody@example.org>") == 1


def test_a_lost_connection_is_transient_and_the_retry_delivers_exactly_once() -> None:
    lab = smtplab.Lab(Faults(Mailboxes(), [Fault.drop("DATA-END", times=1)]))
    result = lab.send("alice@example.net", "bob@example.org", retries=1, retry_delay=60)
    assert result.delivered and result.attempts == 2
    assert len(lab.messages) == 1
    assert all(reply is not LOST for _, reply in result.replies), "only real replies are logged"


def test_forward_path_reads_the_address_in_angle_brackets() -> None:
    reply = smtplab.Reply(551, "User not local; please try <erin@new.example>", "5.1.6")
    assert forward_path(reply) == "erin@new.example"
    assert forward_path(smtplab.Reply(551, "User not local")) is None


def test_bad_retry_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        smtplab.Lab().send("a@example.net", "bob@example.org", retries=-1)


def test_every_retry_sends_the_same_message() -> None:
    # carol's first try is deferred; bob gets the message at once, carol 5 minutes later.
    later = Fault.reply("RCPT", 451, "Try later", "4.3.0", address="carol@example.org", times=1)
    lab = smtplab.Lab(Faults(Mailboxes(), [later]))
    result = lab.send(
        "alice@example.net", ["bob@example.org", "carol@example.org"], retries=1, retry_delay=300
    )
    assert result.attempts == 2 and result.accepted == ["bob@example.org", "carol@example.org"]
    to_bob, to_carol = (m.message for m in lab.messages)
    # One message, one Message-ID and Date (RFC 5322 3.6.4): a receiver can spot duplicates.
    assert to_bob["Message-ID"] == to_carol["Message-ID"]
    assert to_bob["Date"] == to_carol["Date"]


def test_a_redirect_to_an_address_already_asked_for_is_not_added_twice() -> None:
    policy = Mailboxes(
        domains=["example.org", "new.example"],
        mailboxes=["alice", "erin@new.example"],
        moved={"erin@example.org": "erin@new.example"},
    )
    lab = smtplab.Lab(policy)
    result = lab.send(
        "a@example.net", ["erin@example.org", "erin@new.example"], follow_redirects=True
    )
    assert lab.messages[0].recipients == ("erin@new.example",)
    assert result.redirected == {"erin@example.org": "erin@new.example"}


def test_a_refused_redirect_is_reported_for_the_address_given() -> None:
    lab = smtplab.Lab(Mailboxes(moved={"erin": "erin@elsewhere.example"}))
    result = lab.send("a@example.net", "erin@example.org", follow_redirects=True)
    assert result.refused["erin@example.org"].code == 550  # the target is not relayed
    assert result.redirected == {"erin@example.org": "erin@elsewhere.example"}


def test_an_unsolicited_421_after_an_error_reply_does_not_hide_it() -> None:
    # error_limit: the 2nd error reply is followed by 421 4.7.0 and the close (as Postfix does).
    lab = smtplab.Lab(error_limit=2)
    result = lab.send("a@example.net", ["nobody@example.org", "ghost@example.org"], retries=1)
    assert result.refused["nobody@example.org"].code == 550
    assert result.refused["ghost@example.org"].code == 550, "the 550, not the 421 after it"
    assert result.attempts == 1, "550s are final: nothing to retry"
