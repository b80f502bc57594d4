"""Message stores: where the server puts a message before it says 250.

A store's :meth:`Store.deliver` either keeps the whole message and returns its id, or
raises; the server acknowledges with 250 only after it returned (RFC 5321 4.1.1.4: the 250
means the server has taken responsibility for the message). A ``Received:`` trace header is
added at the top, as RFC 5321 4.4 requires of every SMTP server that accepts a message.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from typing import Any


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One accepted message with its envelope."""

    id: str
    mail_from: str
    recipients: tuple[str, ...]
    content: bytes  # as stored: Received header, then the message as received
    time: float  # POSIX seconds when it was accepted
    session: str
    # ESMTP parameters of MAIL (SIZE, BODY, SMTPUTF8, RET, ENVID) and of each recipient that
    # had any (NOTIFY, ORCPT; RFC 3461), as the client sent them.
    mail_params: dict[str, str | None] = field(default_factory=dict)
    rcpt_params: dict[str, dict[str, str | None]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def message(self) -> EmailMessage:
        """The message parsed with the standard library's modern email API."""
        return email.message_from_bytes(self.content, policy=email.policy.default)  # type: ignore[return-value]


def received_header(
    *,
    client_domain: str | None,
    client_address: str,
    hostname: str,
    protocol: str,
    queue_id: str,
    recipient: str | None,
    time: float,
) -> bytes:
    """A ``Received:`` line as RFC 5321 4.4 defines it (From, By, With, ID, For, date)."""
    host = client_address.rsplit(":", 1)[0]
    when = _rfc5322_date(int(time))
    line = f"Received: from {client_domain or 'unknown'} ([{host}])\r\n\tby {hostname} (smtplab)"
    line += f" with {protocol} id {queue_id}"
    if recipient:
        line += f"\r\n\tfor <{recipient}>"
    return f"{line}; {when}\r\n".encode()


@lru_cache(maxsize=64)
def _rfc5322_date(second: int) -> str:
    return format_datetime(datetime.fromtimestamp(second, UTC))


#: How many of the last delivered ids a store remembers (:attr:`Store.recent_ids`).
RECENT_IDS = 20


class Store:
    """What the server needs of a message store; subclasses keep the messages somewhere.

    :meth:`deliver` must keep the whole message or raise, never half of it: the server says
    250 only after it returned, and 451 when it raised.

    ``blocking`` says whether :meth:`deliver` may wait on I/O (a disk, a network): a server on
    an event loop then runs it in a worker thread, one message at a time, so a store need not
    be thread-safe and other clients are still answered meanwhile.
    """

    blocking = True

    def __init__(self) -> None:
        self._delivered = 0  # messages delivered through this object (for fresh ids)
        #: The ids of the last :data:`RECENT_IDS` messages delivered through this object.
        self.recent_ids: deque[str] = deque(maxlen=RECENT_IDS)

    @property
    def delivered(self) -> int:
        """How many messages were delivered through this object (not what a Maildir held
        before it was opened): what ``smtplab serve`` reports at stop, reading nothing back."""
        return self._delivered

    @property
    def messages(self) -> list[StoredMessage]:
        """Every stored message, oldest first."""
        raise NotImplementedError

    def new_id(self, session: str, time: float) -> str:
        """A short id, unique and deterministic (same session, time and count, same id)."""
        seed = f"{session}/{time}/{self._delivered}".encode()
        return hashlib.sha1(seed).hexdigest()[:10].upper()

    def deliver(
        self,
        queue_id: str,
        mail_from: str,
        recipients: list[str],
        content: bytes,
        time: float,
        session: str,
        mail_params: dict[str, str | None] | None = None,
        rcpt_params: dict[str, dict[str, str | None]] | None = None,
    ) -> StoredMessage:
        """Keep the message; return it as stored. Raise (keeping nothing) if that fails."""
        stored = StoredMessage(
            queue_id,
            mail_from,
            tuple(recipients),
            content,
            time,
            session,
            dict(mail_params or {}),
            {rcpt: dict(params) for rcpt, params in (rcpt_params or {}).items()},
        )
        self._keep(stored)
        self._delivered += 1
        self.recent_ids.append(queue_id)
        return stored

    def _keep(self, message: StoredMessage) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Iterator[StoredMessage]:
        return iter(self.messages)

    def frame(self) -> Any:
        """The stored messages as a DataFrame: id, envelope, subject, size, time."""
        import pandas as pd

        rows = [
            {
                "id": m.id,
                "session": m.session,
                "time": pd.Timestamp(round(m.time * 1e6), unit="us", tz="UTC"),
                "mail_from": m.mail_from,
                "recipients": ", ".join(m.recipients),
                "subject": m.message.get("Subject", ""),
                "size": m.size,
            }
            for m in self.messages
        ]
        columns = ["id", "session", "time", "mail_from", "recipients", "subject", "size"]
        return pd.DataFrame(rows, columns=columns)


class MemoryStore(Store):
    """Keeps accepted messages in memory (the lab's default): all of them, or the last ``keep``.

    A server facing real clients for a long time keeps a bounded number (``TcpServer`` and
    ``smtplab serve`` keep the last 1000 by default); older messages are forgotten, which the
    250 allowed: a memory store is for looking at, not for mail that must survive.
    """

    blocking = False  # a list append: done at once, on the event loop

    def __init__(self, keep: int | None = None) -> None:
        super().__init__()
        if keep is not None and keep < 0:
            raise ValueError("keep must be a number of messages, 0 or more (None: all)")
        self.keep = keep
        self._messages: deque[StoredMessage] = deque(maxlen=keep)

    @property
    def messages(self) -> list[StoredMessage]:
        return list(self._messages)

    def _keep(self, message: StoredMessage) -> None:
        self._messages.append(message)

    def __len__(self) -> int:
        return len(self._messages)
