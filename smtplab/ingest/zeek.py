"""Zeek's ``smtp.log`` into rows: one session per connection ``uid``, a few rows per line.

Theory of operation
-------------------
Zeek's SMTP analyzer (``base/protocols/smtp/main.zeek``, record ``SMTP::Info``) writes one
line per mail transaction it saw, not one per command: ``ts`` (when the record was started:
the connection's first SMTP activity for the first transaction, the end of the previous
message for the next), ``uid`` (the connection), ``id.orig_h``/``id.orig_p`` (the client),
``id.resp_h``/``id.resp_p`` (the server), ``trans_depth`` (the transaction's number in the
connection), ``helo`` (the HELO or EHLO argument, not which of the two), ``mailfrom`` (the
address of MAIL FROM), ``rcptto`` (a set: every RCPT TO address the client sent, accepted or
not), the message's headers (``date``, ``from``, ``to``, ``msg_id``, ``subject`` ...),
``last_reply`` (the last reply line the server sent before the line was written, code and
text; every earlier reply is overwritten), ``path``, ``user_agent``, ``tls`` (STARTTLS was
seen: nothing after it can be read) and ``fuids``. A line is written when the reply to the
message's final dot (or ``BDAT ... LAST``) arrives, when a new MAIL starts before it, or
when the connection ends with client activity not yet written; a connection with no MAIL,
RCPT or STARTTLS writes none.

Zeek writes it as TSV (the ASCII writer: ``#separator \\x09``, ``#set_separator``,
``#empty_field``, ``#unset_field``, ``#path smtp``, ``#fields``, ``#types`` header lines,
values with ``\\xHH`` escapes) or as JSON (``LogAscii::use_json``: one object per line,
``id.orig_h`` flat or ``id`` nested, ``ts`` in seconds or ISO 8601). Both are read here,
with the ``#fields`` line, not a fixed list, saying which column is which.

A session's rows carry what the log knows and nothing more:

* a ``connect`` row with no time (Zeek's ``ts`` is when it first saw SMTP, not the
  connection), with the client and server of ``id``;
* for each line: a ``note`` at ``ts`` with the transaction's number, HELO name and message
  headers; a ``tls`` row (no time) when ``tls`` is true; its MAIL (``FROM:<mailfrom>``) and
  a RCPT per ``rcptto`` address (a set: their order is not the client's), with no time and
  no reply, as the log does not say which were accepted; and its ``last_reply`` as a reply
  row with its code, enhanced code and text, paired with no command (``verb`` and
  ``reply_to`` missing): which command it answered is not logged.

Header lines (``#...``) and blank lines are passed over; a line with the wrong number of
fields, a JSON line that is not an object of Zeek's fields, or an impossible ``ts`` is
counted as skipped. A file whose ``#path`` is another Zeek log (``conn``, ``http`` ...), or
with no line of an ``smtp.log`` at all, is an error naming it and the line.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable
from typing import Any

from smtplab.ingest.packets import CaptureProblems
from smtplab.log.recorder import Recorder
from smtplab.log.schema import endpoint
from smtplab.protocol.events import Reply

#: What only a Zeek smtp.log starts with or holds (see reader.detect): the ASCII writer's
#: first header line and its path, or a JSON line with Zeek's SMTP fields.
ZEEK_TSV_HEADER = re.compile(r"#separator \S+\n(?:#[^\n]*\n)*?#path\tsmtp\n")
ZEEK_JSON_LINE = re.compile(r'\{"(?:_path":"smtp",")?ts":[^\n]*"trans_depth":')
_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
_REPLY = re.compile(
    r"(?P<code>[2-5]\d\d)(?:[ -](?P<enhanced>[245]\.\d{1,3}\.\d{1,3}))?[ -]?(?P<text>.*)"
)
#: The message's headers Zeek logs, shown in the transaction's note.
_HEADERS = ("date", "from", "to", "cc", "reply_to", "msg_id", "in_reply_to", "subject",
            "x_originating_ip", "user_agent")  # fmt: skip
_NOTE = (
    "Zeek smtp.log: one line per transaction, with its last reply only (the other replies, "
    "the order of commands and which recipients were accepted are not logged)"
)


class ZeekFormatError(ValueError):
    """Not a Zeek smtp.log: another Zeek log, or no line of one (the message names it)."""


class ZeekReader:
    """Reads Zeek smtp.log lines (TSV or JSON) into sessions (see the module docstring)."""

    def __init__(self, name: str, prefix: str, problems: CaptureProblems) -> None:
        self.name, self.prefix, self.problems = name, prefix, problems
        self.sessions: dict[str, Recorder] = {}  # uid -> its session, in order of first line
        self._fields: list[str] | None = None
        self._separator = "\t"
        self._set_separator = ","
        self._empty = "(empty)"
        self._unset = "-"

    def read(self, lines: Iterable[str]) -> list[tuple]:  # type: ignore[type-arg]
        """The rows of every session in ``lines``, session by session."""
        read = 0
        first_bad: tuple[int, str] | None = None
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if line.startswith("#"):
                self._header(number, line)
                continue
            record = self._json(line) if line.startswith("{") else self._tsv(line)
            if record is not None and "uid" not in record:  # a #fields header without uid
                self.problems.add("a line without its uid", f"{self.name} line {number}")
                first_bad = first_bad or (number, line)
                continue
            if record is None:
                self.problems.add("not a Zeek smtp.log line", f"{self.name} line {number}")
                first_bad = first_bad or (number, line)
                continue
            try:
                self._record(record)
            except (ValueError, OverflowError, TypeError):
                self.problems.add("impossible value", f"{self.name} line {number}")
                continue
            read += 1
        if not read and first_bad is not None:
            number, line = first_bad
            raise ZeekFormatError(
                f"{self.name} line {number}: not a Zeek smtp.log line ({line[:60]!r}), nor is "
                "any other: Zeek writes a TSV line after its #fields header, or a JSON object"
            )
        return [row for recorder in self.sessions.values() for row in recorder.tuples]

    def _header(self, number: int, line: str) -> None:
        key, _, value = line.partition("\t" if "\t" in line else " ")
        if key == "#separator":
            self._separator = _unescape(value.strip()) or "\t"
        elif key == "#set_separator":
            self._set_separator = value
        elif key == "#empty_field":
            self._empty = value
        elif key == "#unset_field":
            self._unset = value
        elif key == "#path" and value != "smtp":
            raise ZeekFormatError(f"{self.name} line {number}: a Zeek {value}.log, not an smtp.log")
        elif key == "#fields":
            self._fields = value.split(self._separator)

    def _tsv(self, line: str) -> dict[str, Any] | None:
        fields = self._fields
        values = line.split(self._separator)
        if fields is None or len(values) != len(fields):
            return None
        record: dict[str, Any] = {}
        for name, value in zip(fields, values, strict=True):
            if value == self._unset:
                continue
            if name in ("rcptto", "to", "cc", "path", "fuids"):
                items = [] if value == self._empty else value.split(self._set_separator)
                record[name] = [_unescape(item) for item in items]
            else:
                record[name] = _unescape(value)
        return record

    @staticmethod
    def _json(line: str) -> dict[str, Any] | None:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested past Python's stack
            return None
        if not isinstance(record, dict) or not isinstance(record.get("uid"), str):
            return None
        nested = record.get("id")
        if isinstance(nested, dict):  # "id": {"orig_h": ...}: the nested form
            for key, value in nested.items():
                record[f"id.{key}"] = value
        return record

    def _record(self, record: dict[str, Any]) -> None:
        uid = str(record["uid"])[:64]
        time = _time(record.get("ts"))
        recorder = self.sessions.get(uid)
        if recorder is None:
            client = _endpoint(record.get("id.orig_h"), record.get("id.orig_p"))
            server = _endpoint(record.get("id.resp_h"), record.get("id.resp_p"))
            recorder = Recorder(f"{self.prefix}-{uid}", "zeek", client, server)
            recorder.connect(None, expects_reply=False)
            recorder.note(None, _NOTE)
            self.sessions[uid] = recorder
        details = [f"transaction {record.get('trans_depth', '?')}"]
        if record.get("helo") is not None:
            details.append(f"helo={record['helo']}")
        for name in _HEADERS:
            value = record.get(name)
            if value is not None:
                shown = ",".join(map(str, value)) if isinstance(value, list) else value
                details.append(f"{name}={shown}")
        recorder.note(time, "Zeek: " + ", ".join(str(detail) for detail in details))
        if _true(record.get("tls")) and not recorder.tls:
            recorder.tls_started(None, "STARTTLS (Zeek: tls=T; nothing after it is seen)")
        if record.get("mailfrom") is not None:
            recorder.command(None, "MAIL", f"FROM:<{record['mailfrom']}>", expects_reply=False)
        recipients = record.get("rcptto") or []
        if isinstance(recipients, str):
            recipients = recipients.split(",")
        for recipient in recipients:
            recorder.command(None, "RCPT", f"TO:<{recipient}>", expects_reply=False)
        last = record.get("last_reply")
        if last is not None:
            reply = _REPLY.fullmatch(str(last))
            if reply is None:
                recorder.note(None, f"Zeek's last reply, not a reply: {last}")
            else:
                code, enhanced, text = reply.group("code", "enhanced", "text")
                recorder.logged_reply(None, Reply(int(code), text.replace("\r", ""), enhanced))


def _unescape(value: str) -> str:
    """A value of Zeek's ASCII writer with its ``\\xHH`` escapes undone."""
    if "\\x" not in value:
        return value
    return _ESCAPE.sub(lambda match: chr(int(match[1], 16)), value)


def _time(value: Any) -> float:
    """POSIX seconds of a ``ts``: seconds (a number, or its text) or ISO 8601."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number or (isinstance(value, str) and re.fullmatch(r"\d{1,12}(?:\.\d{1,9})?", value)):
        time = float(value)
    elif isinstance(value, str):
        time = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    else:
        raise ValueError(f"no ts: {value!r}")
    if not math.isfinite(time) or not 0 <= time < 1e11:
        raise ValueError(f"impossible ts: {value!r}")
    return time


def _endpoint(host: Any, port: Any) -> str | None:
    if not isinstance(host, str):
        return None
    port_text = str(port).partition("/")[0] if port is not None else None  # "25/tcp" in JSON?
    return endpoint((host[:64], port_text if port_text and port_text.isdigit() else None))


def _true(value: Any) -> bool:
    return value is True or value == "T" or value == "true"
