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
from smtplab.protocol.states import State

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
    pipelined: bool = False  # commands went in groups (the server offered PIPELINING)
    chunked: bool = False  # the message went with BDAT (the server offered CHUNKING)
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
    pipelining: bool = False,
    chunking: bool = False,
    chunk_size: int | None = None,
) -> SendResult:
    """Send ``content()`` from ``mail_from`` to ``recipients``; see the module docstring.

    ``connect`` opens a new session; ``wait(seconds)`` lets time pass between attempts (the
    lab's virtual clock). The n-th retry waits ``retry_delay * 2 ** (n - 1)`` seconds.

    ``pipelining`` sends MAIL, every RCPT and DATA (or the BDAT chunks) as one group when
    the server offers PIPELINING (RFC 2920); ``chunking`` sends the message with BDAT when it
    offers CHUNKING (RFC 3030), in chunks of ``chunk_size`` octets (default: one chunk).
    Where the server does not offer them, the message goes the plain way, as mail clients do;
    :attr:`SendResult.pipelined` and :attr:`SendResult.chunked` tell what was used.
    """
    if retries < 0 or retry_delay < 0:
        raise ValueError("retries and retry_delay cannot be negative")
    if retries and wait is None:
        raise ValueError("retries need a way to wait between attempts")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError("chunk_size must be at least 1 octet")
    options = _Options(ehlo, follow_redirects, starttls, auth, pipelining, chunking, chunk_size)
    content = _once(content)  # every retry sends the very same message
    result = SendResult("", [], {}, LOST, False, _transcript=transcript)
    pending = list(dict.fromkeys(recipients))  # each address once, in order
    for attempt in range(retries + 1):
        if attempt:
            assert wait is not None
            wait(retry_delay * 2 ** (attempt - 1))
        outcome = _Run(connect(), result, options).attempt(mail_from, pending, content)
        result.accepted += outcome.delivered
        result.refused.update(outcome.permanent)
        pending = list(outcome.transient)
        if not pending:
            break
    result.refused.update(outcome.transient)  # still transient after the last try
    result.delivered = bool(result.accepted)
    return result


@dataclass(frozen=True)
class _Options:
    """How :func:`send_message` talks to the server (its keyword arguments)."""

    ehlo: bool
    follow_redirects: bool
    starttls: bool
    auth: tuple[str, str] | None
    pipelining: bool
    chunking: bool
    chunk_size: int | None


