"""Sendmail's syslog lines into rows: one session per SMTP server process.

Theory of operation
-------------------
Sendmail logs through syslog (``LOG_MAIL``) as ``sendmail[PID]`` (Debian's daemon as
``sm-mta[PID]``); a syslog daemon writes ``Mon DD HH:MM:SS HOST sendmail[PID]: QUEUEID:
MESSAGE``. The daemon forks one process per SMTP connection, so the pid ties a connection's
lines together, and each transaction has its own queue id (the envelope id, which the
connection's first refusals carry too). What it logs at the default ``LogLevel`` 9 (Sendmail
Installation and Operation Guide, "Log Level"; ``op.me`` section 2.2 and 4.5 of the source's
``doc/op``):

* ``QUEUEID: from=<sender>, size=N, class=N, nrcpts=N, msgid=<...>, proto=ESMTP,
  daemon=MTA, relay=NAME [ADDRESS]`` when a transaction ends: after the message was taken
  (``msgid=``, ``size=`` over 0) or when it was given up (``size=0``, no ``msgid=``);
  ``nrcpts`` counts the recipients accepted, which the line does not name;
* ``QUEUEID: ruleset=check_rcpt, arg1=<address>, relay=..., reject=550 5.7.1 <address>...
  Relaying denied`` when a rule set refuses a command (``check_mail``: MAIL, ``check_rcpt``:
  RCPT, ``check_relay``: the connection), with the reply Sendmail gave, code and all;
* ``QUEUEID: <address>... User unknown`` for a recipient refused when it was resolved,
  without the reply code (Sendmail replies ``550 5.1.1``, but does not log it);
* ``QUEUEID: to=<a>,<b>, delay=, xdelay=, mailer=, relay=, dsn=, stat=`` for each delivery
  attempt, from the process that delivers (another pid), ``stat=Sent``, ``Deferred: ...``
  or the failure;
* ``lost input channel from NAME [ADDRESS] to MTA after rcpt`` when the client went away,
  ``NAME [ADDRESS] did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA`` at the end of
  a connection that sent none of them, ``timeout waiting for input from ...``,
  ``STARTTLS=server, relay=..., version=...`` once TLS is up, ``AUTH=server, relay=...,
  authid=..., mech=...`` after a login.

A session's rows carry what the log knows and nothing more:

* a ``connect`` row with no time (Sendmail logs no connection at ``LogLevel`` 9), and a note
  saying so; the client is the ``relay=`` address (no port is logged);
* for each transaction, at its ``from=`` line: its MAIL (``FROM:<sender>``), then each
  command refused in it (``reject=`` lines: the command and its reply with code and enhanced
  code; ``User unknown`` lines: the RCPT and a reply without a code, its text Sendmail's),
  then one RCPT per accepted recipient (``nrcpts``, no address: not logged) and DATA when a
  message came; accepted commands get no reply rows (their replies are not logged), and they
  have no time (only the transaction's end is logged); DATA has the ``from=`` line's time.
  Whether the accepted recipients came before or after the refused ones is not known;
* a ``note`` with the ``from=`` line, and one for each delivery line of that queue id;
* a ``tls`` row at ``STARTTLS=server``; a note at ``AUTH=server`` (``authid=`` hidden);
* a ``close`` row where the log says how the connection ended (``lost input channel``: the
  client; a timeout: the server). A connection that ended with QUIT logs no end: it has no
  close row. ``did not issue MAIL`` ends a session with a note.

A transaction's lines end at its ``from=`` line: any later line of that queue id comes from
the processes that deliver the message (``to=``, ``<a>... Connection refused``, the bounce it
caused, ``QUEUEID: NEWID: DSN: ...``) and is a note of the session that took it. A line of
a process with no connection open that does not start one (a queue run's news of a message
from before the log, ``SYSERR`` ...) makes no session. Lines of the daemon itself
(``starting daemon``, alias rebuilds) and other programs' syslog lines are passed over; a
line that is no syslog line, or has an impossible timestamp, is counted as skipped. Classic
stamps carry no year: it is ``year``, and the year turns when the month goes back more than
six, as for Postfix; RFC 3339 stamps are read whole.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from smtplab.ingest.packets import CaptureProblems
from smtplab.ingest.postfix import ANY_PROGRAM_LINE
from smtplab.ingest.syslog_year import MONTHS, SyslogYear
from smtplab.log.recorder import Recorder
from smtplab.log.schema import endpoint
from smtplab.protocol.events import Reply

_PROGRAMS = r"(?:sendmail|sm-mta|sm-msp-queue)"
#: A Sendmail syslog line: stamp (classic or RFC 3339), host, program[pid], message.
SENDMAIL_LINE = re.compile(
    r"(?:(?P<month>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) "
    r"(?P<clock>\d\d:\d\d:\d\d)(?P<fraction>\.\d{1,9})?"
    r"|(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))) "
    rf"(?P<host>\S+) {_PROGRAMS}\[(?P<pid>\d+)\]: (?P<message>.*)"
)
#: What only Sendmail writes (see reader.detect): a transaction, a delivery, a refusal, a
#: recipient unknown, the daemon starting, TLS or a login.
SENDMAIL_EVENT = re.compile(
    r"(?:[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+) \S+ "
    rf"{_PROGRAMS}\[\d+\]: (?:\w+: (?:from=|to=|ruleset=|<[^>]*>\.\.\. )|starting daemon \(8\."
    r"|(?:\w+: )?(?:STARTTLS|AUTH)=server, relay=)"
)
_QUEUE_ID = re.compile(r"(\w{8,20}|NOQUEUE): ")
_RELAY = re.compile(r"relay=(?:(?P<name>[^\s\[,]{1,255}) )?\[(?P<ip>[^\]\s]{1,64})\]")
_FROM_HOST = re.compile(r"(?:from )?(?:(?P<name>[^\s\[]{1,255}) )?\[(?P<ip>[^\]\s]{1,64})\]")
_FIELDS = re.compile(r"(\w+)=((?:<[^>]{0,1024}>,?)+|[^,]*)(?:, |$)")
_REJECT = re.compile(r"(?P<code>[245]\d\d)(?: (?P<enhanced>[245]\.\d{1,3}\.\d{1,3}))? (?P<text>.*)")
#: A recipient refused at RCPT: logged by the SMTP process before the transaction's from=
#: line (a delivery's "<a>... Connection refused" comes after it, from another process).
_UNKNOWN_USER = re.compile(r"<(?P<address>[^>]{0,1024})>\.\.\. (?P<why>User unknown.*)$")
_RULESETS = {"check_mail": ("MAIL", "FROM"), "check_rcpt": ("RCPT", "TO"),
             "check_relay": ("CONNECT", ""), "check_compat": ("RCPT", "TO")}  # fmt: skip
_AUTHID = re.compile(r"(authid=)[^,]*")
#: Lines without a queue id about a connection (with one, any line may be).
_SESSION_NEWS = (
    "lost input channel",
    "timeout waiting",
    "STARTTLS=server, relay=",
    "AUTH=server, relay=",
)
#: The lines that open a session when none is open for their process (with "did not issue").
_CONNECTION_LINES = ("ruleset=", "lost input channel from ", "timeout waiting for input from ",
                     "STARTTLS=server, relay=", "AUTH=server, relay=")  # fmt: skip
_NO_CONNECTION = (
    "Sendmail logged no connection (not at LogLevel 9): when it opened, the greeting and the "
    "accepted commands' replies are not known"
)


class SendmailFormatError(ValueError):
    """Not a Sendmail log: no line of the file is one (the message names the file and line)."""


class _Session:
    """One SMTP server process's connection. Its recorder is made at the first line that
    names the client; the refusals of the transaction under way wait for its ``from=``
    line, and so does the end of a connection lost in mid-transaction."""

    __slots__ = ("closing", "ended", "number", "pending", "recorder")

    def __init__(self, number: int) -> None:
        self.number = number  # its place in the log: the session id's number
        self.recorder: Recorder | None = None
        self.pending: list[tuple[float, str, str, Reply | str]] = []  # (time, verb, arg, reply)
        self.closing: tuple[float, str, str] | None = None  # (time, by, text)
        self.ended = False  # the log said the connection ended: only a from= line may follow

    def flush(self, recorder: Recorder) -> None:
        """The refusals waiting, as commands and replies."""
        for time, verb, argument, reply in self.pending:
            if verb != "CONNECT":
                recorder.command(time, verb, argument)
            if isinstance(reply, Reply):
                recorder.reply(time, reply, verb)
            else:
                recorder.uncoded_reply(time, reply, verb)
        self.pending.clear()

    def close(self, recorder: Recorder) -> None:
        self.flush(recorder)
        if self.closing is not None:
            recorder.close(*self.closing)
            self.closing = None


class SendmailReader:
    """Reads Sendmail syslog lines into sessions (see the module docstring)."""

    def __init__(
        self, name: str, prefix: str, problems: CaptureProblems, year: int, last_month: int | None
    ) -> None:
        self.name, self.prefix, self.problems = name, prefix, problems
        self._years = SyslogYear(year, last_month)
        self.sessions: list[_Session] = []
        self._open: dict[str, _Session] = {}  # "host pid" -> its session
        self._by_queue_id: dict[str, Recorder] = {}

    def read(self, lines: Iterable[str]) -> list[tuple]:  # type: ignore[type-arg]
        """The rows of every session in ``lines``, in the order of their first lines."""
        ours = 0
        first_bad: tuple[int, str] | None = None
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\r\n")
            match = SENDMAIL_LINE.match(line)
            if match is None:
                if line.strip() and ANY_PROGRAM_LINE.match(line) is None:
                    self.problems.add("not a syslog line", f"{self.name} line {number}")
                if line.strip():
                    first_bad = first_bad or (number, line)
                continue
            ours += 1
            try:
                time = self._time(match)
            except (KeyError, ValueError, OverflowError):
                self.problems.add("impossible timestamp", f"{self.name} line {number}")
                continue
            self._line(f"{match['host']} {match['pid']}", time, match["message"])
        if not ours and first_bad is not None:
            number, line = first_bad
            raise SendmailFormatError(
                f"{self.name} line {number}: not a Sendmail log line ({line[:60]!r}), nor is "
                "any other: a Sendmail line is a syslog line of sendmail[PID] or sm-mta[PID]"
            )
        for session in self.sessions:
            session.close(self._recorder(session, None))
        return [row for session in self.sessions for row in self._recorder(session, None).tuples]

    def _time(self, match: re.Match[str]) -> float:
        if match["stamp"] is not None:
            return dt.datetime.fromisoformat(match["stamp"].replace("Z", "+00:00")).timestamp()
        month = MONTHS[match["month"]]
        year = self._years.of(month)
        clock = match["clock"]
        hours, minutes, seconds = int(clock[:2]), int(clock[3:5]), int(clock[6:8])
        if hours > 23 or minutes > 59 or seconds > 60:
            raise ValueError(clock)
        day = dt.datetime(year, month, int(match["day"]), tzinfo=dt.UTC)
        fraction = float(match["fraction"]) if match["fraction"] else 0.0
        return day.timestamp() + hours * 3600 + minutes * 60 + seconds + fraction

    def _line(self, process: str, time: float, message: str) -> None:
        queued = _QUEUE_ID.match(message)
        queue_id = queued[1] if queued else None
        rest = message[queued.end() :] if queued else message
        if queue_id is None and not rest.startswith(_SESSION_NEWS):
            return  # the daemon's own news: starting, alias rebuilds, queue runs
        if rest.startswith("from="):
            self._from(process, time, queue_id, rest, message)
            return
        took = self._by_queue_id.get(queue_id) if queue_id is not None else None
        if took is not None or rest.startswith("to="):
            # News of a message already taken (its from= line came: a transaction's lines
            # end there), from the processes that deliver it: to= lines, a recipient's
            # "<a>... Connection refused", the bounce it caused ("DSN: ..."), ...
            if took is not None:
                took.note(time, message)
            return
        session = self._open.get(process)
        fresh = session is None or session.ended
        opens = rest.startswith(_CONNECTION_LINES) or " did not issue " in rest
        if not opens and not _UNKNOWN_USER.match(rest):  # collect: trouble, SYSERR, Milter ...
            if not fresh and session is not None and session.recorder is not None:
                session.recorder.note(time, message)  # news of a connection under way
            return
        if session is None or fresh:  # a new connection of this process (pid)
            session = self._open[process] = self._new()
        if rest.startswith("ruleset="):
            self._ruleset(session, time, rest)
        elif (unknown := _UNKNOWN_USER.match(rest)) is not None:
            address = unknown["address"]
            text = f"<{address}>... {unknown['why']}"
            session.pending.append((time, "RCPT", f"TO:<{address}>", text))
        elif rest.startswith(("lost input channel from ", "timeout waiting for input from ")):
            recorder = self._recorder(session, _FROM_HOST.search(rest))
            recorder.note(time, rest)
            session.ended = True
            session.closing = (time, "client" if rest.startswith("lost") else "server", rest)
            if not re.search(r" after (?:mail|rcpt|data)$", rest):
                session.close(recorder)  # no transaction under way: no from= line follows
        elif " did not issue " in rest:
            recorder = self._recorder(session, _FROM_HOST.match(rest))
            session.flush(recorder)
            recorder.note(time, rest)
            session.ended = True
        elif rest.startswith("STARTTLS=server, relay="):
            recorder = self._recorder(session, _RELAY.search(rest))
            recorder.tls_started(time, f"TLS (Sendmail: {rest})")
        elif rest.startswith("AUTH=server, relay="):
            recorder = self._recorder(session, _RELAY.search(rest))
            recorder.note(time, _AUTHID.sub(r"\1***", rest))

    def _from(
        self, process: str, time: float, queue_id: str | None, rest: str, message: str
    ) -> None:
        fields = dict(_FIELDS.findall(rest))
        if "relay" not in fields or "proto" not in fields:
            return  # not over SMTP (a local submission, a bounce Sendmail made)
        session = self._open.get(process)
        if session is None:
            session = self._open[process] = self._new()
        recorder = self._recorder(session, _RELAY.search(rest))
        sender = fields.get("from", "<>").strip("<>")
        size = int(fields["size"]) if fields.get("size", "").isdigit() else 0
        recipients = int(fields["nrcpts"]) if fields.get("nrcpts", "").isdigit() else 0
        if not any(verb == "MAIL" for _, verb, _, _ in session.pending):
            # (a refused MAIL is logged with its reply, and then this line all the same)
            recorder.command(None, "MAIL", f"FROM:<{sender}>", expects_reply=False)
        session.flush(recorder)
        recorder.counted(None, ["RCPT"] * recipients)
        if "msgid" in fields or size > 0:  # a message came
            recorder.command(time, "DATA", "", expects_reply=False)
        recorder.note(time, message)
        if queue_id is not None:
            self._by_queue_id[queue_id] = recorder
        if session.ended:  # the connection was lost in this transaction: it ends here
            session.close(recorder)

    def _ruleset(self, session: _Session, time: float, rest: str) -> None:
        fields = dict(_FIELDS.findall(rest))
        recorder = self._recorder(session, _RELAY.search(rest))
        # reject= is the line's last field, and its text may hold ", ": all the rest of it.
        at = rest.find(", reject=")
        refused = _REJECT.fullmatch(rest[at + len(", reject=") :]) if at >= 0 else None
        if refused is None:  # discard=, quarantine=, a reject= without a code
            recorder.note(time, rest)
            return
        verb, field = _RULESETS.get(fields.get("ruleset", ""), ("RCPT", "TO"))
        address = fields.get("arg1", "")
        argument = f"{field}:{address}" if field else ""
        reply = Reply(int(refused["code"]), refused["text"], refused["enhanced"])
        session.pending.append((time, verb, argument, reply))
        if verb == "CONNECT":
            session.flush(recorder)

    def _new(self) -> _Session:
        session = _Session(len(self.sessions) + 1)
        self.sessions.append(session)
        return session

    def _recorder(self, session: _Session, client: re.Match[str] | None) -> Recorder:
        """The session's recorder, made now if need be (``client``: a match naming it)."""
        if session.recorder is None:
            session.recorder = Recorder(
                f"{self.prefix}-{session.number}",
                "sendmail",
                endpoint((client["ip"], None)) if client else None,
            )
            session.recorder.connect(None, expects_reply=False)
            session.recorder.note(None, _NO_CONNECTION)
        return session.recorder
