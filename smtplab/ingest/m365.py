"""Microsoft 365 (Exchange Online) message trace exports into rows: one session per message.

Theory of operation
-------------------
A message trace (Microsoft, ``Get-MessageTrace`` / ``Get-MessageTraceV2`` and the Exchange
admin center's message trace report; the Graph ``exchangeMessageTrace`` resource documents
the same properties) has one row per message and recipient: ``Received`` (when Exchange
Online took the message, UTC), ``Sender address``, ``Recipient address``, ``Subject``,
``Status`` (``Delivered``, ``Failed``, ``Pending`` (deferred, being retried), ``Expanded``
(a group was expanded), ``Quarantined``, ``Filtered as spam``, ``Getting status``, ``None``),
``Message ID`` (the Message-ID header), ``Message trace ID`` (the message in the service),
``From IP`` (for a message coming in: the sending server's address), ``To IP`` (for a
message going out: the receiving server's) and ``Size``. Exported as CSV the columns are
named as the report shows them (``Sender address``) or as the cmdlet's properties
(``SenderAddress``, and a ``#TYPE`` line first from Windows PowerShell's ``Export-Csv``);
both are read, by name, whatever their order.

A message trace knows messages, not SMTP: no command, no reply code, no connection. A
session here is one message (its ``Message trace ID``, else its ``Message ID``), with what
the export knows and nothing more:

* a ``connect`` row with no time, the client ``From IP`` and the server ``To IP`` where the
  export has them (no port), and a note saying what the trace cannot know;
* a note at ``Received`` with the message's ids, subject and size; its MAIL (``FROM:<sender
  address>``) and a RCPT per recipient, with no time and no reply (the trace does not say
  how the SMTP commands were answered);
* a note per recipient with its ``Status``: the trace's verdict for that recipient, which is
  no SMTP reply (``Failed`` gives no code; the per-recipient detail report has the events).

Lines starting ``#`` before the header row (``#TYPE ...``) are passed over. A row that is
not CSV (an unclosed quote: each line is read alone, so a quote left open cannot swallow
the rows after it), has the wrong number of fields or an impossible ``Received`` time is
counted as skipped; a file with no header row of a message trace is an error naming it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from smtplab.ingest.exchange import parse_time, split_csv_line
from smtplab.ingest.packets import CaptureProblems
from smtplab.log.recorder import Recorder
from smtplab.log.schema import endpoint

#: The columns a message trace's header row must have (names lower-cased, spaces, ``_``
#: and ``-`` removed), and other spellings of them.
_NEEDED = ("received", "senderaddress", "recipientaddress", "status")
_ALIASES = {"receiveddatetime": "received", "sender": "senderaddress",
            "recipient": "recipientaddress", "fromip": "fromip", "toip": "toip",
            "date": "received", "dateutc": "received"}  # fmt: skip
#: What only a message trace's header row holds (see reader.detect).
M365_HEADER = re.compile(
    r"(?im)^(?=[^\n]*\breceived(?:datetime)?\b)(?=[^\n]*\bsender ?address\b)"
    r"(?=[^\n]*\brecipient ?address\b)(?=[^\n]*\bstatus\b)(?=[^\n]*\bmessage ?trace ?id\b)"
)
_NO_SMTP = (
    "Microsoft 365 message trace: one row per message and recipient; no SMTP command, reply "
    "code or connection is in it"
)


class M365FormatError(ValueError):
    """Not a message trace export: no header row of one (the message names the file)."""


def _column(name: str) -> str:
    key = re.sub(r"[\s_\-()]", "", name.strip().strip('"').lower())
    return _ALIASES.get(key, key)


class M365Reader:
    """Reads a message trace export into sessions (see the module docstring)."""

    def __init__(self, name: str, prefix: str, problems: CaptureProblems) -> None:
        self.name, self.prefix, self.problems = name, prefix, problems
        self.sessions: dict[str, Recorder] = {}  # message -> its session, in order of rows
        self._columns: list[str] | None = None

    def read(self, lines: Iterable[str]) -> list[tuple]:  # type: ignore[type-arg]
        """The rows of every message in ``lines``, message by message."""
        first: tuple[int, str] | None = None
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\r\n").removeprefix("\ufeff")
            if not line.strip() or (self._columns is None and line.startswith("#")):
                continue
            values = split_csv_line(line)
            if self._columns is None:
                columns = [_column(value) for value in values or []]
                if all(needed in columns for needed in _NEEDED):
                    self._columns = columns
                    continue
                first = first or (number, line)
                self.problems.add("not a message trace line", f"{self.name} line {number}")
                continue
            if values is None or len(values) != len(self._columns):
                self.problems.add("not a message trace line", f"{self.name} line {number}")
                continue
            row = dict(zip(self._columns, values, strict=True))
            try:
                time = parse_time(_us_or_iso(row["received"]))
            except (ValueError, OverflowError):
                self.problems.add("impossible Received time", f"{self.name} line {number}")
                continue
            self._row(time, row)
        if self._columns is None:
            number, line = first or (1, "")
            raise M365FormatError(
                f"{self.name} line {number}: not a message trace export ({line[:60]!r}): its "
                "header row names Received, Sender address, Recipient address and Status"
            )
        return [row for recorder in self.sessions.values() for row in recorder.tuples]

    def _row(self, time: float, row: dict[str, str]) -> None:
        key = row.get("messagetraceid") or row.get("messageid") or f"row-{len(self.sessions)}"
        recorder = self.sessions.get(key)
        if recorder is None:
            client = row.get("fromip", "").strip()
            server = row.get("toip", "").strip()
            recorder = Recorder(
                f"{self.prefix}-{len(self.sessions) + 1}",
                "m365",
                endpoint((client[:64], None)) if client else None,
                endpoint((server[:64], None)) if server else None,
            )
            recorder.connect(None, expects_reply=False)
            recorder.note(None, _NO_SMTP)
            details = [f"{name}={row[name]}" for name in ("messageid", "messagetraceid",
                       "subject", "size") if row.get(name)]  # fmt: skip
            recorder.note(time, "Microsoft 365 received: " + " ".join(details))
            recorder.command(None, "MAIL", f"FROM:<{row.get('senderaddress', '')}>", False)
            self.sessions[key] = recorder
        recipient = row.get("recipientaddress", "")
        recorder.command(None, "RCPT", f"TO:<{recipient}>", expects_reply=False)
        recorder.note(time, f"to=<{recipient}> status={row.get('status', '')}")


def _us_or_iso(value: str) -> str:
    """A ``Received`` value as ISO 8601: the cmdlets' ``11/29/2026 1:57:55 AM`` (en-US, as
    Export-Csv writes it) or ISO 8601 already (the report's download)."""
    value = value.strip()
    for layout in ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M %p"):
        try:
            return dt.datetime.strptime(value, layout).isoformat()
        except ValueError:
            continue
    return value