class _Run:
    """One session of :func:`send_message`: its replies go into the shared result."""

    def __init__(self, session: Session, result: SendResult, options: _Options) -> None:
        self.session = session
        self.result = result
        self.options = options
        self.follow_redirects = options.follow_redirects
        self.outcome = _Attempt()
        result.session = session.name
        result.sessions.append(session.name)

    def step(self, verb: str, send: Callable[[], Reply]) -> Reply:
        """Send one command and log its reply (LOST when the connection is gone)."""
        try:
            reply = send()
        except LocalProtocolError:  # the connection is gone: no reply to log
            self.result.reply = LOST
            return LOST
        return self.log(verb, reply)

    def group(self, verbs: list[str], send: Callable[[], list[Reply]]) -> list[Reply]:
        """Send a pipelined group; one reply per verb (LOST for those that never came)."""
        try:
            replies = send()
        except LocalProtocolError:
            replies = []
        for verb, reply in zip(verbs, replies, strict=False):
            self.log(verb, reply)
        if len(replies) < len(verbs):
            self.result.reply = LOST
        return replies + [LOST] * (len(verbs) - len(replies))

    def log(self, verb: str, reply: Reply) -> Reply:
        self.result.replies.append((verb, reply))
        self.result.reply = reply
        return reply

    def fail(self, reply: Reply, addresses: list[str]) -> _Attempt:
        target = self.outcome.transient if reply.code < 500 else self.outcome.permanent
        target.update(dict.fromkeys(addresses, reply))
        return self.outcome

    def attempt(
        self, mail_from: str, recipients: list[str], content: Callable[[], bytes]
    ) -> _Attempt:
        """Run the session for ``recipients``; what became of each of them."""
        self._transaction(mail_from, recipients, content)
        session = self.session
        if session.state is State.DATA:
            # DATA was accepted in a pipelined group although nothing else was: end it with
            # the final dot alone (RFC 2920 3.1) so that QUIT can follow.
            self.step("DATA-END", lambda: session.message(b""))
        if not session.closed:
            # The server may go away while we say goodbye: nothing is lost then.
            with contextlib.suppress(LocalProtocolError):
                self.result.replies.append(("QUIT", session.quit()))
        return self.outcome

    def _transaction(
        self, mail_from: str, recipients: list[str], content: Callable[[], bytes]
    ) -> None:
        options = self.options
        session, result = self.session, self.result
        greeting = session.greeting or LOST  # None: closed before greeting
        if session.greeting is not None:
            result.replies.append(("CONNECT", greeting))
        result.reply = greeting
        if greeting.code != 220:
            self.fail(greeting, recipients)
            return
        verb, hello_command = ("EHLO", session.ehlo) if options.ehlo else ("HELO", session.helo)
        hello = self.step(verb, hello_command)
        if hello.code != 250:
            self.fail(hello, recipients)
            return
        if options.starttls:  # required, as swaks --tls does: no TLS, no message
            tls = self.step("STARTTLS", session.starttls)
            if tls.code != 220:
                self.fail(tls, recipients)
                return
            hello = self.step("EHLO", session.ehlo)  # RFC 3207 4.2: start over under TLS
            if hello.code != 250:
                self.fail(hello, recipients)
                return
        if options.auth is not None:
            user, password = options.auth
            authenticated = self.step("AUTH", lambda: session.auth(user, password))
            if authenticated.code != 235:
                self.fail(authenticated, recipients)
                return
        offered = session.extensions
        pipelined = options.pipelining and "PIPELINING" in offered
        chunks = None
        if options.chunking and "CHUNKING" in offered:
            chunks = _split(content(), options.chunk_size)
        result.pipelined = result.pipelined or pipelined
        result.chunked = result.chunked or chunks is not None
        # With redirects to follow, the message waits for the RCPT replies (a 551 adds a RCPT).
        message_in_group = pipelined and not self.follow_redirects
        if pipelined:
            replies = self._envelope_group(mail_from, recipients, chunks, message_in_group)
        else:
            replies = None
        mail = replies.pop(0) if replies else self.step("MAIL", lambda: session.mail(mail_from))
        if mail.code != 250:
            self.fail(mail, recipients)
            return
        accepted = self._recipients(recipients, replies)
        if message_in_group:
            self._message_replies(accepted, content, chunks, replies or [])
        elif accepted:
            self._send_message(accepted, content, chunks)

    def _envelope_group(
        self,
        mail_from: str,
        recipients: list[str],
        chunks: list[bytes] | None,
        with_message: bool,
    ) -> list[Reply]:
        """MAIL, each RCPT and (``with_message``) DATA or every BDAT in one group (RFC 2920)."""
        group = self.session.pipeline().mail(mail_from)
        verbs = ["MAIL"]
        for address in recipients:
            group.rcpt(address)
            verbs.append("RCPT")
        if with_message and chunks is None:
            group.data()
            verbs.append("DATA")
        elif with_message and chunks is not None:
            for number, chunk in enumerate(chunks, 1):
                group.bdat(chunk, last=number == len(chunks))
                verbs.append("BDAT")
        return self.group(verbs, group.send)

    def _recipients(self, recipients: list[str], replies: list[Reply] | None) -> list[str]:
        """RCPT for each address (or its pipelined reply); the addresses accepted."""
        session, result = self.session, self.result
        accepted: list[str] = []
        for rcpt in recipients:
            if replies is not None:
                reply = replies.pop(0)
            elif session.closed:
                self.fail(result.reply, [rcpt])
                continue
            else:
                reply = self.step("RCPT", partial(session.rcpt, rcpt))
            delivered_to = rcpt
            if reply.code == 551 and self.follow_redirects and (target := forward_path(reply)):
                asked = {a.lower() for a in (*recipients, *result.redirected.values())}
                result.redirected[rcpt] = target
                if target.lower() in asked:
                    continue  # already a recipient of this message: not added twice
                reply = self.step("RCPT", partial(session.rcpt, target))
                delivered_to = target
            if reply.code in (250, 251):
                accepted.append(delivered_to)
                if reply.code == 251 and (target := forward_path(reply)):
                    result.forwarded[delivered_to] = target
            else:
                self.fail(reply, [rcpt])  # a refusal is reported for the address the user gave
        return accepted

    def _send_message(
        self, accepted: list[str], content: Callable[[], bytes], chunks: list[bytes] | None
    ) -> None:
        """DATA and the message, or the BDAT chunks, each waiting for its reply."""
        session = self.session
        if chunks is None:
            data = self.step("DATA", session.data)
            if data.code != 354:
                self.fail(data, accepted)
                return
            done = self.step("DATA-END", lambda: session.message(content()))
        else:
            for number, chunk in enumerate(chunks, 1):
                last = number == len(chunks)
                done = self.step("BDAT", partial(session.bdat, chunk, last))
                if done.code != 250:
                    break  # RFC 3030 2: after a refused chunk, no more chunks
        self._settle(accepted, done)

    def _message_replies(
        self,
        accepted: list[str],
        content: Callable[[], bytes],
        chunks: list[bytes] | None,
        replies: list[Reply],
    ) -> None:
        """Settle the pipelined DATA or BDAT replies (RFC 2920 3.1, RFC 3030 2)."""
        if chunks is not None:
            # The first refused chunk says why; the chunks after it were refused as a result.
            done = next((r for r in replies if r.code != 250), replies[-1])
            self._settle(accepted, done)
            return
        data = replies[0]
        if data.code != 354 or not accepted:  # a 354 with no recipient: see session_for
            self._settle(accepted, data)
            return
        done = self.step("DATA-END", lambda: self.session.message(content()))
        self._settle(accepted, done)

    def _settle(self, accepted: list[str], done: Reply) -> None:
        if not accepted:
            return
        if done.code == 250:
            self.outcome.delivered = accepted
        else:
            self.fail(done, accepted)


def _split(content: bytes, size: int | None) -> list[bytes]:
    """The message in chunks of ``size`` octets (one chunk when ``size`` is None)."""
    if size is None or len(content) <= size:
        return [content]
    return [content[start : start + size] for start in range(0, len(content), size)]


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
