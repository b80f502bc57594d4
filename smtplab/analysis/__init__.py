"""Analysis of transcript frames, live or captured: steps, sessions, transactions, messages,
reply codes.

Every function takes a transcript frame (``Lab.transcript()``, ``smtplab.read(...)``, a TCP
server's transcript) and returns a new pandas object; none changes its input.
"""

from smtplab.analysis.checks import oddities
from smtplab.analysis.codes import code_distribution, latencies, reply_classes
from smtplab.analysis.messages import bounce_class, messages
from smtplab.analysis.sessions import sessions
from smtplab.analysis.steps import steps
from smtplab.analysis.transactions import transactions

__all__ = [
    "bounce_class",
    "code_distribution",
    "latencies",
    "messages",
    "oddities",
    "reply_classes",
    "sessions",
    "steps",
    "transactions",
]
