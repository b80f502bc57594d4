"""A message the policy accepted, waiting for the store to keep it before the 250 goes out.

The session driver makes one :class:`Delivery` per accepted message. In-process it is kept at
once; a transport with an event loop runs :meth:`Delivery.keep` in a worker thread (a Maildir
fsyncs) and hands the outcome back to
:meth:`~smtplab.server.session.ServerSession.finish_delivery`. Either way the 250 is sent only
after the store returned (RFC 5321 4.1.1.4 and 6.1: a 250 takes responsibility for the message).
"""

from __future__ import annotations

from dataclasses import dataclass

from smtplab.protocol.events import MessageReceived
from smtplab.server.policy import Decision
from smtplab.server.store import Store, StoredMessage


@dataclass(frozen=True, slots=True)
class Delivery:
    """Everything the store needs to keep one message, and the reply that waits for it."""

    store: Store
    queue_id: str
    mail_from: str
    recipients: tuple[str, ...]
    content: bytes  # Received header, then the message as received
    time: float
    session: str
    mail_params: dict[str, str | None]
    rcpt_params: dict[str, dict[str, str | None]]
    event: MessageReceived  # for the policy's on_delivered
    decision: Decision  # the policy's 250 (its text may hold the queue id placeholder)

    def keep(self) -> StoredMessage | Exception:
        """Have the store keep the message: the message as stored, or the exception that says
        why not. Touches nothing but the store, so it may run in a worker thread."""
        try:
            return self.store.deliver(
                self.queue_id,
                self.mail_from,
                list(self.recipients),
                self.content,
                self.time,
                self.session,
                self.mail_params,
                self.rcpt_params,
            )
        except Exception as error:  # the session answers 451, never 250
            return error
