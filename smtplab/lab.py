"""The lab: an in-process SMTP server you can talk to from a notebook, recording everything.

::

    import smtplab
    lab = smtplab.Lab()                         # mx.example.org: alice, bob, carol, postmaster
    result = lab.send("alice@example.net", ["bob@example.org", "nobody@example.org"])
    result.refused                              # {'nobody@example.org': <550 5.1.1 ...>}
    lab.transcript()                            # every command and reply, one row each

Everything runs on a virtual clock: the same calls give the same transcript every time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from functools import partial
from typing import Any

from smtplab.client.session import Session
from smtplab.log.frame import to_frame
from smtplab.log.recorder import Recorder
from smtplab.protocol.events import Reply
from smtplab.protocol.framing import LineEndings
from smtplab.protocol.server import ServerConfig
from smtplab.server.mailboxes import Mailboxes
from smtplab.server.policy import Policy
from smtplab.server.session import ServerSession
from smtplab.server.store import MemoryStore, StoredMessage
from smtplab.transport.memory import DEFAULT_START, InProcessLink, VirtualClock, to_ns

SERVER_ADDRESS = "192.0.2.25:25"  # RFC 5737 documentation addresses: never a real host


@dataclass
class SendResult:
    """What happened to one message sent with :meth:`Lab.send` (like ``smtplib.sendmail``)."""

    session: str
    accepted: list[str]
    refused: dict[str, Reply]
    reply: Reply  # the reply that decided the outcome: the final dot's, or the failure's
    delivered: bool
    replies: list[tuple[str, Reply]] = field(repr=False, default_factory=list)
    _lab: Lab | None = field(repr=False, default=None)

    def __repr__(self) -> str:
        parts = [f"SendResult {self.session}:"]
        if self.delivered:
            parts.append(f"delivered to {', '.join(self.accepted)};")
        else:
            parts.append("not delivered;")
        for address, reply in self.refused.items():
            parts.append(f"refused {address} ({reply.code} {reply.enhanced or ''}".rstrip() + ");")
        parts.append(f"last reply: {self.reply}")
        return " ".join(parts)

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # type: ignore[no-untyped-def]
        printer.text(repr(self))

    @property
    def transcript(self) -> Any:
        """This message's session as a transcript DataFrame."""
        assert self._lab is not None
        frame = self._lab.transcript()
        return frame[frame["session"] == self.session].reset_index(drop=True)


class Lab:
    """An in-process SMTP server with a policy, a store, a virtual clock and a recorder."""

    def __init__(
        self,
        policy: Policy | None = None,
        config: ServerConfig | None = None,
        *,
        line_endings: LineEndings | str | None = None,
        store: MemoryStore | None = None,
        start: datetime | float = DEFAULT_START,
        network_delay: float = 0.001,
        processing_time: float = 0.0002,
        name: str = "lab",
    ) -> None:
        config = config or ServerConfig()
        if line_endings is not None:
            config = dataclasses.replace(config, line_endings=LineEndings(line_endings))
        self.policy = policy or Mailboxes()
        self.config = config
        self.store = store or MemoryStore()
        self.clock = VirtualClock(start)
        self.network_delay = network_delay
        if processing_time < 0:
            raise ValueError("a processing time cannot be negative")
        self.processing_time = processing_time
        self._processing_pause = (
            partial(self.clock.advance_ns, to_ns(processing_time)) if processing_time else None
        )
        self.name = name
        self.recorders: list[Recorder] = []

    def connect(self, client_name: str = "client.example.net") -> Session:
        """Open a new session; the server's greeting is in ``session.greeting``."""
        number = len(self.recorders) + 1
        session_id = f"{self.name}-{number}"
        client = f"192.0.2.{10 + number % 200}:{49151 + number}"
        recorder = Recorder(session_id, "lab", client=client, server=SERVER_ADDRESS)
        server = ServerSession(
            policy=self.policy,
            store=self.store,
            recorder=recorder,
            clock=self.clock,
            config=self.config,
            client=client,
            before_reply=self._processing_pause,
        )
        self.recorders.append(recorder)
        link = InProcessLink(server, self.clock, self.network_delay)
        return Session(
            link,
            name=session_id,
            client_name=client_name,
            transcript=lambda: to_frame(recorder.tuples),
        )

    def send(
        self,
        mail_from: str,
        recipients: str | Iterable[str],
        subject: str = "Hello",
        body: str = "Hello from smtplab.\n",
        *,
        message: str | bytes | EmailMessage | None = None,
        client_name: str = "client.example.net",
        ehlo: bool = True,
    ) -> SendResult:
        """Send one message in a complete session: EHLO, MAIL, one RCPT each, DATA, QUIT.

        Like ``smtplib.sendmail``, refused recipients are reported, not raised; the message
        is delivered to the accepted ones. Without ``message`` one is built from ``subject``
        and ``body`` with the usual headers, dated by the lab's clock.
        """
        if isinstance(recipients, str):
            recipients = [recipients]
        recipients = list(recipients)
        session = self.connect(client_name)
        log: list[tuple[str, Reply]] = [("CONNECT", session.greeting)]
        result = SendResult(session.name, [], {}, session.greeting, False, log, self)

        def step(verb: str, reply: Reply) -> Reply:
            log.append((verb, reply))
            result.reply = reply
            return reply

        if session.greeting.code == 220:
            hello = step("EHLO", session.ehlo()) if ehlo else step("HELO", session.helo())
            if hello.code == 250 and step("MAIL", session.mail(mail_from)).code == 250:
                for rcpt in recipients:
                    reply = step("RCPT", session.rcpt(rcpt))
                    if reply.code in (250, 251):
                        result.accepted.append(rcpt)
                    else:
                        result.refused[rcpt] = reply
                if result.accepted and step("DATA", session.data()).code == 354:
                    content = message or self.build_message(mail_from, recipients, subject, body)
                    result.delivered = step("DATA-END", session.message(content)).code == 250
        if not session.closed:
            log.append(("QUIT", session.quit()))
        return result

    def build_message(
        self, mail_from: str, recipients: list[str], subject: str, body: str
    ) -> EmailMessage:
        """A plain-text message with Date, From, To, Subject and Message-ID headers."""
        msg = EmailMessage()
        msg["Date"] = format_datetime(self.clock.datetime())
        msg["From"] = mail_from or "<>"
        msg["To"] = ", ".join(recipients)
        msg["Subject"] = subject
        msg["Message-ID"] = f"<{len(self.recorders)}.{int(self.clock())}@client.example.net>"
        msg.set_content(body)
        return msg

    def transcript(self) -> Any:
        """Every session of this lab as one transcript DataFrame."""
        return to_frame(row for recorder in self.recorders for row in recorder.tuples)

    @property
    def messages(self) -> list[StoredMessage]:
        """The messages the server accepted (and stored) so far."""
        return list(self.store.messages)
