"""Sending one message the way a mail client or relay does: follow-ups included.

:func:`send_message` runs complete sessions (EHLO, MAIL, one RCPT per recipient, DATA, the
message, QUIT) over any way of connecting, and handles what servers answer besides 250:

* **251** "User not local; will forward to <forward-path>": accepted; the forward-path is
  reported in :attr:`SendResult.forwarded` (RFC 5321 3.4).
* **551** "User not local; please try <forward-path>": refused; with ``follow_redirects`` the
  recipient is tried again at the given forward-path in the same transaction, and the
  redirect is reported in :attr:`SendResult.redirected` (3.4 leaves this to the client).
* **4xx**: transient. With ``retries``, the recipients (or the whole message) that met a
  transient failure are tried again in a new session after a delay that doubles each time,
  as a mail queue does (4.5.4.1); that is how greylisting is passed. **5xx** is final.
* A connection that closes without a reply (a crash, a 421 shutdown) counts as transient.

Like ``smtplib.sendmail``, refusals are reported, not raised.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import partial
from typing import Any

from smtplab.client.session import Session
from smtplab.protocol.errors import LocalProtocolError
from smtplab.protocol.events import Reply

# RFC 5321 3.4: "251 User not local; will forward to <forward-path>", "551 ... try <...>".
_FORWARD_PATH = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
#: Stands in for the reply that never came when the connection closed first (smtplib raises
#: SMTPServerDisconnected there). Transient, as RFC 5321 3.8 treats a lost connection; never
#: in ``SendResult.replies``, which holds only what the server said.
LOST = Reply(421, "Connection lost before a reply", "4.4.2")


@dataclass
class SendResult:
    """What happened to one message (possibly over several attempts)."""

    session: str  # the last attempt's session id
    accepted: list[str]  # recipients the message was delivered to (the dot answered 250)
    refused: dict[str, Reply]  # recipients it was not delivered to, with the final reason
    reply: Reply  # the reply that decided the last attempt: the final dot's, or the failure's
    delivered: bool  # delivered to at least one recipient
    replies: list[tuple[str, Reply]] = field(repr=False, default_factory=list)
    forwarded: dict[str, str] = field(default_factory=dict)  # recipient -> forward-path (251)
    redirected: dict[str, str] = field(default_factory=dict)  # recipient -> tried instead (551)
    sessions: list[str] = field(default_factory=list)  # every attempt's session id
    _transcript: Callable[[], Any] | None = field(repr=False, default=None)

    @property
    def attempts(self) -> int:
        return len(self.sessions)

    def __repr__(self) -> str:
        parts = [f"SendResult {', '.join(self.sessions) or self.session}:"]
        if self.delivered:
            parts.append(f"delivered to {_some(self.accepted)};")
        else:
            parts.append("not delivered;")
        for address, target in self.forwarded.items():
            parts.append(f"{address} forwarded to {target};")
        for address, target in self.redirected.items():
            parts.append(f"{address} redirected to {target};")
        for address, reply in self.refused.items():
            parts.append(f"refused {address} ({reply.code} {reply.enhanced or ''}".rstrip() + ");")
        parts.append(f"last reply: {self.reply}")
        return " ".join(parts)

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # type: ignore[no-untyped-def]
        printer.text(repr(self))

    @property
    def transcript(self) -> Any:
        """The rows of this message's sessions (every attempt) as a transcript DataFrame."""
        if self._transcript is None:
            raise LocalProtocolError("this result has no recorded transcript")
        frame = self._transcript()
        return frame[frame["session"].isin(self.sessions)].reset_index(drop=True)


def _some(addresses: list[str], shown: int = 5) -> str:
    """``a, b, c`` - or the first few and how many more, for long lists."""
    if len(addresses) <= shown:
        return ", ".join(addresses)
    return f"{', '.join(addresses[:shown])} and {len(addresses) - shown} more"


def forward_path(reply: Reply) -> str | None:
    """The ``<forward-path>`` a 251 or 551 reply names, if it names one."""
    found = _FORWARD_PATH.findall(reply.text)
    return found[-1] if found else None


@dataclass
class _Attempt:
    """One session's outcome for the recipients it tried."""

    delivered: list[str] = field(default_factory=list)
    transient: dict[str, Reply] = field(default_factory=dict)
    permanent: dict[str, Reply] = field(default_factory=dict)


def send_message(
    connect: Callable[[], Session],
    mail_from: str,
    recipients: list[str],
    content: Callable[[], bytes],
    *,
    ehlo: bool = True,
    follow_redirects: bool = False,
    retries: int = 0,
    retry_delay: float = 300.0,
    wait: Callable[[float], None] | None = None,
    transcript: Callable[[], Any] | None = None,
    starttls: bool = False,
    auth: tuple[str, str] | None = None,
) -> SendResult:
    """Send ``content()`` from ``mail_from`` to ``recipients``; see the module docstring.

    ``connect`` opens a new session; ``wait(seconds)`` lets time pass between attempts (the
    lab's virtual clock). The n-th retry waits ``retry_delay * 2 ** (n - 1)`` seconds.
    """
    if retries < 0 or retry_delay < 0:
        raise ValueError("retries and retry_delay cannot be negative")
    if retries and wait is None:
        raise ValueError("retries need a way to wait between attempts")
    content = _once(content)  # every retry sends the very same message
    result = SendResult("", [], {}, LOST, False, _transcript=transcript)
    pending = list(dict.fromkeys(recipients))  # each address once, in order
    for attempt in range(retries + 1):
        if attempt:
            assert wait is not None
            wait(retry_delay * 2 ** (attempt - 1))
        outcome = _one_session(
            connect(),
            mail_from,
            pending,
            content,
            ehlo,
            follow_redirects,
            result,
            starttls,
            auth,
        )
        result.accepted += outcome.delivered
        result.refused.update(outcome.permanent)
        pending = list(outcome.transient)
        if not pending:
            break
    result.refused.update(outcome.transient)  # still transient after the last try
    result.delivered = bool(result.accepted)
    return result


