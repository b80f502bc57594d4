"""Exim's ``mainlog`` and ``rejectlog`` into rows: one session per SMTP connection.

Theory of operation
-------------------
Exim writes one line per event (spec, chapter "Log files"): ``DATE TIME [+ZONE] [[PID]]
[MESSAGE-ID] EVENT``. Lines with a message id follow a message through the queue: ``<=`` it
arrived, ``=>`` it was delivered to an address, ``->`` to another address in the same
delivery, ``*>`` delivery suppressed, ``**`` it failed for an address (a bounce follows),
``==`` it was deferred for one, ``Completed`` nothing is left to do. Lines about an SMTP
client carry its host as ``H=name (helo) [ip]:port`` (the port with ``incoming_port``, one of
``+all``'s selectors); ``I=[ip]:port`` is the interface it reached (``incoming_interface``).

A session is an SMTP connection. With ``smtp_connection`` logging (``+all``, not the default)
Exim says when one opens (``SMTP connection from [ip]:port ...``, from the daemon) and ends
(``closed by QUIT``, ``lost``, ``unexpected disconnection``, ``dropped``, a timeout); the
lines between are tied to it by the client's address and port. The default ``log_selector``
logs no connections and no ports: a session is then the lines of one client address up to its
first message received (``<=``) or refused after DATA, or the end of its connection where
that is logged (``unexpected disconnection``); a client's refusals in a connection that sent
no message join its next session, as the log cannot tell them apart. The pid (``+pid``) is
not used to tie lines: the daemon logs a connection's start, its own child the rest.

A session's rows carry what the log knows and nothing more:

* a ``connect`` row (its time only when the connection was logged; the greeting is not);
* for each refusal (``rejected RCPT <a>: reason``, ``temporarily rejected ...``, ``rejected
  MAIL``, ``rejected after DATA``, ...), the command and a reply paired with it. Exim logs
  that it refused and why, not the reply code it sent: ``code`` and ``enhanced`` stay
  missing, and the reply's ``text`` is Exim's own account, starting ``rejected`` (a 5xx) or
  ``temporarily rejected`` (a 4xx);
* for each message received over SMTP (``<=``), its MAIL (``FROM:<sender>``), a RCPT for each
  recipient when the line lists them (``received_recipients``, in ``+all``), and DATA (BDAT
  when the line says ``K``), at the ``<=`` time and with no replies (accepted, codes not
  logged); and a ``note`` with the ``<=`` line's message id and fields (``S=`` size, ``P=``
  protocol, ``id=``, ``T=`` subject ..., an ``A=`` login's id hidden). A message that came
  under TLS (``P=esmtps``, ``X=cipher``) gets a ``tls`` row before it, with no time;
* a ``note`` for each later line of that message (``=>``, ``->``, ``**``, ``==``,
  ``Completed``, host errors), and of the bounces it caused (``<= <> R=ID``), whatever the
  time between them;
* the commands of a connection that sent no MAIL, from ``no MAIL in SMTP connection ...
  C=EHLO,QUIT`` (``smtp_no_mail``), and other news about the connection as notes;
* the ``close`` row, by the server after QUIT or a drop, by the client when it went away.

Lines of a rejectlog that continue a refusal (the message's headers: ``Envelope-from:``,
``P Received: ...``, indented lines) and Exim's own indented continuation lines are passed
over; so are well-formed lines about nothing the reader uses (the daemon starting, queue runs,
warnings). A line with no Exim timestamp, or an impossible one, is counted as skipped.

Timestamps are local time unless ``log_timezone`` adds the offset; without one they are
taken as UTC, as the Postfix reader takes classic syslog stamps.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from smtplab.ingest.packets import CaptureProblems
from smtplab.log.recorder import Recorder
from smtplab.log.schema import endpoint

_STAMP = (
    r"(?P<date>\d{4}-\d\d-\d\d) (?P<clock>\d\d:\d\d:\d\d)(?P<fraction>\.\d{1,6})?"
    r"(?: (?P<zone>[+-]\d{4}))?"
)
_MESSAGE_ID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}"
#: A line of Exim's log file: timestamp, pid (``+pid``), the rest.
EXIM_LINE = re.compile(rf"{_STAMP} (?:\[(?P<pid>\d+)\] )?(?P<message>.*)")
#: What only Exim writes after its timestamp (see reader.detect): a message's arrival or
#: delivery, a refusal of a client, a connection, the daemon starting.
EXIM_EVENT = re.compile(
    rf"{_STAMP} (?:\[\d+\] )?(?:{_MESSAGE_ID} (?:<=|=>|->|\*>|\*\*|==|Completed)"
    r"|(?:[0-9A-Za-z-]+ )?H=\S.* (?:temporarily )?rejected |SMTP connection from "
    r"|no MAIL in SMTP connection from |exim \d+\.\d+\S* daemon started)"
)
_MESSAGE_PREFIX = re.compile(rf"({_MESSAGE_ID}) ")
#: A client: ``name (helo) [ip]:port``, each part but the address optional. A client picks
#: its HELO name: each part is bounded, so a hostile line costs a bounded scan per ``H=``.
_HOST = (
    r"(?:[^\s\[(]{1,255} )?(?:\([^)]{0,1024}\) )?"
    r"\[(?P<ip>[^\]\s]{1,64})\](?::(?P<port>\d{1,5}))?"
)
_H_FIELD = re.compile(rf"H={_HOST}")
_FROM_HOST = re.compile(rf"from {_HOST}")
_INTERFACE = re.compile(r" I=\[(?P<ip>[^\]\s]+)\](?::(?P<port>\d+))?")
_SENDER_FIELD = re.compile(r" F=<(?P<sender>[^>]{0,1024})>")  # bounded, as _HOST
_REFUSAL = re.compile(
    r"(?P<temporarily>temporarily )?rejected (?P<what>RCPT|MAIL|VRFY|EXPN|ETRN|AUTH|DATA"
    r"|after DATA|EHLO or HELO|connection)(?: (?:<(?P<address>[^>]*)>|\S+))?(?::\s?(?P<why>.*))?$"
)
#: Tokens of a ``<=`` line: ``NAME=value`` (a value maybe quoted, ``\\"`` inside), or a word.
_TOKEN = re.compile(r'(?:\w+\*?=)?"(?:[^"\\]|\\.)*"|\S+')
_RECIPIENTS = re.compile(r' from <[^>]*> for (?P<recipients>[^"]+)$')  # in the tail only
#: A line that continues the one before: indented, or a rejectlog's header block.
_CONTINUATION = re.compile(r"[ \t]|Envelope-(?:from|to): |(?:[A-Z*] )?[!-9;-~]+:(?: |$)")
_ENDINGS = (
    ("closed by QUIT", "server"),
    ("closed by DROP", "server"),
    ("closed after", "server"),
    (" lost", "client"),
    ("unexpected disconnection", "client"),
    ("dropped:", "server"),
    ("timeout", "server"),
)
_VERBS = {"RCPT": ("RCPT", "TO"), "MAIL": ("MAIL", "FROM"), "VRFY": ("VRFY", ""),
          "EXPN": ("EXPN", ""), "ETRN": ("ETRN", ""), "AUTH": ("AUTH", ""),
          "DATA": ("DATA", "")}  # fmt: skip
#: ``A=authenticator:id`` (``+authenticator``, in the default log_selector): who logged in.
#: Not a password, but no row carries an AUTH identity in clear: the id becomes ``***``.
_AUTH_FIELD = re.compile(r"( A=[^\s:]+):\S+")
_HIDDEN = r"\1:***"
_NO_CONNECTION = (
    "Exim logged no connection here (its log_selector lacks smtp_connection): when it "
    "opened and the greeting are not known"
)


def _tls_fields(tokens: list[str]) -> list[str]:
    return [token for token in tokens if token.startswith(("P=", "X="))]


def _encrypted(tokens: list[str]) -> bool:
    """Whether a ``<=`` line says the message came under TLS: a cipher (``X=``,
    ``tls_cipher``) or a protocol name with Exim's ``s`` for TLS (``esmtps``, ``esmtpsa``,
    ``smtps``; spec, "received_protocol")."""
    for token in _tls_fields(tokens):
        if token.startswith("X=") or token.removesuffix("a").endswith("s"):
            return True
    return False


class EximFormatError(ValueError):
    """Not an Exim log: no line of the file is one (the message names the file and line)."""


class _Session:
    """One connection's recorder. The close of a connection that sent no MAIL waits: Exim
    logs ``no MAIL in SMTP connection`` (with its commands) after the connection's end."""

    __slots__ = ("closing", "logged", "mail_from", "mailed", "recorder")

    def __init__(self, recorder: Recorder, logged: bool) -> None:
        self.recorder = recorder
        self.logged = logged  # Exim logged the connection: it is open until its end is
        self.closing: tuple[float | None, str, str] | None = None
        self.mailed = False  # a MAIL command was seen: no "no MAIL" line will come
        self.mail_from: str | None = None  # the sender of the transaction's MAIL row, if made

    def mail(self, time: float, sender: str) -> None:
        """The MAIL command of the transaction under way, once (no reply: not logged)."""
        if self.mail_from != sender:
            self.recorder.command(time, "MAIL", f"FROM:<{sender}>", expects_reply=False)
            self.mail_from, self.mailed = sender, True

    def transaction_over(self) -> None:
        self.mail_from = None

    def close(self) -> None:
        if self.closing is not None:
            self.recorder.close(*self.closing)
            self.closing = None


