"""The server remembers parsed command lines per configuration (a speed-up): nothing about a
session may leak into another through it, and what it keeps stays small and secret-free."""

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
    """A policy that tries to change the event it is given, and notes what it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, str | None]] = []
        self.refused: list[str] = []

    def on_mail(self, ctx, event: MailFrom):  # type: ignore[no-untyped-def]
        self.seen.append(dict(event.params))
        try:
            event.params["X-SEEN"] = "1"  # type: ignore[index]
        except TypeError as exc:
            self.refused.append(str(exc))
        return super().on_mail(ctx, event)


def test_a_policy_cannot_change_an_event_another_session_gets() -> None:
    policy = ParamWriter()
    lab = smtplab.Lab(policy)
    for _ in range(2):
        session = lab.connect()
        session.ehlo()
        assert session.mail("alice@example.net", SIZE="10").code == 250
        session.quit()
    assert policy.seen == [{"SIZE": "10"}, {"SIZE": "10"}]
    assert len(policy.refused) == 2  # the parameters are read-only, like the event


def test_each_session_gets_its_own_envelope_from_a_shared_event() -> None:
    lab = smtplab.Lab()
    results = [lab.send("alice@example.net", "bob@example.org", subject=str(n)) for n in range(3)]
    assert [r.accepted for r in results] == [["bob@example.org"]] * 3
    assert [m.recipients for m in lab.messages] == [("bob@example.org",)] * 3
    assert all(m.mail_params == {} for m in lab.messages)


def test_the_remembered_lines_are_bounded_short_and_hold_no_credentials() -> None:
    config = ServerConfig(
        extensions=frozenset({"AUTH", "PIPELINING"}),
        auth_without_tls=True,
        max_command_line=4096,
    )
    lab = smtplab.Lab(config=config)
    session = lab.connect()
    session.ehlo()
    session.auth("alice", "secret password")
    session.send("VRFY " + "x" * 100)
    session.send("NOOP")
    session.send("HELO " + "h" * 300 + ".example")  # 501 or 250: a long line, not kept
    lines = [raw for raw, _, _ in config.parsed_commands]
    assert lines == [b"EHLO client.example.net"]
    assert all(b"AUTH" not in line for line in lines)
    for n in range(1100):  # more distinct lines than are kept: forgotten all at once
        session.send(f"MAIL FROM:<sender-{n}@example.net>")
        session.send("RSET")
    assert 0 < len(config.parsed_commands) <= 1024


@pytest.mark.parametrize("keyword", ["AUTH", "AUTH=LOGIN"])
def test_auth_keywords_are_not_offered_without_tls(keyword: str) -> None:
    """RFC 4954 4: AUTH only under TLS, the legacy AUTH= form included."""
    lab = smtplab.Lab(config=ServerConfig(extensions=frozenset({keyword, "PIPELINING"})))
    assert lab.connect().ehlo().lines[1:] == ["PIPELINING"]


def test_parameters_read_like_a_dict_and_travel_like_one() -> None:
    event = parse_command("MAIL FROM:<a@example.net> SIZE=10", DEFAULT_EXTENSIONS, True, None)
    assert event.params == {"SIZE": "10"} and json.dumps(event.params) == '{"SIZE": "10"}'
    assert pickle.loads(pickle.dumps(event)) == event == copy.deepcopy(event)
    assert dataclasses.asdict(event)["params"] == {"SIZE": "10"}
    changed = dict(event.params) | {"BODY": "8BITMIME"}  # a copy changes; the event does not
    assert changed == {"SIZE": "10", "BODY": "8BITMIME"} and event.params == {"SIZE": "10"}
    refused = parse_command("MAIL TO:<a@example.net>", DEFAULT_EXTENSIONS, True, None)
    assert refused.error is not None
    with pytest.raises(TypeError, match="read-only"):
        refused.params["X"] = "1"  # type: ignore[index]  # an error event's empty ones too


def test_a_used_config_copies_and_pickles_without_what_it_remembers() -> None:
    lab = smtplab.Lab()
    lab.send("alice@example.net", "bob@example.org")
    assert lab.config.parsed_commands
    for config in (copy.deepcopy(lab.config), pickle.loads(pickle.dumps(lab.config))):
        assert config == lab.config and not config.parsed_commands
    assert copy.deepcopy(lab).send("alice@example.net", "bob@example.org").accepted


def test_config_subclasses_keep_working() -> None:
    @dataclasses.dataclass(frozen=True)
    class Plain(ServerConfig):
        def __post_init__(self) -> None:  # without super(): no derived attributes made
            pass

    @dataclasses.dataclass(frozen=True)
    class WithXclient(ServerConfig):
        def ehlo_keywords(self) -> list[str]:
            return [*super().ehlo_keywords(), "XCLIENT NAME ADDR"]

    assert smtplab.Lab(config=Plain()).send("alice@example.net", "bob@example.org").accepted
    reply = smtplab.Lab(config=WithXclient()).connect().ehlo()
    assert reply.lines[-1] == "XCLIENT NAME ADDR"
