"""Run the probes against a server, or several, and collect the verdicts as a table.

::

    report = smtplab.check("127.0.0.1:2525")          # every probe
    report.table                                      # probe, rfc, status, detail, replies
    report.transcript                                 # every probe's rows: the evidence
    smtplab.compare({"smtplab": "127.0.0.1:2525", "postfix": "127.0.0.1:25"})

Probes run one after another, each on its own connections, in the order of :data:`PROBES`;
the reply-syntax probe runs last and judges the replies all the others received.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from smtplab.conformance import probes_basic, probes_data, probes_extensions
from smtplab.conformance.probe import (
    ERROR,
    NOT_APPLICABLE,
    STATUSES,
    Probe,
    ProbeError,
    Prober,
    Verdict,
    said,
)

PROBES: list[Probe] = [
    *probes_basic.PROBES,
    *probes_data.PROBES,
    *probes_extensions.PROBES,
    probes_extensions.REPLY_SYNTAX,
]
COLUMNS = ["probe", "rfc", "title", "status", "detail", "replies"]


def probe_names() -> list[str]:
    return [probe.name for probe in PROBES]


@dataclass
class CheckReport:
    """What :func:`check` found: one row per probe, and the transcripts behind them."""

    server: str
    table: pd.DataFrame
    transcript: pd.DataFrame

    def counts(self) -> dict[str, int]:
        """How many probes ended in each status."""
        counts = self.table["status"].value_counts()
        return {status: int(counts.get(status, 0)) for status in STATUSES}

    def failures(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "fail"]

    def evidence(self, probe: str) -> pd.DataFrame:
        """The transcript rows of one probe's connections."""
        names = self.transcript["session"].astype(str)
        return self.transcript[names.str.rsplit("-", n=1).str[0] == probe]

    def __repr__(self) -> str:
        summary = ", ".join(f"{n} {s}" for s, n in self.counts().items() if n)
        return f"<CheckReport {self.server}: {summary}>"

    def _repr_html_(self) -> str:
        from smtplab.conformance.report import table_html

        return table_html(self)


def parse_target(server: str) -> tuple[str, int]:
    """``"host:port"`` (or ``[v6]:port``) as ``(host, port)``."""
    host, _, port = server.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"the server must be given as HOST:PORT (port 1-65535), not {server!r}")
    return host.strip("[]"), int(port)


def check(
    server: str,
    probes: Iterable[str] | None = None,
    *,
    sender: str = "probe@example.net",
    recipient: str = "postmaster",
    timeout: float = 10.0,
    quiet: float = 0.6,
    progress: Any = None,
) -> CheckReport:
    """Run the probes (all, or those named) against ``server`` (``host:port``).

    ``recipient`` must be an address the server accepts mail for; ``postmaster`` works on
    any conforming server (RFC 5321 4.5.1). ``quiet`` is how long a silence must last to
    count as no reply: raise it for a slow server. ``progress`` is called with each probe's
    name when it has run (the CLI shows a progress bar with it). A server that cannot be
    reached at all raises ConnectionError before any probe runs.
    """
    host, port = parse_target(server)
    chosen = _choose(probes)
    prober = Prober(host, port, sender=sender, recipient=recipient, timeout=timeout, quiet=quiet)
    _reachable(prober)
    rows = []
    for probe in chosen:
        prober.current = probe.name
        verdict = _run(prober, probe)
        if progress is not None:
            progress(probe.name)
        rows.append(
            [probe.name, probe.rfc, probe.title, verdict.status, verdict.detail, verdict.replies]
        )
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["status"] = pd.Categorical(table["status"], categories=list(STATUSES))
    return CheckReport(server, table, prober.transcript())


def _reachable(prober: Prober) -> None:
    """Stop before probing a server that cannot be reached or will not serve (a 554 or 421
    greeting, RFC 5321 3.1, 3.8; or none): no probe could tell anything."""
    saved, prober.current = prober.current, "greeting-check"
    try:
        connection = prober.connect()
    except OSError as error:
        raise ConnectionError(str(error)) from None
    greeting = connection.greeting()
    connection.quit()
    prober.connections.remove(connection)
    prober.current = saved
    if greeting is None and connection.garbage:
        raise ConnectionError(
            f"{prober.host}:{prober.port} does not speak SMTP, so there is nothing to probe: "
            f"what it sent first is no greeting ({connection.garbage[0]})"
        )
    if greeting is None or greeting.code != 220:
        raise ConnectionError(
            f"{prober.host}:{prober.port} did not greet with 220 ({said(greeting)}): it "
            "refuses service, so there is nothing to probe"
        )


def _choose(names: Iterable[str] | None) -> list[Probe]:
    if names is None:
        return list(PROBES)
    wanted = list(names)
    unknown = [name for name in wanted if name not in probe_names()]
    if unknown:
        raise ValueError(
            f"no probe named {', '.join(unknown)}; the probes are: {', '.join(probe_names())}"
        )
    return [probe for probe in PROBES if probe.name in wanted]


def _run(prober: Prober, probe: Probe) -> Verdict:
    try:
        if probe.needs is not None and probe.needs not in prober.extensions:
            return Verdict(NOT_APPLICABLE, f"the server does not advertise {probe.needs}")
        return probe.check(prober)
    except (ProbeError, ConnectionError, OSError) as error:
        return Verdict(ERROR, f"the probe could not run: {error}")


def compare(
    servers: Mapping[str, str], probes: Iterable[str] | None = None, **options: Any
) -> pd.DataFrame:
    """The same probes against several servers: one row per probe, one column per server.

    Each cell is ``status: replies`` (``pass: 503 5.5.1``). The frame's ``attrs["reports"]``
    keeps each server's :class:`CheckReport`; :func:`smtplab.conformance.report.styled`
    highlights the rows where the servers differ.
    """
    chosen = list(probes) if probes is not None else None
    reports = {name: check(server, chosen, **options) for name, server in servers.items()}
    first = next(iter(reports.values())).table
    table = pd.DataFrame(
        {"rfc": first["rfc"].to_numpy()}, index=pd.Index(first["probe"], name="probe")
    )
    for name, report in reports.items():
        cells = report.table["status"].astype(str) + ": " + report.table["replies"].astype(str)
        table[name] = cells.str.rstrip(": ").to_numpy()
    statuses = pd.DataFrame(
        {name: r.table["status"].astype(str).to_numpy() for name, r in reports.items()}
    )
    table["differs"] = (statuses.nunique(axis=1) > 1).to_numpy()
    table.attrs["reports"] = reports
    return table
