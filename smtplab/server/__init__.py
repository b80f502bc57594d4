"""Server behaviour: policies, fault injection, message stores, and the session driver."""

from smtplab.server.faults import Fault, Faults
from smtplab.server.mailboxes import Mailboxes
from smtplab.server.maildir import MaildirStore
from smtplab.server.policy import QUEUE_ID, Answer, Context, Decision, Drop, Policy
from smtplab.server.session import ServerSession
from smtplab.server.store import MemoryStore, Store, StoredMessage

__all__ = [
    "QUEUE_ID",
    "Answer",
    "Context",
    "Decision",
    "Drop",
    "Fault",
    "Faults",
    "Mailboxes",
    "MaildirStore",
    "MemoryStore",
    "Policy",
    "ServerSession",
    "Store",
    "StoredMessage",
]
