"""Fault injection: make any stage of any session fail in a chosen way, reproducibly.

A :class:`Fault` says *where* (a stage such as ``RCPT`` or ``DATA-END``, optionally only the
n-th command of a session, only one address, only some of the time) and *what*: answer a
given reply instead of the policy's, answer late, drop the connection without a word, or say
421 and close (RFC 5321 3.8). :class:`Faults` wraps any policy with a list of faults::

    policy = Faults(Mailboxes(), [
        Fault.reply("RCPT", 451, "Try again later", "4.3.0", address="bob@example.org"),
        Fault.delay("DATA-END", 30),
        Fault.shutdown("RCPT", nth=3),
        Fault.drop("DATA", probability=0.1),
    ], seed=42)

Random faults draw from a generator seeded with ``seed``: the same seed, the same failures.
Faults apply to the policy's decisions only; what the protocol itself rejects (syntax,
sequence, limits) is answered as always. A fault that answers what the protocol forbids (250
to DATA) gets 451 4.3.0, as any policy mistake does.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from smtplab.protocol.events import Command, MailFrom, MessageReceived, RcptTo, Reply, Verify
from smtplab.protocol.states import Step
from smtplab.server.policy import Answer, Context, Decision, Drop, Policy

SHUTDOWN = Reply(421, "Service not available, closing transmission channel", "4.3.2")
FIRED_KEPT = 10_000  # fired faults remembered in Faults.fired


@dataclass(frozen=True)
class Fault:
    """One injected failure. Build it with :meth:`reply`, :meth:`delay`, :meth:`drop` or
    :meth:`shutdown`."""

    stage: str  # Step.CONNECT, EHLO, HELO, MAIL, RCPT, DATA, DATA-END, RSET, VRFY, ..., or "*"
    action: str  # "reply", "delay", "drop"
    answer: Reply | None = None  # for "reply" (and "delay" with a reply of its own)
    seconds: float = 0.0  # for "delay"
    nth: int | None = None  # only the n-th time this stage comes up in a session (from 1)
    command: int | None = None  # only the session's n-th command (from 1; not the greeting/dot)
    address: str | None = None  # only for this MAIL / RCPT / VRFY address (any case)
    probability: float = 1.0  # fire with this probability (seeded: reproducible)
    times: int | None = None  # fire at most this many times over all sessions

    def __post_init__(self) -> None:
        if self.action not in ("reply", "delay", "drop"):
            raise ValueError(f"unknown fault action {self.action!r}: reply, delay or drop")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("a fault's probability must be between 0 and 1")
        if self.seconds < 0:
            raise ValueError("a delay cannot be negative")
        if (self.nth is not None and self.nth < 1) or (
            self.command is not None and self.command < 1
        ):
            raise ValueError("nth and command count from 1")

    @classmethod
    def reply(
        cls, stage: str, code: int, text: str = "", enhanced: str | None = None, **where: object
    ) -> Fault:
        """Answer ``code text`` at ``stage`` instead of what the policy would say."""
        return cls(stage.upper(), "reply", Reply(code, text, enhanced), **where)  # type: ignore[arg-type]

    @classmethod
    def delay(cls, stage: str, seconds: float, **where: object) -> Fault:
        """Give the policy's answer at ``stage``, but only after ``seconds``."""
        return cls(stage.upper(), "delay", seconds=seconds, **where)  # type: ignore[arg-type]

    @classmethod
    def drop(cls, stage: str, **where: object) -> Fault:
        """Close the connection at ``stage`` without replying (a crash, a cut cable)."""
        return cls(stage.upper(), "drop", **where)  # type: ignore[arg-type]

    @classmethod
    def shutdown(cls, stage: str, **where: object) -> Fault:
        """Answer 421 4.3.2 at ``stage`` and close: the server is going down (RFC 5321 3.8)."""
        return cls(stage.upper(), "reply", SHUTDOWN, **where)  # type: ignore[arg-type]

    def describe(self) -> str:
        what = {
            "reply": f"answer '{self.answer}'",
            "delay": f"delay the reply {self.seconds:g} s",
            "drop": "drop the connection",
        }[self.action]
        where = [f"at {self.stage}"]
        if self.nth is not None:
            where.append(f"the {_ordinal(self.nth)} time")
        if self.command is not None:
            where.append(f"(the session's {_ordinal(self.command)} command)")
        if self.address is not None:
            where.append(f"for <{self.address}>")
        if self.probability < 1:
            where.append(f"with probability {self.probability:g}")
        return f"{what} {' '.join(where)}"


class Faults(Policy):
    """A policy that answers like ``policy`` except where a :class:`Fault` fires."""

    def __init__(self, policy: Policy, faults: Iterable[Fault], seed: int = 0) -> None:
        self.policy = policy
        self.faults = list(faults)
        self.hostname = policy.hostname
        self.random = random.Random(seed)
        # (session, fault), in order: the last FIRED_KEPT (a server may run for weeks; every
        # fired fault also leaves a note row in its session's transcript).
        self.fired: deque[tuple[str, Fault]] = deque(maxlen=FIRED_KEPT)
        self._left = {id(f): f.times for f in self.faults}

    def on_connect(self, ctx: Context) -> Decision:
        return self._apply(ctx, Step.CONNECT, None, lambda: self.policy.on_connect(ctx))

    def reply_for(self, ctx: Context, event: Command | MessageReceived) -> Decision:
        stage = Step.DATA_END if isinstance(event, MessageReceived) else event.verb
        address = None
        if isinstance(event, MailFrom | RcptTo):
            address = event.address
        elif isinstance(event, Verify):
            address = event.argument.strip().strip("<>")
        return self._apply(ctx, stage, address, lambda: self.policy.reply_for(ctx, event))

    def _apply(
        self, ctx: Context, stage: str, address: str | None, decide: Callable[[], Decision]
    ) -> Decision:
        nth = ctx.counts.get(stage, 1)  # the session counts every step, rejected ones too
        command = ctx.commands if stage not in (Step.CONNECT, Step.DATA_END) else None
        for fault in self.faults:
            if not self._matches(fault, stage, nth, command, address):
                continue
            self.fired.append((ctx.session, fault))
            left = self._left[id(fault)]
            if left is not None:
                self._left[id(fault)] = left - 1
            note = f"fault: {fault.describe()}"
            if fault.action == "drop":
                return Drop(note)
            inner = fault.answer or decide()
            if isinstance(inner, Drop):
                return inner
            if isinstance(inner, Answer):  # the policy delays too: both waits add up
                return Answer(inner.reply, inner.delay + fault.seconds, note)
            return Answer(inner, fault.seconds, note)
        return decide()

    def _matches(
        self, fault: Fault, stage: str, nth: int, command: int | None, address: str | None
    ) -> bool:
        if fault.stage not in ("*", stage):
            return False
        if fault.nth is not None and fault.nth != nth:
            return False
        if fault.command is not None and fault.command != command:
            return False
        if fault.address is not None and (address or "").lower() != fault.address.lower():
            return False
        if self._left[id(fault)] == 0:
            return False
        # Draw only for faults that could fire: adding a fault elsewhere changes nothing here.
        return fault.probability >= 1.0 or self.random.random() < fault.probability


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