def _one_session(
    session: Session,
    mail_from: str,
    recipients: list[str],
    content: Callable[[], bytes],
    ehlo: bool,
    follow_redirects: bool,
    result: SendResult,
    starttls: bool = False,
    auth: tuple[str, str] | None = None,
) -> _Attempt:
    outcome = _Attempt()
    result.session = session.name
    result.sessions.append(session.name)

    def step(verb: str, send: Callable[[], Reply]) -> Reply:
        try:
            reply = send()
        except LocalProtocolError:  # the connection is gone: no reply to log
            result.reply = LOST
            return LOST
        result.replies.append((verb, reply))
        result.reply = reply
        return reply

    def fail_all(reply: Reply, addresses: list[str]) -> None:
        target = outcome.transient if reply.code < 500 else outcome.permanent
        target.update(dict.fromkeys(addresses, reply))

    greeting = session.greeting or LOST  # None: closed before greeting
    if session.greeting is not None:
        result.replies.append(("CONNECT", greeting))
    result.reply = greeting
    if greeting.code != 220:
        fail_all(greeting, recipients)
        return _finish(session, outcome, result)
    hello = step("EHLO", session.ehlo) if ehlo else step("HELO", session.helo)
    if hello.code != 250:
        fail_all(hello, recipients)
        return _finish(session, outcome, result)
    if starttls:  # required, as swaks --tls does: no TLS, no message
        tls = step("STARTTLS", session.starttls)
        if tls.code != 220:
            fail_all(tls, recipients)
            return _finish(session, outcome, result)
        hello = step("EHLO", session.ehlo)  # RFC 3207 4.2: start over under TLS
        if hello.code != 250:
            fail_all(hello, recipients)
            return _finish(session, outcome, result)
    if auth is not None:
        user, password = auth
        authenticated = step("AUTH", lambda: session.auth(user, password))
        if authenticated.code != 235:
            fail_all(authenticated, recipients)
            return _finish(session, outcome, result)
    mail = step("MAIL", lambda: session.mail(mail_from))
    if mail.code != 250:
        fail_all(mail, recipients)
        return _finish(session, outcome, result)
    accepted: list[str] = []
    for rcpt in recipients:
        if session.closed:
            fail_all(result.reply, [rcpt])
            continue
        reply = step("RCPT", partial(session.rcpt, rcpt))
        delivered_to = rcpt
        if reply.code == 551 and follow_redirects and (target := forward_path(reply)):
            asked = {a.lower() for a in (*recipients, *result.redirected.values())}
            result.redirected[rcpt] = target
            if target.lower() in asked:
                continue  # already a recipient of this message: not added twice
            reply = step("RCPT", partial(session.rcpt, target))
            delivered_to = target
        if reply.code in (250, 251):
            accepted.append(delivered_to)
            if reply.code == 251 and (target := forward_path(reply)):
                result.forwarded[delivered_to] = target
        else:
            fail_all(reply, [rcpt])  # a refusal is reported for the address the user gave
    if not accepted:
        return _finish(session, outcome, result)
    data = step("DATA", session.data)
    if data.code != 354:
        fail_all(data, accepted)
        return _finish(session, outcome, result)
    done = step("DATA-END", lambda: session.message(content()))
    if done.code == 250:
        outcome.delivered = accepted
    else:
        fail_all(done, accepted)
    return _finish(session, outcome, result)


def _finish(session: Session, outcome: _Attempt, result: SendResult) -> _Attempt:
    if not session.closed:
        # The server may go away while we say goodbye: nothing is lost then.
        with contextlib.suppress(LocalProtocolError):
            result.replies.append(("QUIT", session.quit()))
    return outcome


def _once(make: Callable[[], bytes]) -> Callable[[], bytes]:
    """``make``, called at most once, when first needed: retries then carry the same
    Message-ID and Date, so a receiver can tell a duplicate (RFC 5322 3.6.4)."""
    made: list[bytes] = []

    def once() -> bytes:
        if not made:
            made.append(make())
        return made[0]

    return once


def plain_message(
    mail_from: str,
    recipients: list[str],
    subject: str,
    body: str,
    *,
    date: datetime | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """A plain-text message with Date, From, To, Subject and Message-ID headers (now, and a
    fresh id, unless given)."""
    msg = EmailMessage()
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg["From"] = mail_from or "<>"
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="smtplab.invalid")
    msg.set_content(body)
    return msg
