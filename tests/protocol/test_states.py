"""The state table (RFC 5321 3.3, 4.1.4) and how replies move a session through it."""

from __future__ import annotations

import pytest

from smtplab.protocol.states import (
    ON_REFUSAL,
    TRANSITIONS,
    State,
    Step,
    allowed,
    next_state,
)

S = State


@pytest.mark.parametrize(
    ("state", "step", "code", "after"),
    [
        (S.GREETING, Step.CONNECT, 220, S.CONNECTED),
        (S.GREETING, Step.CONNECT, 554, S.REFUSED),  # 3.1
        (S.GREETING, Step.CONNECT, 421, S.CLOSED),
        (S.CONNECTED, "EHLO", 250, S.READY),
        (S.CONNECTED, "EHLO", 501, S.CONNECTED),
        (S.READY, "MAIL", 250, S.MAIL),
        (S.READY, "MAIL", 550, S.READY),
        (S.MAIL, "RCPT", 250, S.RCPT),
        (S.MAIL, "RCPT", 251, S.RCPT),  # 3.4: will forward
        (S.MAIL, "RCPT", 550, S.MAIL),
        (S.RCPT, "DATA", 354, S.DATA),
        (S.DATA, Step.DATA_END, 250, S.READY),
        (S.DATA, Step.DATA_END, 554, S.READY),  # 4.1.1.4: the transaction is over either way
        (S.RCPT, "RSET", 250, S.READY),  # 4.1.1.5
        (S.RCPT, "EHLO", 250, S.READY),  # 4.1.4
        (S.RCPT, "NOOP", 250, S.RCPT),
        (S.MAIL, "QUIT", 221, S.CLOSED),
        (S.RCPT, "RCPT", 421, S.CLOSED),
    ],
)
def test_next_state(state: State, step: str, code: int, after: State) -> None:
    assert next_state(state, step, code) is after


@pytest.mark.parametrize("verb", ["NOOP", "HELP", "EXPN", "VRFY", "RSET"])
def test_anytime_commands_before_hello(verb: str) -> None:
    # RFC 5321 4.1.4: these may be used "without previously initializing a session".
    assert allowed(S.CONNECTED, verb)


@pytest.mark.parametrize(
    ("state", "verb"),
    [
        (S.CONNECTED, "MAIL"),
        (S.READY, "RCPT"),
        (S.MAIL, "DATA"),
        (S.READY, "DATA"),
        (S.MAIL, "MAIL"),
        (S.REFUSED, "EHLO"),
        (S.GREETING, "EHLO"),
    ],
)
def test_out_of_sequence(state: State, verb: str) -> None:
    assert not allowed(state, verb)


def test_every_state_is_reachable_and_has_a_way_out() -> None:
    reached = {S.GREETING} | set(TRANSITIONS.values()) | set(ON_REFUSAL.values())
    assert reached == set(State)
    for state in State:
        if state is not S.CLOSED:
            assert any(s is state for s, _ in TRANSITIONS), f"{state} has no transitions"