class EximReader:
    """Reads Exim log lines into sessions (see the module docstring)."""

    def __init__(self, name: str, prefix: str, problems: CaptureProblems) -> None:
        self.name, self.prefix, self.problems = name, prefix, problems
        self.sessions: list[_Session] = []
        self._open: dict[str, _Session] = {}  # client "ip:port" (or "ip") -> its session
        self._ended: dict[str, _Session] = {}  # closed, awaiting a "no MAIL" line
        self._by_message: dict[str, Recorder] = {}  # message id -> the session that took it
        self._midnights: dict[str, float] = {}

    def read(self, lines: Iterable[str]) -> list[tuple]:  # type: ignore[type-arg]
        """The rows of every session in ``lines``, session by session in the order they
        connected."""
        continued = False  # the line before was an Exim line: continuations may follow it
        exim_lines = 0
        first_bad: tuple[int, str] | None = None
        for number, line in enumerate(lines, 1):
            line = line.rstrip("\r\n")
            match = EXIM_LINE.match(line)
            if match is None:
                if not line.strip() or (continued and _CONTINUATION.match(line)):
                    continue
                self.problems.add("not an Exim log line", f"{self.name} line {number}")
                first_bad = first_bad or (number, line)
                continued = False
                continue
            exim_lines += 1
            try:
                time = self._time(*match.group("date", "clock", "fraction", "zone"))
            except ValueError:
                self.problems.add("impossible timestamp", f"{self.name} line {number}")
                continued = False
                continue
            continued = True
            self._line(time, match["message"])
        if not exim_lines and first_bad is not None:
            number, line = first_bad
            raise EximFormatError(
                f"{self.name} line {number}: not an Exim log line ({line[:60]!r}), nor is any "
                "other: an Exim mainlog or rejectlog line starts 'YYYY-MM-DD HH:MM:SS '"
            )
        for session in self._open.values():
            if session.logged:
                session.recorder.note(None, "the log ends before this connection's end")
        for session in self.sessions:
            session.close()
        return [row for session in self.sessions for row in session.recorder.tuples]

    def _time(self, date: str, clock: str, fraction: str | None, zone: str | None) -> float:
        """POSIX seconds of a stamp; ValueError for an impossible one (``2026-02-30``)."""
        midnight = self._midnights.get(date)
        if midnight is None:
            day = dt.date.fromisoformat(date)
            midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()
            if len(self._midnights) > 1000:
                self._midnights.clear()
            self._midnights[date] = midnight
        hours, minutes, seconds = int(clock[:2]), int(clock[3:5]), int(clock[6:8])
        if hours > 23 or minutes > 59 or seconds > 60:
            raise ValueError(clock)
        time = midnight + hours * 3600 + minutes * 60 + seconds
        if fraction:
            time += float(fraction)
        if zone:  # log_timezone: local time and its offset from UTC
            offset = int(zone[1:3]) * 3600 + int(zone[3:5]) * 60
            time -= offset if zone[0] == "+" else -offset
        return time

    def _line(self, time: float, message: str) -> None:
        prefix = _MESSAGE_PREFIX.match(message)
        if prefix is not None:
            self._message_line(time, prefix[1], message[prefix.end() :])
        elif message.startswith("H="):
            self._client_line(time, message, None)
        elif message.startswith("SMTP connection from "):
            self._connection_line(time, message)
        elif message.startswith("no MAIL in SMTP connection from "):
            self._no_mail(time, message)
        elif message.startswith(("unexpected disconnection ", "SMTP call from ", "SMTP command ")):
            self._ending(time, message, _FROM_HOST.search(message))
        elif message.startswith(("SMTP data timeout", "SMTP protocol", "SMTP syntax error")):
            host = _FROM_HOST.search(message) or _H_FIELD.search(message)
            session = self._session_of(host, time) if host else None
            if session is not None:
                session.recorder.note(time, message)

    def _message_line(self, time: float, message_id: str, rest: str) -> None:
        if rest.startswith("<= "):
            self._received(time, message_id, rest)
        elif rest.startswith("H=") and " rejected " in rest:
            self._client_line(time, rest, message_id)
        else:  # => -> ** == Completed, a host's error: news of a message a session took
            session = self._by_message.get(message_id)
            if session is not None:
                session.note(time, f"{message_id} {rest}")

    def _received(self, time: float, message_id: str, rest: str) -> None:
        host = _H_FIELD.search(rest)
        if host is None:  # not over SMTP (a bounce: "<= <> R=PARENT", a local submission)
            parent = re.search(rf" R=({_MESSAGE_ID})", rest)
            took = self._by_message.get(parent[1]) if parent else None
            if took is not None:  # a bounce: its news goes where its parent's goes
                self._by_message[message_id] = took
                took.note(time, f"{message_id} {rest}")
            return
        session = self._session_of(host, time, rest)
        recorder = session.recorder
        tokens = _TOKEN.findall(rest[3:])
        sender = tokens[0] if tokens else ""
        if not recorder.tls and _encrypted(tokens):  # when TLS started: not logged
            recorder.tls_started(None, "TLS (Exim: " + " ".join(_tls_fields(tokens)) + ")")
        session.mail(time, "" if sender == "<>" else sender)
        tail = rest[rest.rfind('"') + 1 :]  # after the subject (T="..."), which may be anything
        listed = _RECIPIENTS.match(tail, max(tail.find(" from <"), 0))
        if listed is not None:
            for recipient in listed["recipients"].split():
                recorder.command(time, "RCPT", f"TO:<{recipient}>", expects_reply=False)
        chunked = "K" in tokens[1:]  # Exim: "K" after the host, the message came in BDAT
        recorder.command(time, "BDAT" if chunked else "DATA", "", expects_reply=False)
        recorder.note(time, f"{message_id} {_AUTH_FIELD.sub(_HIDDEN, rest)}")
        session.transaction_over()
        self._by_message[message_id] = recorder
        if not session.logged:
            self._end(self._key(host), session)  # the message ends what is known of it

    def _client_line(self, time: float, message: str, message_id: str | None) -> None:
        """``H=...`` lines: a refusal, an incomplete transaction, other news of a client."""
        host = _H_FIELD.match(message)
        if host is None:
            return
        session = self._session_of(host, time, message)
        cut = message.find(" rejected ", host.end())
        if cut >= 0 and message.endswith(" temporarily", 0, cut):
            cut -= len(" temporarily")
        refusal = _REFUSAL.match(message, cut + 1) if cut >= 0 else None
        if refusal is None:
            if "incomplete transaction" in message:
                session.transaction_over()
            session.recorder.note(time, message)
            return
        self._refusal(session, time, refusal, message, message_id)
        if refusal["what"] == "after DATA" and not session.logged:
            self._end(self._key(host), session)  # as a message's arrival does

    def _refusal(
        self,
        session: _Session,
        time: float,
        refusal: re.Match[str],
        message: str,
        message_id: str | None,
    ) -> None:
        what, address, why = refusal.group("what", "address", "why")
        account = "temporarily rejected" if refusal["temporarily"] else "rejected"
        text = f"{account}: {why}" if why else account
        recorder = session.recorder
        sender = _SENDER_FIELD.search(message)  # F=: a MAIL was accepted before this
        if sender is not None and what != "MAIL":
            session.mail(time, sender["sender"])
        if what == "after DATA":  # the message was refused after its final dot
            recorder.command(time, "DATA", "", expects_reply=False)
            recorder.uncoded_reply(time, text, "DATA-END")
            if message_id is not None:
                recorder.note(time, f"{message_id} refused after DATA")
            session.transaction_over()
            return
        if what == "connection":  # the connect ACL: the greeting refused
            recorder.uncoded_reply(time, text, "CONNECT")
            return
        if what == "EHLO or HELO":  # which of the two, the log does not say
            recorder.note(time, f"Exim {text} (the EHLO or HELO command)")
            return
        verb, field = _VERBS[what]
        session.mailed = session.mailed or verb == "MAIL"
        argument = f"{field}:<{address}>" if field and address is not None else address or ""
        recorder.command(time, verb, argument)
        recorder.uncoded_reply(time, text, verb)

    def _connection_line(self, time: float, message: str) -> None:
        host = _FROM_HOST.match(message, len("SMTP connection "))
        if host is None:
            return
        if message.endswith(")") and "connection count" in message:  # the daemon: it opens
            key = self._key(host)
            old = self._open.pop(key, None)
            if old is not None:  # the same client address and port again: the old one ended
                old.recorder.note(None, "the log has no end for this connection")
                self._end(key, old)
            self._new(key, host, time, message, logged=True)
            return
        self._ending(time, message, host)

    def _ending(self, time: float, message: str, host: re.Match[str] | None) -> None:
        """A connection's end (``closed by QUIT``, ``lost``, ``unexpected disconnection``,
        ``dropped``, a timeout); its close row waits for a ``no MAIL`` line."""
        if host is None:
            return
        key = self._key(host)
        session = self._open.get(key)
        if session is None:
            session = self._session_of(host, time, message)
        by = next((side for words, side in _ENDINGS if words in message), "server")
        session.closing = (time, by, message)
        if session.mailed:  # no "no MAIL" line will follow: closed now
            session.close()
        self._end(key, session)

    def _no_mail(self, time: float, message: str) -> None:
        """``no MAIL in SMTP connection from HOST D=... C=EHLO,QUIT``: the commands of a
        connection that sent no MAIL, in order (logged after the connection's end)."""
        host = _FROM_HOST.search(message)
        if host is None:
            return
        key = self._key(host)
        session = self._ended.pop(key, None) or self._open.get(key)
        if session is None:
            session = self._session_of(host, time, message)
        commands = re.search(r" C=(\S+)", message)
        if commands is not None:
            verbs = [verb.upper() for verb in commands[1].split(",") if verb.isalpha()]
            session.recorder.counted(time, verbs)
        session.close()

    def _session_of(self, host: re.Match[str], time: float, message: str = "") -> _Session:
        """The open session of a client, or a new one when none is open (a connection the
        log did not open: the default log_selector)."""
        key = self._key(host)
        session = self._open.get(key)
        if session is None:
            session = self._new(key, host, time, message, logged=False)
        return session

    def _new(
        self, key: str, host: re.Match[str], time: float, message: str, logged: bool
    ) -> _Session:
        earlier = self._ended.pop(key, None)
        if earlier is not None:
            earlier.close()
        interface = _INTERFACE.search(message)
        server = endpoint(interface.group("ip", "port")) if interface else None
        name = f"{self.prefix}-{len(self.sessions) + 1}"
        recorder = Recorder(name, "exim", endpoint(host.group("ip", "port")), server)
        recorder.connect(time if logged else None, expects_reply=False)
        if not logged:
            recorder.note(None, _NO_CONNECTION)
        session = _Session(recorder, logged)
        self.sessions.append(session)
        self._open[key] = session
        return session

    def _end(self, key: str, session: _Session) -> None:
        if self._open.get(key) is session:
            del self._open[key]
        if session.closing is not None:
            earlier = self._ended.get(key)
            if earlier is not None and earlier is not session:
                earlier.close()
            self._ended[key] = session

    @staticmethod
    def _key(host: re.Match[str]) -> str:
        ip, port = host.group("ip", "port")
        return f"{ip}:{port}" if port else ip
