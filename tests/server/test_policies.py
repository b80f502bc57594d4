"""The declarative lab server: forwarding (251), redirects (551), lists, relay, greylisting, room.

Each test drives a real in-process session and checks the exact reply codes and enhanced codes.
"""

from __future__ import annotations

import pytest

import smtplab
from smtplab.server import Mailboxes
from tests.conftest import codes

MESSAGE = "Subject: test\n\nhello\n"


def rcpt_replies(policy: Mailboxes, *addresses: str) -> list[str]:
    session = smtplab.Lab(policy).connect()
    session.ehlo()
    session.mail("alice@example.net")
    return codes([session.rcpt(a) for a in addresses])


def test_forwarding_is_251_with_the_forward_path_and_the_message_is_accepted() -> None:
    # RFC 5321 3.4: "251 User not local; will forward to <forward-path>".
    lab = smtplab.Lab(Mailboxes(forwards={"dave": "dave@elsewhere.example"}))
    session = lab.connect()
    session.ehlo()
    session.mail("alice@example.net")
    reply = session.rcpt("Dave@example.org")
    assert (reply.code, reply.enhanced) == (251, "2.1.5")
    assert reply.text == "User not local; will forward to <dave@elsewhere.example>"
    session.data()
    assert session.message(MESSAGE).code == 250
    assert lab.messages[0].recipients == ("Dave@example.org",)


def test_moved_user_is_551_with_the_address_to_try() -> None:
    replies = rcpt_replies(Mailboxes(moved={"erin": "erin@new.example"}), "erin@example.org")
    assert replies == ["551 5.1.6"]


def test_relay_refusal_code_is_a_setting_and_relay_domains_are_accepted() -> None:
    # RFC 5321 3.6.2: "If it declines to relay ... for policy reasons, a 550 response SHOULD
    # be returned"; Postfix says 554 (relay_domains_reject_code), a setting away.
    assert rcpt_replies(Mailboxes(), "x@elsewhere.example") == ["550 5.7.1"]
    assert rcpt_replies(Mailboxes(relay_code=554), "x@elsewhere.example") == ["554 5.7.1"]
    relaying = Mailboxes(relay_domains=["partner.example"])
    assert rcpt_replies(relaying, "x@partner.example", "x@other.example") == [
        "250 2.1.5",
        "550 5.7.1",
    ]
    with pytest.raises(ValueError, match="550 or 554"):
        Mailboxes(relay_code=451)


def test_aliases_lists_and_mailboxes_in_every_local_domain() -> None:
    policy = Mailboxes(
        domains=["example.org", "example.com"],
        aliases={"info": "alice"},
        lists={"staff": ["alice", "bob@example.org"]},
    )
    replies = rcpt_replies(policy, "info@example.com", "staff@example.org", "bob@example.com")
    assert replies == ["250 2.1.5"] * 3
    assert rcpt_replies(policy, "nobody@example.com") == ["550 5.1.1"]
    assert policy.mailbox_of("INFO@example.org") == "alice"


def test_unknown_user_gets_550_before_greylisting_and_only_once() -> None:
    # Postfix's order: reject_unlisted_recipient comes before the greylisting policy service.
    assert rcpt_replies(Mailboxes(greylist=300), "nobody@example.org") == ["550 5.1.1"]


def test_greylisting_refuses_a_new_triplet_then_accepts_its_retry_after_the_delay() -> None:
    lab = smtplab.Lab(Mailboxes(greylist=300))

    def attempt() -> str:
        session = lab.connect()
        session.ehlo()
        session.mail("alice@example.net")
        reply = session.rcpt("bob@example.org")
        session.quit()
        return f"{reply.code} {reply.enhanced}"

    assert attempt() == "451 4.7.1"
    lab.clock.advance(120)
    assert attempt() == "451 4.7.1", "too early: still greylisted"
    lab.clock.advance(181)
    assert attempt() == "250 2.1.5", "300 s after the first try"
    # Another sender is another triplet, and another client address too.
    other = lab.connect(client_address="198.51.100.7")
    other.ehlo()
    other.mail("alice@example.net")
    assert other.rcpt("bob@example.org").code == 451


