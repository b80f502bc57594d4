"""smtplab: an SMTP protocol workbench for Jupyter.

Run SMTP sessions in-process (deterministic, no sockets), see every command and reply as a
pandas row, and learn what each reply means::

    import smtplab
    lab = smtplab.Lab()
    lab.send("alice@example.net", ["bob@example.org"])
    lab.transcript()
    smtplab.explain("550 5.1.1")

The names below are imported on first use (PEP 562), so ``import smtplab.protocol`` - the
sans-IO core - needs the standard library alone: pandas, asyncio and ssl come in with the parts
that use them. Subpackages load the same way: ``smtplab.viz`` works after ``import smtplab``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Each public name, and the module that defines it.
_EXPORTS = {
    "AsyncSession": "smtplab.transport.aio_client",
    "aconnect": "smtplab.transport.aio_client",
    "Session": "smtplab.client.session",
    "connect": "smtplab.transport.tcp_client",
    "check": "smtplab.conformance",
    "compare": "smtplab.conformance",
    "IngestError": "smtplab.ingest",
    "IngestWarning": "smtplab.ingest",
    "read": "smtplab.ingest",
    "read_dataset": "smtplab.ingest.dataset",
    "dask_dataset": "smtplab.ingest.dataset",
    "write_dataset": "smtplab.ingest.dataset",
    "Lab": "smtplab.teaching.lab",
    "SendResult": "smtplab.teaching.lab",
    "concat": "smtplab.log.frame",
    "LineEndings": "smtplab.protocol",
    "LocalProtocolError": "smtplab.protocol",
    "RemoteProtocolError": "smtplab.protocol",
    "Reply": "smtplab.protocol",
    "State": "smtplab.protocol",
    "explain": "smtplab.protocol.codes",
    "ServerConfig": "smtplab.protocol.config",
    "run_scenario": "smtplab.teaching.scenarios",
    "scenario": "smtplab.teaching.scenarios",
    "scenarios": "smtplab.teaching.scenarios",
    "Context": "smtplab.server",
    "Fault": "smtplab.server",
    "Faults": "smtplab.server",
    "Mailboxes": "smtplab.server",
    "MaildirStore": "smtplab.server",
    "MemoryStore": "smtplab.server",
    "Policy": "smtplab.server",
    "simulate": "smtplab.teaching.traffic",
    "ServerThread": "smtplab.transport.tcp_server",
    "TcpServer": "smtplab.transport.tcp_server",
}

_SUBMODULES = frozenset(
    {
        "analysis", "cli", "client", "conformance", "ingest", "log", "private_postfix",
        "protocol", "server", "teaching", "transport", "viz",
    }
)  # fmt: skip

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
    "dask_dataset",
    "explain",
    "read",
    "read_dataset",
    "run_scenario",
    "scenario",
    "scenarios",
    "simulate",
    "write_dataset",
]


def __getattr__(name: str) -> Any:
    """Import a public name or a subpackage the first time it is asked for."""
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # found by ordinary lookup from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})


if TYPE_CHECKING:  # what type checkers and editors see: the same names, imported eagerly
    from smtplab.client.session import Session
    from smtplab.conformance import check, compare
    from smtplab.ingest import IngestError, IngestWarning, read
    from smtplab.ingest.dataset import dask_dataset, read_dataset, write_dataset
    from smtplab.log.frame import concat
    from smtplab.protocol import LineEndings, LocalProtocolError, RemoteProtocolError, Reply, State
    from smtplab.protocol.codes import explain
    from smtplab.protocol.config import ServerConfig
    from smtplab.server import Context, Fault, Faults, Mailboxes, MaildirStore, MemoryStore, Policy
    from smtplab.teaching.lab import Lab, SendResult
    from smtplab.teaching.scenarios import run_scenario, scenario, scenarios
    from smtplab.teaching.traffic import simulate
    from smtplab.transport.aio_client import AsyncSession, aconnect
    from smtplab.transport.tcp_client import connect
    from smtplab.transport.tcp_server import ServerThread, TcpServer
