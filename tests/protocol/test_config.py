"""Server settings and the events made under them: what a policy does to one session's event
reaches no other session, parameters travel like dicts, settings copy and subclass cleanly."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import pytest

import smtplab
from smtplab.protocol import ServerConfig
from smtplab.protocol.commands import parse_command
from smtplab.protocol.config import DEFAULT_EXTENSIONS
from smtplab.protocol.events import MailFrom
from smtplab.server import Mailboxes


class ParamWriter(Mailboxes):
    """A policy that changes the event it is given, and notes what it saw first."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, str | None]] = []

    def on_mail(self, ctx, event: MailFrom):  # type: ignore[no-untyped-def]
        self.seen.append(dict(event.params))
        event.params["X-SEEN"] = "1"
        return super().on_mail(ctx, event)


def test_a_policy_that_changes_an_event_changes_no_other_session() -> None:
    policy = ParamWriter()
    lab = smtplab.Lab(policy)
    for _ in range(2):
        session = lab.connect()
        session.ehlo()
        assert session.mail("alice@example.net", SIZE="10").code == 250
        session.quit()
    assert policy.seen == [{"SIZE": "10"}, {"SIZE": "10"}]


def test_each_session_gets_its_own_envelope() -> None:
    lab = smtplab.Lab()
    results = [lab.send("alice@example.net", "bob@example.org", subject=str(n)) for n in range(3)]
    assert [r.accepted for r in results] == [["bob@example.org"]] * 3
    assert [m.recipients for m in lab.messages] == [("bob@example.org",)] * 3
    assert all(m.mail_params == {} for m in lab.messages)


@pytest.mark.parametrize("keyword", ["AUTH", "AUTH=LOGIN"])
def test_auth_keywords_are_not_offered_without_tls(keyword: str) -> None:
    """RFC 4954 4: AUTH only under TLS, the legacy AUTH= form included."""
    lab = smtplab.Lab(config=ServerConfig(extensions=frozenset({keyword, "PIPELINING"})))
    assert lab.connect().ehlo().lines[1:] == ["PIPELINING"]


def test_parameters_read_and_travel_like_a_dict() -> None:
    event = parse_command("MAIL FROM:<a@example.net> SIZE=10", DEFAULT_EXTENSIONS, True, None)
    assert event.params == {"SIZE": "10"} and json.dumps(event.params) == '{"SIZE": "10"}'
    assert pickle.loads(pickle.dumps(event)) == event == copy.deepcopy(event)
    assert dataclasses.asdict(event)["params"] == {"SIZE": "10"}
    refused = parse_command("MAIL TO:<a@example.net>", DEFAULT_EXTENSIONS, True, None)
    assert refused.error is not None and refused.params == {}


def test_a_used_config_copies_and_pickles_as_its_settings() -> None:
    lab = smtplab.Lab()
    lab.send("alice@example.net", "bob@example.org")
    for config in (copy.deepcopy(lab.config), pickle.loads(pickle.dumps(lab.config))):
        assert config == lab.config and config.ehlo_keywords() == lab.config.ehlo_keywords()
    assert copy.deepcopy(lab).send("alice@example.net", "bob@example.org").accepted


def test_config_subclasses_keep_working() -> None:
    @dataclasses.dataclass(frozen=True)
    class Plain(ServerConfig):
        def __post_init__(self) -> None:  # without super(): nothing normalised
            pass

    @dataclasses.dataclass(frozen=True)
    class WithXclient(ServerConfig):
        def ehlo_keywords(self) -> list[str]:
            return [*super().ehlo_keywords(), "XCLIENT NAME ADDR"]

    assert smtplab.Lab(config=Plain()).send("alice@example.net", "bob@example.org").accepted
    reply = smtplab.Lab(config=WithXclient()).connect().ehlo()
    assert reply.lines[-1] == "XCLIENT NAME ADDR"