def test_a_full_mailbox_is_452_at_rcpt() -> None:
    assert rcpt_replies(Mailboxes(full=["carol"]), "carol@example.org") == ["452 4.2.2"]
    with pytest.raises(ValueError, match="not one of the mailboxes"):
        Mailboxes(full=["zed"])


def test_quota_refuses_a_message_that_does_not_fit_with_552_then_452_when_used_up() -> None:
    lab = smtplab.Lab(Mailboxes(quotas={"bob": 2000}))
    big = lab.send("alice@example.net", "bob@example.org", body="x" * 3000)
    assert (big.reply.code, big.reply.enhanced) == (552, "5.2.2")
    assert lab.messages == []
    fits = lab.send("alice@example.net", "bob@example.org", body="y" * 1000)
    assert fits.delivered
    assert lab.policy.quotas["bob"] < 1000  # type: ignore[attr-defined]
    again = lab.send("alice@example.net", "bob@example.org", body="z" * 1000)
    assert (again.reply.code, again.reply.enhanced) == (552, "5.2.2")
    lab.policy.quotas["bob"] = 0  # type: ignore[attr-defined]
    assert rcpt_replies(lab.policy, "bob@example.org") == ["452 4.2.2"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("bob", "250 2.1.5"),  # RFC 5321 3.5.1: the reply names the mailbox
        ("info", "250 2.1.5"),
        ("dave", "251 2.1.5"),
        ("erin", "551 5.1.6"),
        ("staff", "252 2.0.0"),
        ("nobody", "550 5.1.1"),
        ("someone@elsewhere.example", "252 2.0.0"),
    ],
)
def test_vrfy_answers_as_rfc_5321_3_5_describes(argument: str, expected: str) -> None:
    policy = Mailboxes(
        aliases={"info": "alice"},
        lists={"staff": ["alice", "bob"]},
        forwards={"dave": "dave@elsewhere.example"},
        moved={"erin": "erin@new.example"},
    )
    session = smtplab.Lab(policy).connect()
    session.ehlo()
    assert codes([session.vrfy(argument)]) == [expected]


def test_expn_lists_members_one_per_line_and_is_502_without_lists() -> None:
    session = smtplab.Lab(Mailboxes(lists={"staff": ["alice", "bob"]})).connect()
    session.ehlo()
    reply = session.expn("staff")
    assert (reply.code, reply.lines) == (250, ["<alice@example.org>", "<bob@example.org>"])
    assert codes([session.expn("bob"), session.expn("nobody")]) == ["550 5.1.0", "550 5.1.1"]
    plain = smtplab.Lab().connect()
    plain.ehlo()
    assert codes([plain.expn("staff")]) == ["502 5.5.1"]


def test_a_quota_is_charged_once_per_mailbox_and_only_for_stored_messages(tmp_path) -> None:
    policy = Mailboxes(aliases={"robert": "bob"}, quotas={"bob": 10_000})
    lab = smtplab.Lab(policy)
    result = lab.send("a@example.net", ["bob@example.org", "robert@example.org"], body="x" * 100)
    assert result.delivered
    size = lab.transcript().query("kind == 'data'")["size"].iloc[0]
    assert policy.quotas["bob"] == 10_000 - size  # bob and his alias: one mailbox, one charge

    class Broken(smtplab.MemoryStore):
        def _keep(self, message):  # type: ignore[no-untyped-def]
            raise OSError("disk full")

    failing = smtplab.Lab(Mailboxes(quotas={"bob": 10_000}), store=Broken())
    assert failing.send("a@example.net", "bob@example.org").reply.code == 451
    assert failing.policy.quotas["bob"] == 10_000  # type: ignore[attr-defined]


def test_a_declared_size_over_the_quota_is_refused_at_rcpt_for_that_recipient_only() -> None:
    session = smtplab.Lab(Mailboxes(quotas={"bob": 1000})).connect()
    session.ehlo()
    session.mail("a@example.net", SIZE="5000")
    assert codes([session.rcpt("bob@example.org"), session.rcpt("alice@example.org")]) == [
        "452 4.2.2",
        "250 2.1.5",
    ]
