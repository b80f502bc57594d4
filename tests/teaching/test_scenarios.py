"""Every teaching scenario: its exact replies and what the store holds afterwards."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

import smtplab
from smtplab.teaching.scenarios import SCENARIOS, run_scenario, scenario

HELLO = ["220", "250", "250 2.1.0"]  # greeting, EHLO, MAIL
BYE = ["221 2.0.0"]
DELIVERED = ["354", "250 2.0.0", *BYE]

EXPECTED = {
    "basic": [*HELLO, "250 2.1.5", *DELIVERED],
    "unknown-recipient": [*HELLO, "250 2.1.5", "550 5.1.1", *DELIVERED],
    "forwarding-251": [*HELLO, "251 2.1.5", *DELIVERED],
    "redirect-551": [*HELLO, "551 5.1.6", "250 2.1.5", *DELIVERED],
    "relay-denied": [*HELLO, "550 5.7.1", *BYE],
    "greylisting": [*HELLO, "451 4.7.1", *BYE, *HELLO, "250 2.1.5", *DELIVERED],
    "mailbox-full": [*HELLO, "452 4.2.2", *BYE, *HELLO, "250 2.1.5", "354", "552 5.2.2", *BYE],
    "message-too-large": [
        "220",
        "250",
        "552 5.3.4",
        *BYE,
        *HELLO,
        "250 2.1.5",
        "354",
        "552 5.3.4",
        *BYE,
    ],
    "too-many-recipients": HELLO
    + ["250 2.1.5"] * 100
    + ["452 4.5.3"] * 2
    + DELIVERED
    + HELLO
    + ["250 2.1.5"] * 2
    + DELIVERED,
    "server-shutdown": [*HELLO, "421 4.3.2", *HELLO, "250 2.1.5", *DELIVERED],
    "dropped-connection": [*HELLO, "250 2.1.5", "354", *HELLO, "250 2.1.5", *DELIVERED],
    "bare-lf-smuggling": [*HELLO, "250 2.1.5", "354", "554 5.6.0", *BYE],
    "vrfy-expn": [
        "220",
        "250",
        "250 2.1.5",
        "251 2.1.5",
        "551 5.1.6",
        "252 2.0.0",
        "550 5.1.1",
        "250 2.1.5",
        *BYE,
    ],
}

STORED = {  # (sender, recipients) of each stored message
    "basic": [("alice@example.net", ("bob@example.org",))],
    "unknown-recipient": [("alice@example.net", ("bob@example.org",))],
    "forwarding-251": [("alice@example.net", ("dave@example.org",))],
    "redirect-551": [("alice@example.net", ("erin@new.example",))],
    "greylisting": [("alice@example.net", ("bob@example.org",))],
    "too-many-recipients": [
        ("alice@example.net", tuple(f"user{n}@example.org" for n in range(1, 101))),
        ("alice@example.net", ("user101@example.org", "user102@example.org")),
    ],
    "server-shutdown": [("alice@example.net", ("bob@example.org",))],
    "dropped-connection": [("alice@example.net", ("bob@example.org",))],
}


def test_the_library_has_at_least_the_scenarios_the_course_needs() -> None:
    assert set(EXPECTED) == set(SCENARIOS)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_scenario_replies_and_store(name: str) -> None:
    run = run_scenario(name)
    assert run.replies == EXPECTED[name]
    stored = [(m.mail_from, m.recipients) for m in run.lab.messages]
    assert stored == STORED.get(name, [])
    for message in run.lab.messages:
        assert message.content.startswith(b"Received: ")


@pytest.mark.parametrize("name", ["forwarding-251", "redirect-551"])
def test_the_forward_path_is_in_the_reply_and_in_the_transcript(name: str) -> None:
    run = run_scenario(name)
    rcpt = run.transcript.query("kind == 'reply' and verb == 'RCPT'").iloc[0]
    target = "dave@elsewhere.example" if name == "forwarding-251" else "erin@new.example"
    assert f"<{target}>" in rcpt["text"]
    result = run.outcome
    assert (result.forwarded if name == "forwarding-251" else result.redirected) == {
        ("dave@example.org" if name == "forwarding-251" else "erin@example.org"): target
    }


def test_a_scenario_runs_the_same_every_time() -> None:
    pd.testing.assert_frame_equal(
        run_scenario("greylisting").transcript, run_scenario("greylisting").transcript
    )


def test_greylisting_retry_waits_in_virtual_time() -> None:
    frame = run_scenario("greylisting").transcript
    starts = frame.query("kind == 'connect'")["time"]
    assert (starts.iloc[1] - starts.iloc[0]).total_seconds() >= 300


def test_scenarios_are_listed_and_unknown_names_get_the_list() -> None:
    table = smtplab.scenarios()
    assert table["name"].tolist() == list(SCENARIOS)
    assert table["title"].str.len().min() > 20
    with pytest.raises(KeyError, match="greylisting"):
        scenario("greylist")
    assert run_scenario("basic")._repr_markdown_().startswith("**basic**")


def test_cli_lists_and_runs_scenarios() -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smtplab", *args], capture_output=True, text=True
        )

    listing = cli("scenarios")
    assert listing.returncode == 0
    assert len(listing.stdout.splitlines()) == len(SCENARIOS)
    assert "greylisting" in listing.stdout
    one = cli("scenario", "redirect-551")
    assert one.returncode == 0
    assert "551 5.1.6 User not local; please try <erin@new.example>" in one.stdout
    assert "Stored 1 message" in one.stdout
    wrong = cli("scenario", "nope")
    assert wrong.returncode == 2 and "smtplab scenarios" in wrong.stderr
