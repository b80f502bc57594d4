"""What a probe is, what it concludes, and the context it runs in.

A :class:`Probe` is a short scripted conversation with the server under test and a rule, tied
to an RFC section, that turns what the server answered into a :class:`Verdict`:

* ``pass`` — the server did what the RFC requires (or one of the things it allows);
* ``fail`` — it did what the RFC forbids, or not what it requires;
* ``warn`` — allowed, but worth knowing (accepting a bare LF as a line end; refusing VRFY
  with 502 where 252 is the polite answer);
* ``n/a`` — the probe needs an extension the server does not advertise (SIZE, PIPELINING,
  CHUNKING, STARTTLS);
* ``error`` — the probe could not run (no connection, no greeting).

Each probe opens its own connections through a :class:`Prober`, which records them all; a
verdict's evidence is those rows, and its ``replies`` the few replies that decided it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from smtplab.conformance.connection import ProbeConnection
from smtplab.log.frame import concat
from smtplab.protocol.events import Reply

PASS, FAIL, WARN, NOT_APPLICABLE, ERROR = "pass", "fail", "warn", "n/a", "error"
STATUSES = (PASS, FAIL, WARN, NOT_APPLICABLE, ERROR)


@dataclass(frozen=True)
class Verdict:
    """A probe's conclusion: its status, why (in words), and the replies that decided it."""

    status: str
    detail: str
    replies: str = ""  # e.g. "503 5.5.1" or "250, 250, 354, 250"


@dataclass(frozen=True)
class Probe:
    """A named check of one rule, with the RFC section that states it."""

    name: str
    rfc: str
    title: str
    check: Callable[[Prober], Verdict] = field(repr=False)
    needs: str | None = None  # an EHLO keyword; without it the probe is n/a


class ProbeError(Exception):
    """The probe could not get as far as its question (no connection, a refused greeting)."""


class Prober:
    """The server under test, and every connection the probes open to it."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str = "probe@example.net",
        recipient: str = "postmaster",
        helo: str = "probe.example.net",
        timeout: float = 10.0,
        quiet: float = 0.6,
    ) -> None:
        self.host, self.port = host, port
        self.sender, self.recipient, self.helo = sender, recipient, helo
        self.timeout, self.quiet = timeout, quiet
        self.connections: list[ProbeConnection] = []
        self.current = "probe"  # the probe running: names its sessions
        self._extensions: dict[str, str] | None = None

    def connect(self) -> ProbeConnection:
        """A new recorded connection, not yet greeted."""
        number = sum(c.name.startswith(f"{self.current}-") for c in self.connections) + 1
        connection = ProbeConnection(
            self.host, self.port, f"{self.current}-{number}", self.timeout, self.quiet
        )
        self.connections.append(connection)
        return connection

    def session(self, ehlo: bool = True) -> ProbeConnection:
        """A connection past the greeting, and past EHLO unless ``ehlo`` is False."""
        connection = self.connect()
        greeting = connection.greeting()
        if greeting is None or greeting.code != 220:
            connection.close()
            raise ProbeError(f"the server did not greet with 220 ({said(greeting)})")
        if ehlo:
            reply = connection.ehlo(self.helo)
            if reply is None or reply.code != 250:
                connection.quit()
                raise ProbeError(f"EHLO was not accepted ({said(reply)})")
        return connection

    @property
    def extensions(self) -> dict[str, str]:
        """What the server advertises in its EHLO reply (asked once)."""
        if self._extensions is None:
            saved, self.current = self.current, "capabilities"
            connection = self.session()
            self._extensions = dict(connection.extensions)
            connection.quit()
            self.current = saved
        return self._extensions

    def transcript(self, prefix: str | None = None) -> pd.DataFrame:
        """The rows of every connection (of one probe, with ``prefix`` its name)."""
        chosen = [
            c for c in self.connections if prefix is None or c.name.rsplit("-", 1)[0] == prefix
        ]
        return concat(c.transcript() for c in chosen)


def said(reply: Reply | None) -> str:
    """``"503 5.5.1"`` (code and enhanced code), or ``"no reply"``."""
    if reply is None:
        return "no reply"
    return f"{reply.code} {reply.enhanced}" if reply.enhanced else str(reply.code)


def said_all(replies: list[Reply | None]) -> str:
    return ", ".join(said(reply) for reply in replies) or "no reply"
