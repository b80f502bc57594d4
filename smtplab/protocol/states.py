"""The SMTP session state machine, as data (RFC 5321 3.3, 4.1.1, 4.1.4, 4.3.2).

One table drives the server (is this command allowed now?), validates the client (may I send
this now?) and is drawn in the notebooks. A *step* is what a reply answers: a command verb, or
a pseudo-step of :class:`Step` (the greeting, the final dot ...). :data:`TRANSITIONS` gives the
state after a step that the server *accepted*; a step that is not in the table for the current
state is out of sequence (503). A refused step leaves the state unchanged, with the exceptions in
:data:`ON_REFUSAL`. A 221 or 421 reply always closes the session.
"""

from __future__ import annotations

from enum import Enum, StrEnum


class State(Enum):
    """Where a session stands. The values are what notebooks and diagrams show."""

    GREETING = "greeting"  # connected; the server has not sent its greeting yet
    CONNECTED = "connected"  # greeted with 220; no HELO/EHLO yet
    REFUSED = "refused"  # greeted with 554: only QUIT is accepted (RFC 5321 3.1)
    READY = "ready"  # HELO/EHLO done, no mail transaction
    MAIL = "mail"  # MAIL accepted, no recipient yet
    RCPT = "rcpt"  # at least one recipient accepted
    DATA = "data"  # 354 sent: message content until <CRLF>.<CRLF>
    BDAT = "bdat"  # chunks of the message accepted with BDAT, more to come (RFC 3030)
    CLOSED = "closed"  # after 221 or 421, or the connection is gone

    # Members are singletons, equal only to themselves: hash them by identity too, in C.
    # (Enum's own __hash__ is Python code, and the table is looked up on every reply.)
    __hash__ = object.__hash__


class Step(StrEnum):
    """What a reply can answer besides a command verb. Members are strings (``Step.DATA_END
    == "DATA-END"``): transcripts hold the same text in the ``verb`` column as command verbs."""

    CONNECT = "CONNECT"  # the server's greeting, owed to the client's connection (RFC 5321 3.1)
    DATA_END = "DATA-END"  # the final dot after the message content (RFC 5321 4.1.1.4)
    #: ``BDAT n LAST``: the chunk that completes the message (RFC 3030 2). A step of its own
    #: because it ends the transaction where a plain ``BDAT`` continues it; rows say ``BDAT``.
    BDAT_LAST = "BDAT-LAST"
    UNSOLICITED = "UNSOLICITED"  # a reply no command asked for: a 421 before closing (3.8)
    #: Client octets a capture lost outside a message: a command or more, answered by the
    #: replies that come before the client is seen to send again.
    LOST = "LOST"

    def __repr__(self) -> str:
        return repr(self.value)  # events and rows show 'DATA-END', as for any command verb


#: Commands a server may accept before HELO/EHLO (RFC 5321 4.1.4: "NOOP, HELP, EXPN, VRFY,
#: and RSET ... can be used at any time during a session, or without previously initializing a
#: session") and after a 554 greeting only QUIT (3.1).
ANYTIME = ("NOOP", "HELP", "EXPN", "VRFY", "RSET", "QUIT")
HELLO = ("EHLO", "HELO")


def _build() -> dict[tuple[State, str], State]:
    table: dict[tuple[State, str], State] = {(State.GREETING, Step.CONNECT): State.CONNECTED}
    for state in (State.CONNECTED, State.READY, State.MAIL, State.RCPT, State.BDAT):
        for verb in ANYTIME:
            table[(state, verb)] = state
        # A repeated EHLO/HELO resets any transaction (RFC 5321 4.1.4).
        for verb in HELLO:
            table[(state, verb)] = State.READY
        table[(state, "QUIT")] = State.CLOSED
    for state in (State.MAIL, State.RCPT, State.BDAT):
        table[(state, "RSET")] = State.READY  # RSET aborts the transaction (4.1.1.5)
    # RFC 3207 4.2: after TLS starts, everything said before is forgotten: EHLO again.
    table[(State.READY, "STARTTLS")] = State.CONNECTED
    # RFC 4954 4: AUTH after EHLO, not inside a mail transaction.
    table[(State.READY, "AUTH")] = State.READY
    table[(State.READY, "MAIL")] = State.MAIL
    table[(State.MAIL, "RCPT")] = State.RCPT
    table[(State.RCPT, "RCPT")] = State.RCPT
    table[(State.RCPT, "DATA")] = State.DATA
    table[(State.DATA, Step.DATA_END)] = State.READY
    # RFC 3030 2: chunks follow the recipients; the LAST one completes the message. DATA may
    # not follow a BDAT in the same transaction, nor RCPT (not in the table: 503).
    for state in (State.RCPT, State.BDAT):
        table[(state, "BDAT")] = State.BDAT
        table[(state, Step.BDAT_LAST)] = State.READY
    table[(State.REFUSED, "QUIT")] = State.CLOSED
    return table


