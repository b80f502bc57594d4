"""Feedback for students: what went wrong in a session, in words, with the RFC section to read.

Two kinds of check, both usable in a notebook cell:

* :func:`review` reads any transcript — the lab's, a TCP server's (the student's own client
  talking to it), a capture — and explains every refused or unanswered command and every
  protocol oddity: ``RCPT sent before MAIL: the server answered 503 5.5.1 — RCPT needs an
  accepted MAIL first (RFC 5321 3.3)``. Sequence errors are explained from the engine's own
  state table, reply codes from the reply-code catalogue.
* :func:`check_delivery` and :func:`check_answer` grade a task: was the message delivered to
  these recipients? is this number right? Each returns a :class:`Feedback` that shows as a
  short verdict with the reasons; ``.require()`` turns a failed one into an AssertionError,
  so a check cell fails visibly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from smtplab.analysis.checks import oddities
from smtplab.analysis.sessions import BLIND_AFTER_STARTTLS
from smtplab.analysis.steps import in_protocol_order, steps
from smtplab.analysis.transactions import transactions
from smtplab.protocol.codes import explain
from smtplab.protocol.states import State, Step, allowed, next_state, sequence_hint


@dataclass(frozen=True)
class Finding:
    """One thing worth telling the student, tied to a row of the transcript."""

    session: str
    seq: int
    message: str


@dataclass
class Review:
    """Everything :func:`review` found, in transcript order."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def __str__(self) -> str:
        if self.clean:
            return "Nothing to report: every command was accepted and in order."
        return "\n".join(f"{f.session} #{f.seq}: {f.message}" for f in self.findings)

    def _repr_markdown_(self) -> str:
        if self.clean:
            return "✔ " + str(self)
        return "\n".join(f"- **{f.session} #{f.seq}**: {_md(f.message)}" for f in self.findings)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def review(frame: pd.DataFrame) -> Review:
    """Explain, in words, every refused or unanswered command and every oddity in ``frame``."""
    findings: list[Finding] = []
    table = in_protocol_order(steps(frame))
    for session, rows in table.groupby(table["session"].astype(str), sort=False):
        findings += _session_findings(session, rows)
    for row in oddities(frame).itertuples(index=False):
        findings.append(Finding(str(row.session), int(row.seq), f"{row.detail} ({row.rfc})"))
    order = {name: i for i, name in enumerate(dict.fromkeys(frame["session"].astype(str)))}
    findings.sort(key=lambda f: (order.get(f.session, len(order)), f.seq))
    return Review(findings)


def _session_findings(session: str, rows: pd.DataFrame) -> list[Finding]:
    found = []
    state = State.GREETING
    quit_sent = False
    for row in rows.itertuples(index=False):
        step = str(row.verb)
        quit_sent |= step == "QUIT"
        said = _wire(row)
        if row.status == "unanswered":
            if pd.isna(row.code):
                what = "the message" if step == Step.DATA_END else step
                found.append(
                    Finding(
                        session, int(row.seq), f"{what} got no reply: the connection ended first"
                    )
                )
            break
        code = int(row.code) if pd.notna(row.code) else 250
        if code == 503 and not allowed(state, step):
            hint = sequence_hint(state, step)
            found.append(
                Finding(
                    session,
                    int(row.seq),
                    f"{step} sent {_where(state)}: the server answered {said} — {hint}",
                )
            )
        elif code == 500 and row.kind == "command":
            line = f"{step} {row.argument}".strip() if isinstance(row.argument, str) else step
            what = f'the line "{line}"' if line else "an empty line"
            found.append(
                Finding(
                    session, int(row.seq), f"{what} is no command the server knows: {_refusal(row)}"
                )
            )
        elif code >= 400:
            what = "the message" if step == Step.DATA_END else step
            found.append(Finding(session, int(row.seq), f"{what} was refused: {_refusal(row)}"))
        state = next_state(state, step, code)
    blind = rows["source"].isin(BLIND_AFTER_STARTTLS).any() and state is State.CONNECTED
    if not quit_sent and len(rows) and state is not State.CLOSED and not blind:
        last = int(rows["seq"].iloc[-1])
        found.append(
            Finding(
                session,
                last,
                "the session ended without QUIT (RFC 5321 4.1.1.10: a client MUST NOT close "
                "the channel before it has sent QUIT)",
            )
        )
    return found


def _refusal(row: Any) -> str:
    """``550 5.1.1 "User unknown" — Bad destination mailbox address (RFC 3463 3.2)``."""
    wire = _wire(row)
    meaning = explain(wire)
    main = meaning.detail or meaning.basic
    text = str(row.text).split("\n")[0] if isinstance(row.text, str) else ""
    quoted = f' "{text}"' if text else ""
    kind = "try again later" if int(row.code) < 500 else "permanent"
    about = f" — {main.meaning} ({main.rfc})" if main is not None else ""
    return f"{wire}{quoted} ({kind}){about}"


def _where(state: State) -> str:
    return {
        State.GREETING: "before the greeting",
        State.CONNECTED: "before EHLO/HELO",
        State.READY: "with no mail transaction open",
        State.MAIL: "before any recipient was accepted",
        State.RCPT: "in the middle of a transaction",
        State.DATA: "while the server was reading the message",
        State.BDAT: "while the message was being sent in chunks",
        State.CLOSED: "after the session closed",
        State.REFUSED: "after the server refused service",
    }.get(state, f"in state {state.value}")


