"""Conformance probes: grade any SMTP server against RFC 5321 and the ESMTP RFCs.

``smtplab.check("host:port")`` runs every probe and returns a :class:`CheckReport`;
``smtplab.compare({...})`` runs them against several servers side by side.
"""

from smtplab.conformance.probe import Probe, Prober, Verdict
from smtplab.conformance.report import styled, write_report
from smtplab.conformance.suite import PROBES, CheckReport, check, compare, probe_names

__all__ = [
    "PROBES",
    "CheckReport",
    "Probe",
    "Prober",
    "Verdict",
    "check",
    "compare",
    "probe_names",
    "styled",
    "write_report",
]
