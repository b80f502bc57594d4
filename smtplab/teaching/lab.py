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
from datetime import datetime
from email.message import EmailMessage
from functools import partial
from itertools import chain
from typing import Any

from smtplab.client.sender import SendResult, plain_message, send_message
from smtplab.client.session import Session, to_bytes
from smtplab.log.frame import to_frame
from smtplab.log.recorder import Recorder
from smtplab.protocol.framing import LineEndings
from smtplab.protocol.server import ServerConfig
from smtplab.server.mailboxes import Mailboxes
from smtplab.server.policy import Policy
from smtplab.server.session import ServerSession
from smtplab.server.store import MemoryStore, Store, StoredMessage
from smtplab.transport.memory import DEFAULT_START, InProcessLink, VirtualClock, to_ns

SERVER_ADDRESS = "192.0.2.25:25"  # RFC 5737 documentation addresses: never a real host
CLIENT_HOST = "192.0.2.10"  # where lab clients connect from, unless told otherwise


class Lab:
    """An in-process SMTP server with a policy, a store, a virtual clock and a recorder."""

    def __init__(
        self,
        policy: Policy | None = None,
        config: ServerConfig | None = None,
        *,
        line_endings: LineEndings | str | None = None,
        store: Store | None = None,
        start: datetime | float = DEFAULT_START,
        network_delay: float = 0.001,
        processing_time: float = 0.0002,
        name: str = "lab",
        error_limit: int | None = None,
    ) -> None:
        config = config or ServerConfig()
        if "STARTTLS" in config.extensions:
            raise ValueError(
                "the in-process lab has no TLS: use smtplab.TcpServer(tls=True) for STARTTLS"
            )
        if line_endings is not None:
            config = dataclasses.replace(config, line_endings=LineEndings(line_endings))
        self.policy = policy or Mailboxes()
        self.config = config
        self.store = store if store is not None else MemoryStore()  # an empty store is falsy
        self.clock = VirtualClock(start)
        self.network_delay = network_delay
        if processing_time < 0:
            raise ValueError("a processing time cannot be negative")
        self.processing_time = processing_time
        self._processing_pause = (
            partial(self.clock.advance_ns, to_ns(processing_time)) if processing_time else None
        )
        self.name = name
        self.error_limit = error_limit  # 421 4.7.0 after this many error replies (None: never)
        self.recorders: list[Recorder] = []

    def connect(
        self, client_name: str = "client.example.net", client_address: str = CLIENT_HOST
    ) -> Session:
        """Open a new session; the server's greeting is in ``session.greeting``.

        ``client_address`` is the host the client connects from (each session gets its own
        port); greylisting, for one, recognises a client by it.
        """
        number = len(self.recorders) + 1
        session_id = f"{self.name}-{number}"
        client = f"{client_address}:{49151 + number}"
        recorder = Recorder(session_id, "lab", client=client, server=SERVER_ADDRESS)
        server = ServerSession(
            policy=self.policy,
            store=self.store,
            recorder=recorder,
            clock=self.clock.now,  # the bound method: cheaper to call than the clock itself
            config=self.config,
            client=client,
            before_reply=self._processing_pause,
            wait=self.clock.advance,
            error_limit=self.error_limit,
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
        client_address: str = CLIENT_HOST,
        ehlo: bool = True,
        follow_redirects: bool = False,
        retries: int = 0,
        retry_delay: float = 300.0,
        pipelining: bool = False,
        chunking: bool = False,
        chunk_size: int | None = None,
    ) -> SendResult:
        """Send one message in a complete session: EHLO, MAIL, one RCPT each, DATA, QUIT.

        Like ``smtplib.sendmail``, refused recipients are reported, not raised; the message
        is delivered to the accepted ones. Without ``message`` one is built from ``subject``
        and ``body`` with the usual headers, dated by the lab's clock.

        ``follow_redirects`` retries a recipient refused with 551 at the forward-path the
        reply names; ``retries`` sends again, in new sessions after ``retry_delay`` seconds
        of virtual time (doubling each time), to the recipients that met a 4xx reply - which
        is how a real mail queue gets past greylisting. ``pipelining`` sends the envelope and
        DATA as one group (RFC 2920); ``chunking`` sends the message with BDAT (RFC 3030), in
        chunks of ``chunk_size`` octets. See :mod:`smtplab.client.sender`.
        """
        if isinstance(recipients, str):
            recipients = [recipients]
        recipients = list(recipients)

        def content() -> bytes:
            return to_bytes(message or self.build_message(mail_from, recipients, subject, body))

        return send_message(
            lambda: self.connect(client_name, client_address),
            mail_from,
            recipients,
            content,
            ehlo=ehlo,
            follow_redirects=follow_redirects,
            retries=retries,
            retry_delay=retry_delay,
            wait=self.clock.advance,
            transcript=self.transcript,
            pipelining=pipelining,
            chunking=chunking,
            chunk_size=chunk_size,
        )

    def build_message(
        self, mail_from: str, recipients: list[str], subject: str, body: str
    ) -> EmailMessage:
        """A plain-text message with Date, From, To, Subject and Message-ID headers, dated by
        the lab's clock (so the same calls give the same message)."""
        return plain_message(
            mail_from,
            recipients,
            subject,
            body,
            date=self.clock.datetime(),
            message_id=f"<{len(self.recorders)}.{int(self.clock())}@client.example.net>",
        )

    def transcript(self) -> Any:
        """Every session of this lab as one transcript DataFrame."""
        return to_frame(list(chain.from_iterable(recorder.tuples for recorder in self.recorders)))

    @property
    def messages(self) -> list[StoredMessage]:
        """The messages the server accepted (and stored) so far."""
        return list(self.store.messages)
