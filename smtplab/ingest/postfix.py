"""Postfix's log into rows: one session per ``connect from`` ... ``disconnect from``.

Theory of operation
-------------------
Postfix logs an SMTP session through its ``smtpd`` process: ``connect from name[addr]``, a
``QUEUEID: client=...`` line once a message is accepted into the queue, a ``reject:`` line for
each refused command (with the reply it gave, enhanced code and all), TLS and trouble lines,
and ``disconnect from ... ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6``: each command
it received, as accepted/sent when some failed. One ``smtpd`` process serves one session at a
time, so its pid ties the lines together. Other processes log the message afterwards under its
queue id: ``cleanup`` (message-id), ``qmgr`` (``from=<...>, size=N``), the delivery agents
(``to=<...>, status=sent (...)``).

A session's rows carry what the log knows and nothing more:

* a ``connect`` row, and a ``tls`` row when TLS was established;
* for each ``reject:``, the command it refused (verb, and the address as ``FROM:<...>`` or
  ``TO:<...>``) and the reply, code, enhanced code and text, at the time it was logged;
* the other commands, known only from the ``disconnect`` counts, as command rows at the
  disconnect time, in the usual protocol order (the log does not say their order); their
  replies were positive but their codes are not logged, so they get no reply rows;
* a ``note`` row per queued message: ``QUEUEID: queued`` when smtpd took it,
  ``QUEUEID: from=<sender>, size=N`` when qmgr took it (again at each retry), and each
  delivery attempt's line as Postfix logged it, from the queue id on: ``QUEUEID: to=<rcpt>,
  [orig_to=<...>, ]relay=..., delay=S, delays=a/b/c/d, dsn=X.Y.Z, status=sent|bounced|deferred
  (...)``, whose reply says ``queued as NEWID`` where the next hop (a content filter's way
  back in, another host) queued it under a new id (``smtplab.analysis.messages`` reads these);
  and ``QUEUEID: sender non-delivery notification: BOUNCEID`` where Postfix sent a bounce (or
  a delay or success notice) about it, the bounce's own lines joining the same session;
* the ``close`` row at ``disconnect``. A ``connect from`` on the pid of a session that never
  disconnected (lines lost to rotation, smtpd killed and its pid reused) starts a new session
  and closes the old one with a ``close`` row that says the log has no disconnect (no time, as
  the log does not say when it ended). A session still open where the log ends gets a note.

A shared log (``/var/log/mail.log``, ``syslog``) also holds other programs' lines: ``dovecot``,
``cron``, ``kernel``, Postfix's own daemons the reader has no use for. Any well-formed syslog
line (a timestamp, a host and a ``tag[pid]:`` or ``tag:``, or syslogd's ``last message
repeated``) that is not one the reader uses is passed over silently; only a line that is no
syslog line at all, or whose timestamp cannot be (``Feb 30``), is counted as skipped.

Timestamps: classic syslog lines (``Nov 29 01:57:55``) carry no year and no zone; the year is
taken from ``year`` (default: the file's modification year, stepping back one if the first
line's month is after the file's, as log readers do) and the zone is UTC. The year advances
where a line's month is more than six before the last line's (a log from December into
January), and steps back for a December line that syslog wrote late, among January's. RFC 3339
timestamps (``2026-11-29T01:57:55.1+00:00``) are complete.

Speed: of a line, the head after the timestamp (``vm postfix/smtpd[23488]``) is read once per
distinct head, the timestamp once per second, and a classic timestamp's day and minute once
each; so a log whose lines come one per second costs little more than one whose lines come
many to a second.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections import deque
from collections.abc import Callable, Iterable

from smtplab.ingest.packets import CaptureProblems
from smtplab.ingest.syslog_year import MONTHS, SyslogYear
from smtplab.log.recorder import Recorder
from smtplab.log.schema import endpoint
from smtplab.protocol.events import Reply

SYSLOG_LINE = re.compile(
    r"(?P<month>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<clock>\d\d:\d\d:\d\d(?:\.\d+)?) "
    r"\S+ (?P<program>[\w.\-]+)/(?P<service>[\w\-/]+)\[(?P<pid>\d+)\]: (?P<message>.*)"
)
RFC3339_LINE = re.compile(
    r"(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) "
    r"\S+ (?P<program>[\w.\-]+)/(?P<service>[\w\-/]+)\[(?P<pid>\d+)\]: (?P<message>.*)"
)
_CLIENT = r"(?P<name>[^\s\[]+)\[(?P<address>[^\]]+)\](?::(?P<port>\d+))?"
_CONNECT = re.compile(rf"connect from {_CLIENT}$")
_DISCONNECT = re.compile(rf"disconnect from {_CLIENT}(?P<counts>(?: [a-z]+=\d+(?:/\d+)?)*)$")
_QUEUE_ID = r"(?P<queue>[0-9A-F]{6,}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,}|NOQUEUE)"
_REJECT = re.compile(
    rf"{_QUEUE_ID}: (?P<action>reject|reject_warning): "
    rf"(?P<stage>[A-Z\-]+) from {_CLIENT}: "
    r"(?P<code>[245]\d\d) (?:(?P<enhanced>[245]\.\d{1,3}\.\d{1,3}) )?(?P<rest>.*)$"
)
# After the reply text Postfix logs "; from=<sender> to=<recipient> proto=ESMTP helo=<name>"
# (from= once there is a sender, ";" alone at CONNECT). Cut at the first of them with a plain
# search: a client chooses its HELO name, and a pattern that backtracks over it could be made
# to take forever.
_REJECT_FIELDS = re.compile(r"; (?:from=<|to=<|proto=|helo=<)|;$")  # literal: no backtracking
_FIELD = re.compile(r"(\w+)=(<[^>]*>|\S*)")
_QUEUED = re.compile(rf"{_QUEUE_ID}: client={_CLIENT}")
_QMGR_FROM = re.compile(rf"{_QUEUE_ID}: from=<(?P<sender>[^>]*)>, size=(?P<size>\d+)")
_DELIVERY = re.compile(rf"{_QUEUE_ID}: to=<(?P<recipient>[^>]*)>,.*? status=(?P<status>\S+ .*)$")
_NOTIFICATION = re.compile(
    rf"{_QUEUE_ID}: sender (?:non-delivery|delivery status|delay) notification: "
    r"(?P<new>[0-9A-Za-z]{6,})$"
)
_TLS = re.compile(rf"(?:\w+ )?TLS connection established from {_CLIENT}: (?P<detail>.*)$")
_TROUBLE = re.compile(r"(?:lost connection|timeout|too many errors|improper command pipelining)")
#: The usual order of commands in a session, for commands the log only counts.
_ORDER = ["ehlo", "helo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop",
          "vrfy", "etrn", "quit", "unknown"]  # fmt: skip
_RANKS = {name: rank for rank, name in enumerate(_ORDER)}
#: Seconds of log time a session's queue lines (qmgr, deliveries) are awaited after its
#: disconnect when sessions are streamed, and how many sessions may wait so at most: a line
#: for its queue id after that is not joined to it (a delivery deferred for longer: its later
#: tries belong to the message rather than the session). Postfix logs a message's first
#: delivery within seconds of its queueing unless the next hop is slow.
LATE_LINES = 600.0
MOST_WAITING = 10_000
_NO_DISCONNECT = (
    "no disconnect in the log: smtpd[{pid}] connected another client before this session's end"
)


@functools.lru_cache(maxsize=1024)
def _tally(counts: str) -> tuple[tuple[str, int], ...]:
    """``" ehlo=1 rcpt=1/2 commands=2/3"`` -> ``(("EHLO", 1), ("RCPT", 2))``: each command
    sent (``accepted/sent`` when some failed), in the usual protocol order."""
    sent = {}
    for count in counts.split():
        name, _, value = count.partition("=")
        if name != "commands":
            sent[name] = int(value.rpartition("/")[2])
    ordered = sorted(sent, key=lambda name: _RANKS.get(name, len(_ORDER)))
    return tuple((name.upper(), sent[name]) for name in ordered)


@functools.lru_cache(maxsize=1024)
def _unrefused(counts: str, refused: tuple[tuple[str, int], ...]) -> tuple[str, ...]:
    """The verbs of the commands a ``disconnect`` counts that no ``reject`` line showed."""
    rejected = dict(refused)
    return tuple(verb for verb, sent in _tally(counts) for _ in range(sent - rejected.get(verb, 0)))


# A busy server logs the same clients and the same counts again and again: the connect and
# disconnect messages, read once each.
@functools.lru_cache(maxsize=4096)
def _connecting(message: str) -> str | None:
    """The client endpoint of a ``connect from`` message, or None if it is none."""
    connect = _CONNECT.match(message)
    return _endpoint(connect) if connect else None


@functools.lru_cache(maxsize=4096)
def _disconnecting(message: str) -> str | None:
    """The command counts of a ``disconnect from`` message (maybe ""), or None if it is none."""
    disconnect = _DISCONNECT.match(message)
    return disconnect["counts"] if disconnect else None


@functools.lru_cache(maxsize=4096)
def _refusal(rest: str) -> tuple[str, dict[str, str]]:
    """A reject line's reply text, and the fields after it (the last of each name); cached,
    as a server refuses the same client or address again and again (do not change the dict)."""
    cut = _REJECT_FIELDS.search(rest)
    if cut is None:
        return rest, {}
    return rest[: cut.start()], dict(_FIELD.findall(rest[cut.start() + 2 :]))


_ARGUMENT_FIELD = {"MAIL": ("from", "FROM"), "RCPT": ("to", "TO"), "VRFY": ("to", "")}
_REPLY_VERB = {"CONNECT": "CONNECT", "END-OF-MESSAGE": "DATA-END", "DATA": "DATA", "BDAT": "BDAT"}
#: A line's fields up to its message, for both timestamp styles (SYSLOG_LINE, RFC3339_LINE).
_HEAD = re.compile(
    r"(?:(?P<month>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<clock>\d\d:\d\d:\d\d(?:\.\d+)?)"
    r"|(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))) "
    r"(?P<host>\S+) (?P<program>[\w.\-]+)/(?P<service>[\w\-/]+)\[(?P<pid>\d+)\]: "
)
#: _HEAD's timestamp alternatives, each to match a timestamp alone.
_CLASSIC_STAMP = re.compile(r"([A-Z][a-z]{2}) +(\d{1,2}) (\d\d:\d\d:\d\d(?:\.\d+)?)")
_RFC3339_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)")
#: A syslog line of any program (RFC 3164's ``TAG[pid]: ``, e.g. ``dovecot: ``, ``CRON[9]: ``,
#: ``kernel: ``), and syslogd's own ``last message repeated N times``.
ANY_PROGRAM_LINE = re.compile(
    r"(?P<stamp>[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) \S+ "
    r"(?:(?P<tag>[^\s\[\]:]+(?:\[\d+\])?):(?:\s|$)|(?:--- )?last message repeated \d+ times)"
)
#: What a line's head (after its timestamp) tells: its program is Postfix, its service is
#: smtpd, and its process: ``host pid`` (one log may gather the lines of several hosts).
_Head = tuple[bool, bool, str]
_NOT_OURS: _Head = (False, False, "")
#: The seconds of a classic stamp's clock, after its minute: ":00" to ":99" (as "\d\d" allows).
_SECONDS = {f":{second:02d}": float(second) for second in range(100)}


class PostfixReader:
    """Reads Postfix log lines into sessions (see the module docstring)."""

    def __init__(
        self,
        name: str,
        prefix: str,
        problems: CaptureProblems,
        year: int,
        last_month: int | None = None,
        ended: Callable[[list[tuple]], None] | None = None,  # type: ignore[type-arg]
        host_in_names: bool = False,
    ) -> None:
        self.name, self.prefix, self.problems = name, prefix, problems
        # last_month: the month the log was last written (its file's time), when the year is
        # a guess: a first line from a later month was written the year before.
        self._years = SyslogYear(year, last_month)
        # Streaming: each session's rows are handed to ``ended`` once they are complete (see
        # :data:`LATE_LINES`), then forgotten; else they are all kept for read's answer.
        self._ended = ended
        self._host_in_names = host_in_names
        self.sessions: list[Recorder] = []  # in the order they connected (when not streaming)
        self._count = 0  # sessions so far
        self._open: dict[str, Recorder] = {}  # smtpd process ("host pid") -> its session
        self._rejected: dict[Recorder, dict[str, int]] = {}  # session -> verb -> rejections
        self._by_queue_id: dict[str, Recorder] = {}
        self._queue_ids: dict[Recorder, list[str]] = {}  # (streaming) a session's queue ids
        self._disconnected: deque[tuple[float, Recorder]] = deque()  # (streaming) by time
        self._date: tuple[str, str] = ("", "")  # the last classic stamp's month and day
        self._midnight = 0.0  # that day's start
        self._minutes: dict[str, float] = {}  # that day's "Nov 29 01:57" stamps -> their times
        self._midnights: dict[tuple[int, int, str], float] = {}  # (year, month, day) -> its start
        self._heads: dict[str, _Head] = {}

    def read(self, lines: Iterable[str]) -> list[tuple]:  # type: ignore[type-arg]
        """The rows of every session of ``lines`` (a text file's lines, ending in their line
        breaks), session by session in the order they connected."""
        heads, whole, stamp_time, minutes = (
            self._heads,
            self._whole,
            self._stamp_time,
            self._minutes,
        )
        smtpd, queue_line = self._smtpd, self._queue_line
        disconnected = self._disconnected
        last_stamp = ""
        time = 0.0
        for number, line in enumerate(lines, 1):  # the hot loop: one pass, few calls
            # A line is "STAMP HOST PROGRAM/SERVICE[PID]: MESSAGE". The stamp ends at the first
            # space from the 16th character on, whichever its style, and the head after it
            # ("vm postfix/smtpd[23488]") ends at the first ": " (no field before it can hold
            # one). Heads repeat from line to line and are read once (by _whole); stamps repeat
            # while the clock stays in a second. Whatever does not split so is read whole.
            colon = line.find(": ")
            space = line.find(" ", 15)
            head = heads.get(line[space + 1 : colon]) if 0 < space < colon else None
            try:
                if head is not None:
                    stamp = line[:space]
                    if stamp != last_stamp:
                        # "Nov 29 01:57" seen before (this day), and ":55": no more to check.
                        minute, second = minutes.get(stamp[:12]), _SECONDS.get(stamp[12:])
                        if minute is not None and second is not None:
                            time, last_stamp = minute + second, stamp
                        elif (fresh := stamp_time(stamp)) is None:  # no timestamp: read whole
                            head = None
                        else:
                            time, last_stamp = fresh, stamp
                if head is None:
                    found = whole(line)
                    if found is None:
                        if line.strip():
                            self.problems.add("not a syslog line", f"{self.name} line {number}")
                        continue
                    head, space, colon = found
                    stamp = line[:space]
                    if stamp != last_stamp:
                        fresh = stamp_time(stamp)
                        if fresh is None:  # (cannot be: _whole matched it)
                            continue
                        time, last_stamp = fresh, stamp
            except (KeyError, ValueError, OverflowError):  # "Foo 29", "Feb 30", month 13
                self.problems.add("impossible timestamp", f"{self.name} line {number}")
                continue
            postfix, is_smtpd, process = head
            if not postfix:
                continue  # another program's line in a shared log: not ours, not damage
            # The message is the rest of the line up to its line break (SYSLOG_LINE's ".*").
            message = line[colon + 2 :].rstrip("\r\n")
            if "\n" in message:  # not from a file's lines: cut where SYSLOG_LINE would
                message = message.partition("\n")[0].rstrip("\r")
            if disconnected and disconnected[0][0] < time - LATE_LINES:
                self._hand_on(time - LATE_LINES)  # before this line: it may come too late
            if is_smtpd:
                smtpd(process, time, message)
            elif " from=<" in message or " to=<" in message:  # qmgr, or a delivery agent
                queue_line(time, message)
            elif " notification: " in message:  # bounce: a message Postfix sends of its own
                self._notification(time, message)
        for process, session in list(self._open.items()):  # the log ends in mid-session
            session.note(None, "the log ends before this session's disconnect")
            del self._open[process]
            self._end(session)
        self._hand_on(math.inf)
        return [row for session in self.sessions for row in session.tuples]

    def _end(self, session: Recorder, time: float = -math.inf) -> None:
        """``session`` has had its last line from smtpd (at ``time``): when streaming, it is
        handed on once :data:`LATE_LINES` have passed (its queue's lines come after)."""
        if self._ended is not None:
            self._disconnected.append((time, session))
            if len(self._disconnected) > MOST_WAITING:  # a busy log: the oldest cannot wait
                self._hand_on(self._disconnected[0][0] + 1e-6)

    def _hand_on(self, before: float) -> None:
        """Hand on the sessions that ended before ``before``, forgetting them."""
        disconnected = self._disconnected
        while disconnected and disconnected[0][0] < before:
            _, session = disconnected.popleft()
            for queue in self._queue_ids.pop(session, ()):
                self._by_queue_id.pop(queue, None)
            assert self._ended is not None
            self._ended(session.tuples)

    def _whole(self, line: str) -> tuple[_Head, int, int] | None:
        """A line's head read with _HEAD, or as another program's line (ANY_PROGRAM_LINE), where
        its timestamp ends and where its message starts, less 2; None for no syslog line.
        The head is remembered for the fast split of :meth:`read` when that split agrees."""
        match = _HEAD.match(line)
        if match is not None:
            host, program, service, pid = match.group("host", "program", "service", "pid")
            process = f"{host} {pid}"
            head: _Head = (program.startswith("postfix"), service.endswith("smtpd"), process)
            space = match.end("clock") if match["clock"] is not None else match.end("stamp")
            colon = match.end() - 2
        else:
            other = ANY_PROGRAM_LINE.match(line)
            if other is None:
                return None
            head, space, colon = _NOT_OURS, other.end("stamp"), other.end("tag")
        if colon == line.find(": ") and space == line.find(" ", 15) and space < colon:
            if len(self._heads) >= 4096:  # pids come and go: most heads do not come back
                self._heads.clear()
            self._heads[line[space + 1 : colon]] = head
        return head, space, colon

    def _stamp_time(self, stamp: str) -> float | None:
        """POSIX seconds of a timestamp (see the module docstring), None if it is none;
        raises KeyError, ValueError or OverflowError for an impossible one."""
        classic = _CLASSIC_STAMP.fullmatch(stamp)
        if classic is not None:
            time = self._syslog_time(*classic.groups())
            if len(stamp) == 15:  # "Nov 29 01:57:55": its minute, for read's quick path
                self._minutes[stamp[:12]] = time - int(stamp[13:])
            return time
        if _RFC3339_STAMP.fullmatch(stamp):
            return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        return None

    def _queue_line(self, time: float, message: str) -> None:
        """A queued message's sender and size, or one delivery's status: a note in the
        session that queued it."""
        # Both patterns start with the queue id and a colon: a message whose text before its
        # first colon is no queue id seen in a session needs neither.
        session = self._by_queue_id.get(message[: message.find(":")])
        if session is None:
            return
        # A message matches one pattern at most (": from=<" or ": to=<" after the queue id).
        if " to=<" in message and _DELIVERY.match(message):
            # As Postfix logged it: to=, orig_to=, relay=, delay=, delays=a/b/c/d, dsn=,
            # status=... (the reply, and "queued as NEWID" where the next hop queued it).
            session.note(time, message)
        elif queued := _QMGR_FROM.match(message):
            queue, sender, size = queued.group("queue", "sender", "size")
            session.note(time, f"{queue}: from=<{sender}>, size={size}")

    def _notification(self, time: float, message: str) -> None:
        """``QUEUEID: sender non-delivery notification: NEWID`` (or ``delivery status``,
        ``delay``): a note in the session of the message it reports on, whose session then
        also takes the lines of ``NEWID`` (no smtpd session of its own received it)."""
        notified = _NOTIFICATION.match(message)
        session = self._by_queue_id.get(notified["queue"]) if notified else None
        if notified is None or session is None:
            return
        self._by_queue_id[notified["new"]] = session
        if self._ended is not None:
            self._queue_ids.setdefault(session, []).append(notified["new"])
        session.note(time, message)

    def _smtpd(self, process: str, time: float, message: str) -> None:
        # Cheap tests of the message's shape first: most lines are one of a few kinds.
        if message.startswith("connect from "):
            if (client := _connecting(message)) is not None:
                self._connect(process, time, client)
            return
        session = self._open.get(process)
        if session is None:
            return  # a session that started before the log does
        if message.startswith("disconnect from "):
            if (counts := _disconnecting(message)) is not None:
                self._disconnect(session, counts, time)
                del self._open[process]
                self._end(session, time)
        elif ": reject" in message:
            if reject := _REJECT.match(message):
                self._reject(session, reject, time)
        elif ": client=" in message:
            if queued := _QUEUED.match(message):
                queue = queued["queue"]
                self._by_queue_id[queue] = session
                if self._ended is not None:
                    self._queue_ids.setdefault(session, []).append(queue)
                session.note(time, f"{queue}: queued")
        elif "TLS connection established" in message:
            if tls := _TLS.match(message):
                session.tls_started(time, tls["detail"])
        elif _TROUBLE.match(message):
            session.note(time, message)

    def _connect(self, process: str, time: float, client: str) -> None:
        unfinished = self._open.get(process)
        if unfinished is not None:
            # This smtpd process is serving a new client, so its last session is over, but
            # the log never said so (rotated or lost lines, smtpd killed and its pid reused).
            # Close it with what is known: no disconnect, so neither the commands it would
            # have counted nor when it ended.
            self._rejected.pop(unfinished, None)
            pid = process.partition(" ")[2]
            unfinished.close(None, "server", _NO_DISCONNECT.format(pid=pid))
            self._end(unfinished, time)
        self._count += 1
        name = f"{self.prefix}-{self._count}"
        if self._host_in_names:
            name = f"{process.partition(' ')[0]}/{name}"
        session = Recorder(name, "postfix", client)
        session.connect(time, expects_reply=False)  # the greeting is not logged
        if self._ended is None:
            self.sessions.append(session)
        self._open[process] = session

    def _reject(self, session: Recorder, match: re.Match[str], time: float) -> None:
        action, stage, code, enhanced, rest = match.group(
            "action", "stage", "code", "enhanced", "rest"
        )
        text, fields = _refusal(rest)
        if action == "reject_warning":
            # "warn only" (smtpd_check.c): the client was not refused; nothing to pair.
            session.note(time, f"Postfix would refuse {stage}: {code} {text}")
            return
        verb = _REPLY_VERB.get(stage, stage)
        # The command a reply answers: logged with the reject, so the reply is paired with it
        # (every other command of the session was answered before it was sent).
        paired = verb not in ("CONNECT", "DATA-END")
        if paired:
            name, prefix = _ARGUMENT_FIELD.get(verb, ("", ""))
            value = fields.get(name, "") if name else ""
            argument = f"{prefix}:{value}" if prefix and value else value
            session.command(time, verb, argument)
            rejected = self._rejected.setdefault(session, {})
            rejected[verb] = rejected.get(verb, 0) + 1
        reply = Reply(int(code), text, enhanced)  # checked as a live reply is
        session.reply(time, reply, verb)  # paired with the command, if there is one

    def _disconnect(self, session: Recorder, counts: str, time: float) -> None:
        refused = self._rejected.pop(session, None)
        session.counted(time, _unrefused(counts, tuple(refused.items()) if refused else ()))
        by = "server" if "quit=" in counts else "client"
        session.close(time, by, "disconnect" + counts)

    def _syslog_time(self, month_name: str, day: str, clock: str) -> float:
        """POSIX seconds of a classic syslog stamp (UTC; its year from :class:`SyslogYear`)."""
        if (month_name, day) != self._date:  # a new day: its start (the year may turn)
            month = MONTHS[month_name]
            year = self._years.of(month)
            midnight = self._midnights.get((year, month, day))
            if midnight is None:
                date = dt.date(year, month, int(day))
                midnight = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC).timestamp()
                self._midnights[(year, month, day)] = midnight
            self._date, self._midnight = (month_name, day), midnight
            self._minutes.clear()  # the minutes of the day before
        # strptime is the slowest part of reading a log: the fields are fixed, cut them.
        seconds = int(clock[:2]) * 3600 + int(clock[3:5]) * 60 + int(clock[6:8])
        return self._midnight + seconds + (float(clock[8:]) if len(clock) > 8 else 0.0)


def _endpoint(match: re.Match[str]) -> str:
    """The client of a ``name[address]:port`` match (the port is logged only with
    ``smtpd_client_port_logging``)."""
    return endpoint((match["address"], match["port"]))