TRANSITIONS: dict[tuple[State, str], State] = _build()
"""``{(state, step): state after the server accepts the step}``."""

ON_REFUSAL: dict[tuple[State, str], State] = {
    # A 554 greeting: the server refuses service but waits for QUIT (RFC 5321 3.1).
    (State.GREETING, Step.CONNECT): State.REFUSED,
    # Whatever the reply to the final dot, the transaction is over (RFC 5321 4.1.1.4).
    (State.DATA, Step.DATA_END): State.READY,
    # A refused chunk fails the transaction (RFC 3030 2: the client "MUST NOT send any
    # additional BDAT segments"); chunks already pipelined are read, discarded and refused.
    **{
        (state, step): State.READY
        for state in (State.RCPT, State.BDAT)
        for step in ("BDAT", Step.BDAT_LAST)
    },
}
"""``{(state, step): state}`` for the steps whose *refusal* still changes the state."""

#: Positive reply codes that each step may get (RFC 5321 4.3.2). Anything else positive is a
#: local mistake; any 4xx/5xx reply may answer any step.
POSITIVE_CODES: dict[str, frozenset[int]] = {
    Step.CONNECT: frozenset({220}),
    "EHLO": frozenset({250}),
    "HELO": frozenset({250}),
    "MAIL": frozenset({250}),
    "RCPT": frozenset({250, 251}),
    "DATA": frozenset({354}),
    Step.DATA_END: frozenset({250}),
    "BDAT": frozenset({250}),
    Step.BDAT_LAST: frozenset({250}),
    "RSET": frozenset({250}),
    "VRFY": frozenset({250, 251, 252}),
    "EXPN": frozenset({250, 252}),
    "HELP": frozenset({211, 214}),
    "NOOP": frozenset({250}),
    "QUIT": frozenset({221}),
    "STARTTLS": frozenset({220}),
    "AUTH": frozenset({235, 334}),  # 334: a challenge, the exchange goes on (RFC 4954 4)
}


#: Commands whose reply changes what the client may do next: each must end a pipelined group
#: (RFC 2920 3.1). The greeting is waited for too (RFC 5321 3.1).
GROUP_ENDERS = frozenset(
    {Step.CONNECT, *HELLO, "DATA", "VRFY", "EXPN", "TURN", "QUIT", "NOOP", "STARTTLS", "AUTH"}
)


def next_state(state: State, step: str, code: int) -> State:
    """The state after ``step`` in ``state`` was answered with ``code``."""
    if code in (221, 421):
        return State.CLOSED
    if code < 400:
        return accepted_state(state, step)
    return ON_REFUSAL.get((state, step), state)


def accepted_state(state: State, step: str) -> State:
    """The state after the server accepted ``step`` in ``state`` (unchanged if the table has
    no entry: a step out of sequence is never accepted)."""
    return TRANSITIONS.get((state, step), state)


def allowed(state: State, step: str) -> bool:
    """Whether ``step`` is in sequence in ``state``."""
    return (state, step) in TRANSITIONS


#: Why a step is out of sequence in a state, in words with the RFC section: the client
#: refuses with this, and exercise feedback explains a 503 with it. (state, None) covers
#: any step in that state.
SEQUENCE_HINTS: dict[tuple[State, str | None], str] = {
    (State.GREETING, None): "wait for the server's greeting before sending commands (RFC 5321 3.1)",
    (State.REFUSED, None): "the server refused service (554 greeting): only QUIT is allowed",
    (State.CONNECTED, "MAIL"): "send EHLO or HELO before MAIL (RFC 5321 4.1.4)",
    (State.CONNECTED, "RCPT"): "RCPT needs an accepted MAIL first (RFC 5321 3.3)",
    (State.READY, "RCPT"): "RCPT needs an accepted MAIL first (RFC 5321 3.3)",
    (State.MAIL, "DATA"): "DATA needs at least one accepted recipient; the server has accepted "
    "none (RFC 5321 3.3)",
    (State.MAIL, "MAIL"): "a transaction is already open: send RSET first (RFC 5321 4.1.1.2)",
    (State.RCPT, "MAIL"): "a transaction is already open: send RSET first (RFC 5321 4.1.1.2)",
    (State.DATA, None): "the server is reading message content: send the message first",
    (State.MAIL, "BDAT"): "BDAT needs at least one accepted recipient (RFC 3030 2)",
    (State.BDAT, "DATA"): "DATA cannot follow BDAT in one transaction: send RSET first "
    "(RFC 3030 2)",
    (State.BDAT, "RCPT"): "the message is being sent in chunks: no more recipients (RFC 3030 2)",
    (State.CLOSED, None): "the session is closed",
}


def sequence_hint(state: State, step: str) -> str:
    """Why ``step`` is out of sequence in ``state`` (``"out of sequence"`` if no rule says)."""
    return (
        SEQUENCE_HINTS.get((state, step)) or SEQUENCE_HINTS.get((state, None)) or "out of sequence"
    )