def _wire(row: Any) -> str:
    parts = [str(int(row.code))] if pd.notna(row.code) else []
    if isinstance(row.enhanced, str):
        parts.append(row.enhanced)
    return " ".join(parts) or "nothing"


class NotYet(AssertionError):
    """A check that failed: a notebook shows its message alone, not a traceback into smtplab
    (IPython calls ``_render_traceback_``), and the cell stops there, as a failed check should."""

    def _render_traceback_(self) -> list[str]:
        return [f"✘ {line}" if number == 0 else f"  {line}"
                for number, line in enumerate(str(self).splitlines())]  # fmt: skip


@dataclass(frozen=True)
class Feedback:
    """A graded task: did it succeed, and why (not)."""

    ok: bool
    message: str

    def require(self) -> Feedback:
        """Raise :class:`NotYet` (an AssertionError) with the message unless the task succeeded."""
        if not self.ok:
            raise NotYet(self.message)
        return self

    def __str__(self) -> str:
        return ("✔ " if self.ok else "✘ ") + self.message

    def _repr_markdown_(self) -> str:
        return ("✔ " if self.ok else "✘ ") + _md(self.message).replace("\n", "<br>")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def check_delivery(
    frame: pd.DataFrame, recipients: str | Iterable[str], sender: str | None = None
) -> Feedback:
    """Whether one message in ``frame`` was delivered to every one of ``recipients`` (from
    ``sender``, if given); if not, which recipients it did reach, which it did not and why,
    then what :func:`review` finds in ``frame``. Pass the student's own sessions only
    (:func:`latest_session`) when the transcript holds earlier ones too."""
    wanted = [recipients] if isinstance(recipients, str) else list(recipients)
    table = transactions(frame)
    if sender is not None:
        table = table[table["mail_from"].str.lower() == sender.lower()]
    delivered = table[table["outcome"] == "delivered"]
    for row in delivered.itertuples(index=False):
        got = {address.lower() for address in row.recipients}
        if {address.lower() for address in wanted} <= got:
            reply = f"{row.code} {row.enhanced}" if isinstance(row.enhanced, str) else f"{row.code}"
            return Feedback(True, f"delivered to {', '.join(wanted)} ({row.session}: {reply})")
    if not len(frame):
        return Feedback(False, "the transcript is empty: no session ran")
    reached = {address.lower() for row in delivered.itertuples() for address in row.recipients}
    named = {a.lower() for column in ("recipients", "rejected") for r in table[column] for a in r}
    missed = [address for address in wanted if address.lower() not in reached]
    why = [
        f"{address}: no RCPT TO:<{address}> was accepted"
        if address.lower() in named
        else f"{address}: no RCPT TO:<{address}> was sent"
        for address in missed
    ]
    if not missed:  # each got a message, but not one and the same
        verdict = f"{', '.join(wanted)} each got a message, but no one message reached them all"
    elif len(missed) < len(wanted):
        reached_here = [address for address in wanted if address not in missed]
        verdict = f"delivered to {', '.join(reached_here)}, but not to {', '.join(missed)}"
    else:
        verdict = f"no message was delivered to {', '.join(missed)}"
    findings = review(frame)
    details = [*why, *(() if findings.clean else [str(findings)])]
    return Feedback(False, "\n".join([verdict + ".", *details]))


def check_server(
    address: str,
    must_pass: Iterable[str],
    *,
    baseline: pd.DataFrame | None = None,
    quiet: float = 0.3,
) -> Feedback:
    """Grade a student's server at ``address`` with every conformance probe.

    It passes when each probe of ``must_pass`` passes and, given ``baseline`` (the table of an
    earlier :func:`smtplab.check`, of the server before the student's change), no probe that
    passed there fails now: a fix that breaks what worked (answering DATA with 250, reading
    the message as commands) is caught by the probes of the transaction, not only by those
    the exercise names.
    """
    from smtplab.conformance import check

    table = check(address, quiet=quiet).table.set_index("probe")
    wanted = list(must_pass)
    failing = [name for name in wanted if table.at[name, "status"] != "pass"]
    broken: list[str] = []
    if baseline is not None:
        before = baseline.set_index("probe")["status"]
        broken = [
            name
            for name in table.index
            if before.get(name) == "pass" and table.at[name, "status"] != "pass"
        ]
    if not failing and not broken:
        return Feedback(True, f"{', '.join(wanted)} pass, and every probe that passed still does")

    def said(name: str) -> str:
        row = table.loc[name]
        return f"{name} ({row['rfc']}): {row['status']}: {row['detail']}"

    lines = [f"not yet: {len(failing)} of the exercise's probes and {len(broken)} others fail."]
    lines += [said(name) for name in failing]
    lines += [f"{said(name)} (it passed before your change)" for name in broken]
    return Feedback(False, "\n".join(lines))


def latest_session(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of the session that started last: a student's latest attempt, when a server's
    transcript holds every session the notebook ran."""
    if not len(frame):
        return frame
    starts = frame.groupby("session", observed=True)["time"].min().sort_values(kind="stable")
    return frame[frame["session"] == starts.index[-1]]


def check_answer(answer: Any, expected: Any, why: str) -> Feedback:
    """Compare a student's answer with the expected one; ``why`` explains the right answer."""
    if answer == expected or (
        isinstance(answer, str)
        and isinstance(expected, str)
        and answer.strip().lower() == expected.strip().lower()
    ):
        return Feedback(True, f"{answer!r} is right: {why}")
    return Feedback(False, f"{answer!r} is not it: {why}")


def _md(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
