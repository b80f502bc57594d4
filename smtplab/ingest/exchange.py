"""Exchange Server's message tracking log into rows: a session per SMTP RECEIVE or SEND.

Theory of operation
-------------------
Exchange 2013 to 2019 write a message tracking log (``MSGTRK*.LOG``; Microsoft, "Message
tracking in Exchange Server", and the field table of "Description of Message Tracking Log
Fields") as CSV after a header of ``#Software: Microsoft Exchange Server``, ``#Version:``,
``#Log-type: Message Tracking Log``, ``#Date:`` and ``#Fields: date-time,client-ip,...``
lines; the ``#Fields:`` line names the columns, and is read rather than assumed. Each line is
one event of one message on this server: ``event-id`` says which (``RECEIVE`` it was taken
in, ``SEND`` it was sent over SMTP to another server, ``DELIVER`` to a mailbox, ``FAIL``,
``DEFER``, ``DSN``, ``EXPAND``, ``RESOLVE``, ``REDIRECT``, ``TRANSFER``, ``AGENTINFO`` ...),
``source`` by what (``SMTP``, ``STOREDRIVER``, ``ROUTING``, ``AGENT`` ...). Fields used:
``date-time`` (UTC, ISO 8601), ``client-ip``/``client-hostname`` (who sent it to this
server, or this server when it sends), ``server-ip``/``server-hostname`` (the other end),
``source-context`` (for an SMTP event, its first part is the SMTP session's id),
``internal-message-id`` and ``message-id``, ``recipient-address`` and ``recipient-status``
(one value per recipient, separated by ``;``), ``total-bytes``, ``recipient-count``,
``message-subject``, ``sender-address`` (the header's Sender or From) and ``return-path``
(the envelope's MAIL FROM).

A session is what one SMTP connection did for this log: the ``RECEIVE`` events with
``source`` ``SMTP`` of one SMTP session id (``source-context``), from ``client-ip``; and each
``SEND`` event with ``source`` ``SMTP``, this server being the client of the next hop. Its
rows carry what the log knows and nothing more:

* a ``connect`` row with no time (the log has no connection events: Exchange's protocol log
  has them) and a note saying so; client and server as addresses (no port is logged);
* for each message: its MAIL (``FROM:<return-path>``), a RCPT per recipient, each with the
  reply ``recipient-status`` gives it when it has a code (``550 5.1.1 ...``; none is made up
  when it has none), and DATA (``total-bytes``), at the event's time; then a note with the
  event's fields. A ``RECEIVE`` means the message was taken: its commands were accepted;
* the message's later events (``DELIVER``, ``FAIL``, ``DEFER``, ``DSN``, ``EXPAND`` ...),
  matched by ``internal-message-id`` (or ``message-id``), as notes of the session that took
  it, their ``recipient-status`` included (a ``FAIL`` after the message was taken is no
  reply to the client).

The SMTP refusals Exchange made before taking a message (an unknown recipient refused at
RCPT, a blocked sender) are not in this log at all. Events of messages no session took
(submitted from a mailbox: ``source`` ``STOREDRIVER``) are passed over, and so are those
logged before the SMTP ``SEND`` that makes a session of a message (its ``SUBMIT``): a
message's events are joined to its session as they come, not kept for one that may follow.
A line that is not CSV (an unclosed quote) or has the wrong number of fields, or an
impossible ``date-time``, is counted as skipped.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterable

from smtplab.ingest.packets import CaptureProblems
from smtplab.log.recorder import Recorder
from smtplab.log.schema import endpoint
from smtplab.protocol.events import Reply

#: What only an Exchange message tracking log starts with (see reader.detect).
EXCHANGE_HEADER = re.compile(
    r"#Software: Microsoft Exchange Server\r?\n(?:#[^\n]*\n)*?#Log-type: Message Tracking Log\r?\n"
)
_STATUS = re.compile(
    r"(?P<code>[2-5]\d\d)(?:[ -](?P<enhanced>[245]\.\d{1,3}\.\d{1,3}))?(?: (?P<text>.*))?"
)
#: Where one recipient's status ends and the next one's starts: a ``;`` before a reply code.
_NEXT_STATUS = re.compile(r";(?=\s*[2-5]\d\d[ -])")
_NO_CONNECTION = (
    "Exchange's message tracking log: no connection events, and no SMTP refusal before a "
    "message was taken (the protocol log has those)"
)


class ExchangeFormatError(ValueError):
    """Not a message tracking log: no ``#Fields:`` line or no line of one (names the file)."""


def split_csv_line(line: str) -> list[str] | None:
    """The fields of one CSV line, or None for a line that is no CSV (an unclosed quote).
    Each line is split alone: a quote left open cannot swallow the lines after it."""
    if line.count('"') % 2:
        return None
    try:
        return next(csv.reader([line], strict=True))
    except (csv.Error, StopIteration):
        return None


