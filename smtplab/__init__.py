"""smtplab: an SMTP protocol workbench for Jupyter.

Run SMTP sessions in-process (deterministic, no sockets), see every command and reply as a
pandas row, and learn what each reply means::

    import smtplab
    lab = smtplab.Lab()
    lab.send("alice@example.net", ["bob@example.org"])
    lab.transcript()
    smtplab.explain("550 5.1.1")
"""

from smtplab.client.aio import AsyncSession, aconnect
from smtplab.client.session import Session
from smtplab.client.tcp import connect
from smtplab.conformance import check, compare
from smtplab.ingest import IngestError, IngestWarning, read
from smtplab.lab import Lab, SendResult
from smtplab.log.frame import concat
from smtplab.protocol import LineEndings, LocalProtocolError, RemoteProtocolError, Reply, State
from smtplab.protocol.codes import explain
from smtplab.protocol.config import ServerConfig
from smtplab.scenarios import run_scenario, scenario, scenarios
from smtplab.server import Context, Fault, Faults, Mailboxes, MaildirStore, MemoryStore, Policy
from smtplab.traffic import simulate
from smtplab.transport.tcp import ServerThread, TcpServer

__version__ = "0.1.0"

__all__ = [
    "AsyncSession",
    "Context",
    "Fault",
    "Faults",
    "IngestError",
    "IngestWarning",
    "Lab",
    "LineEndings",
    "LocalProtocolError",
    "Mailboxes",
    "MaildirStore",
    "MemoryStore",
    "Policy",
    "RemoteProtocolError",
    "Reply",
    "SendResult",
    "ServerConfig",
    "ServerThread",
    "Session",
    "State",
    "TcpServer",
    "__version__",
    "aconnect",
    "check",
    "compare",
    "concat",
    "connect",
    "explain",
    "read",
    "run_scenario",
    "scenario",
    "scenarios",
    "simulate",
]
