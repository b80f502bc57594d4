"""Server behaviour: policies, message stores, and the session driver."""

from smtplab.server.mailboxes import Mailboxes
from smtplab.server.policy import QUEUE_ID, Context, Policy
from smtplab.server.session import ServerSession
from smtplab.server.store import MemoryStore, StoredMessage

__all__ = [
    "QUEUE_ID",
    "Context",
    "Mailboxes",
    "MemoryStore",
    "Policy",
    "ServerSession",
    "StoredMessage",
]