def parse_time(value: str) -> float:
    """POSIX seconds of an ISO 8601 time (``2026-11-29T01:57:55.249Z``): UTC unless it says."""
    stamp = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def statuses(status: str, count: int) -> list[str]:
    """``recipient-status`` cut into one status per recipient (``;`` before a code)."""
    if not status:
        return []
    parts = _NEXT_STATUS.split(status)
    return parts if len(parts) == count else ([status] if count == 1 else [])


def status_reply(status: str) -> Reply | None:
    """A status that starts with a reply code as a reply (None when it has no code)."""
    match = _STATUS.fullmatch(status.strip())
    if match is None:
        return None
    try:
        return Reply(int(match["code"]), (match["text"] or "").replace("\r", ""), match["enhanced"])
    except ValueError:
        return None


class ExchangeReader:
    """Reads message tracking log lines into sessions (see the module docstring)."""

    def __init__(self, name: str, prefix: str, problems: CaptureProblems) -> None:
        self.name, self.prefix, self.problems = name, prefix, problems
        self.sessions: list[Recorder] = []
        self._fields: list[str] | None = None
        self._smtp_sessions: dict[str, Recorder] = {}  # SMTP session id -> its session
        self._by_message: dict[str, Recorder] = {}  # internal-message-id or message-id

    def read(self, lines: Iterable[str]) -> list[tuple]:  # type: ignore[type-arg]
        """The rows of every session in ``lines``, session by session."""
        events = 0
        first_bad: tuple[int, str] | None = None
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\r\n").removeprefix("\ufeff")
            if not line.strip():
                continue
            if line.startswith("#"):
                if line.startswith("#Fields:"):
                    self._fields = [field.strip() for field in line[8:].split(",")]
                continue
            values = split_csv_line(line) if self._fields else None
            if values is None or self._fields is None or len(values) != len(self._fields):
                self.problems.add("not a message tracking line", f"{self.name} line {number}")
                first_bad = first_bad or (number, line)
                continue
            event = dict(zip(self._fields, values, strict=True))
            try:
                time = parse_time(event.get("date-time", ""))
            except (ValueError, OverflowError):
                self.problems.add("impossible date-time", f"{self.name} line {number}")
                continue
            events += 1
            self._event(time, event)
        if not events and first_bad is not None:
            number, line = first_bad
            raise ExchangeFormatError(
                f"{self.name} line {number}: not a message tracking log line ({line[:60]!r}), "
                "nor is any other: one follows a '#Fields: date-time,...' header line"
            )
        return [row for session in self.sessions for row in session.tuples]

    def _event(self, time: float, event: dict[str, str]) -> None:
        kind, source = event.get("event-id", "").upper(), event.get("source", "").upper()
        keys = [key for key in (event.get("internal-message-id"), event.get("message-id")) if key]
        if source == "SMTP" and kind in ("RECEIVE", "SEND"):
            self._transaction(time, kind, event, keys)
            return
        took = next((self._by_message[key] for key in keys if key in self._by_message), None)
        if took is not None:
            took.note(time, _describe(kind, source, event))

    def _transaction(self, time: float, kind: str, event: dict[str, str], keys: list[str]) -> None:
        client = _address(event.get("client-ip"))
        server = _address(event.get("server-ip"))
        smtp_session = event.get("source-context", "").split(";")[0].strip()
        session = self._smtp_sessions.get(smtp_session) if kind == "RECEIVE" else None
        if session is None:
            session = Recorder(
                f"{self.prefix}-{len(self.sessions) + 1}", "exchange", client, server
            )
            session.connect(None, expects_reply=False)
            session.note(None, _NO_CONNECTION)
            self.sessions.append(session)
            if kind == "RECEIVE" and smtp_session:
                self._smtp_sessions[smtp_session] = session
        sender = event.get("return-path") or event.get("sender-address") or ""
        session.command(time, "MAIL", f"FROM:<{sender}>", expects_reply=False)
        recipients = [
            address for address in event.get("recipient-address", "").split(";") if address
        ]
        replies = statuses(event.get("recipient-status", ""), len(recipients))
        for index, recipient in enumerate(recipients):
            reply = status_reply(replies[index]) if index < len(replies) else None
            session.command(time, "RCPT", f"TO:<{recipient}>", expects_reply=reply is not None)
            if reply is not None:
                session.reply(time, reply, "RCPT")
        size = event.get("total-bytes", "")
        session.command(time, "DATA", "", expects_reply=False)
        session.note(
            time, _describe(kind, "SMTP", event) + (f" total-bytes={size}" if size else "")
        )
        for key in keys:
            self._by_message[key] = session


def _address(value: str | None) -> str | None:
    value = (value or "").strip()
    return endpoint((value[:64], None)) if value else None


def _describe(kind: str, source: str, event: dict[str, str]) -> str:
    """A note of one event: what it was and its telling fields."""
    fields = ["internal-message-id", "message-id", "recipient-address", "recipient-status",
              "related-recipient-address", "server-hostname", "connector-id", "message-subject",
              "message-info"]  # fmt: skip
    shown = " ".join(f"{field}={event[field]}" for field in fields if event.get(field))
    return f"Exchange {kind} ({source}): {shown}"
