"""Client transcripts into rows: what ``swaks`` prints, and ``smtplib``'s debug output.

Both tools print each line they send and receive. The readers turn those lines back into the
two byte streams of the conversation and feed them to the same
:class:`~smtplab.log.wire.WireRecorder` that records smtplab's TCP client, so commands, message
data, BDAT chunks and replies pair up exactly as in a live session.

* **swaks** marks each line: `` -> `` sent, ``<-  `` received, ``<** `` an error reply,
  `` ~> ``/``<~  ``/``<~* `` the same under TLS, ``=== `` swaks's own news (``Trying
  host:port...`` opens a session, ``TLS started ...``, ``Connection closed ...``), ``*** `` its
  errors. It prints no times: the ``time`` column stays missing. A session need not start with
  ``Trying``: ``swaks --pipe`` and ``--socket`` print ``Trying pipe to COMMAND...`` or ``Trying
  PATH...`` (no network endpoint: ``server`` stays missing), and a transcript cut from a longer
  one may start at the greeting (``<-  220 ...``); a conversation line outside any session
  opens one, with its server unknown.
* **smtplib** (``set_debuglevel(1)`` or ``(2)``) prints ``connect:``, ``send:`` and ``reply:``
  lines with Python literals of what went over the wire; level 2 starts each line with the time
  of day. A time of day without a date is not a time: rows keep ``time`` missing unless a
  ``day`` is given, but the ``latency`` between a command and its reply is kept either way.
"""

from __future__ import annotations

import ast
import datetime as dt
import re
import warnings
from collections.abc import Iterable

from smtplab.ingest.packets import CaptureProblems
from smtplab.log.recorder import Recorder
from smtplab.log.schema import endpoint
from smtplab.log.wire import WireRecorder

_TIME = 2  # the time field's index in a row tuple
SWAKS_LINE = re.compile(r"(?P<mark> -> | ~> |<-  |<~  |<\*\* |<~\* |=== |\*\*\* )(?P<text>.*)")
_SWAKS_TRYING = re.compile(r"Trying (?P<server>.+?)\.\.\.$")
#: A line swaks prints only for a reply it received: a transcript's mark of itself even
#: without its ``=== `` lines (see reader.detect).
SWAKS_REPLY = re.compile(r"(?:<-  |<~  |<\*\* |<~\* )[2-5]\d\d(?:[ -]|$)")
SMTPLIB_LINE = re.compile(
    r"(?:(?P<clock>\d\d:\d\d:\d\d\.\d{6}) )?(?P<kind>connect|send|reply|data): (?P<value>.*)"
)


class _Conversation:
    """One session rebuilt from a client's transcript lines."""

    def __init__(
        self,
        session: str,
        source: str,
        server: str | None,
        time: float | None,
        auto_tls: bool,
        greeted: bool = False,
    ) -> None:
        self.auto_tls = auto_tls  # the transcript does not say when TLS starts: a 220 does
        self.recorder = Recorder(session, source, client=None, server=server)
        self.wire = WireRecorder(self.recorder)
        if greeted:  # the greeting came before the transcript starts: no reply awaited
            self.recorder.connect(time, expects_reply=False)
        else:
            self.wire.connected(time)  # None: when is unknown

    def sent(self, data: bytes, time: float | None) -> None:
        self.wire.sent(data, time)

    def received(self, data: bytes, time: float | None) -> None:
        self.wire.received(data, time)
        last = self.recorder.tuples[-1]
        if self.auto_tls and last[4] == "reply" and last[5] == "STARTTLS" and last[7] == 220:
            self.recorder.tls_started(time, "TLS started (STARTTLS)")

    def quitted(self) -> bool:
        """The last row is the server's 221 to QUIT: the connection is over (the server
        closes it, RFC 5321 4.1.1.10), and a later conversation line is another session's."""
        last = self.recorder.tuples[-1]
        return last[4] == "reply" and last[5] == "QUIT" and last[7] == 221


_AFTER_CONNECT = (
    "smtplib's debug output starts after the connection was made: the greeting "
    "(and any command before the first one shown) is not in the transcript"
)


def read_swaks(lines: Iterable[str], name: str, prefix: str, problems: CaptureProblems) -> list:
    """The rows of every session in a swaks transcript (``name``: the file, for messages)."""
    conversations: list[_Conversation] = []
    current: _Conversation | None = None
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        match = SWAKS_LINE.match(line)
        if match is None:
            if line.strip():
                problems.add("not a swaks transcript line", f"{name} line {number}")
            continue
        mark, text = match["mark"], match["text"]
        if mark == "=== ":
            trying = _SWAKS_TRYING.match(text)
            if trying:
                session = f"{prefix}-{len(conversations) + 1}"
                server = _swaks_server(trying["server"])
                current = _Conversation(session, "swaks", server, None, auto_tls=False)
                conversations.append(current)
            elif current is not None and text.startswith("TLS started"):
                current.recorder.tls_started(None, text)
            elif current is not None and text.startswith("Connection closed"):
                current.wire.closed(None, "client", text)
                current = None
            continue
        if current is None and mark == "*** ":
            problems.add("a swaks error outside any session", f"{name} line {number}")
            continue
        if current is None:  # no "=== Trying": a session all the same, its server unknown
            session = f"{prefix}-{len(conversations) + 1}"
            current = _Conversation(session, "swaks", None, None, auto_tls=False)
            conversations.append(current)
        if mark == "*** ":
            current.recorder.note(None, f"swaks: {text}")
        elif mark in (" -> ", " ~> "):
            current.sent(text.encode("utf-8") + b"\r\n", None)
        else:
            current.received(text.encode("utf-8") + b"\r\n", None)
    return [row for conversation in conversations for row in conversation.recorder.tuples]


def _swaks_server(text: str) -> str | None:
    """The endpoint of swaks's ``Trying host:port...`` (``Trying ::1:25...`` for IPv6), or
    None for a pipe or a UNIX socket (``Trying pipe to COMMAND...``, ``Trying /PATH...``)."""
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or " " in text:
        return None
    return endpoint((host.removeprefix("[").removesuffix("]"), port))


def read_smtplib(
    lines: Iterable[str],
    name: str,
    prefix: str,
    problems: CaptureProblems,
    day: dt.date | None = None,
) -> list:
    """The rows of every session in ``smtplib`` debug output (see the module docstring)."""
    conversations: list[_Conversation] = []
    current: _Conversation | None = None
    midnight = (
        dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() if day is not None else 0.0
    )
    last_time: float | None = None
    for number, line in enumerate(lines, 1):
        match = SMTPLIB_LINE.match(line.rstrip("\r\n"))
        if match is None:
            if line.strip():
                problems.add("not an smtplib debug line", f"{name} line {number}")
            continue
        time = _seconds(match["clock"], midnight)
        if time is not None and last_time is not None and time < last_time - 43200:
            midnight += 86400  # the clock went past midnight: a new day
            time += 86400
        last_time = time if time is not None else last_time
        kind, value = match["kind"], match["value"]
        if kind == "connect":
            # "connect: to ('host', 25) None" (3.11: with the source address), or older
            # "connect: ('host', 25)"; a second "connect:" line holds the greeting's text.
            if value.startswith("to "):
                value = value.removeprefix("to ").rsplit(" ", 1)[0]
            address = _literal(value)
            if isinstance(address, tuple) and len(address) == 2:
                session = f"{prefix}-{len(conversations) + 1}"
                server = endpoint(address)
                current = _Conversation(session, "smtplib", server, time, auto_tls=True)
                conversations.append(current)
            continue  # the other "connect:" line repeats the greeting
        if kind == "data" or value.startswith("retcode"):
            if current is None:
                problems.add("a conversation line outside any session", f"{name} line {number}")
            continue  # smtplib's summaries of what it already printed
        payload = _literal(value)
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        if not isinstance(payload, bytes):
            problems.add(f"unreadable {kind} value", f"{name} line {number}")
            continue
        if current is None or current.quitted():
            # No "connect:" line: debugging was switched on after connecting, the usual way
            # (SMTP(host, port), then set_debuglevel). A session all the same, its server
            # unknown; what came before (the greeting, maybe EHLO) is not in the transcript.
            # A transcript that starts at a reply starts at the greeting, as a cut one may.
            session = f"{prefix}-{len(conversations) + 1}"
            current = _Conversation(
                session, "smtplib", None, None, auto_tls=True, greeted=kind == "send"
            )
            if kind == "send":
                current.recorder.note(None, _AFTER_CONNECT, sender="client")
            conversations.append(current)
        if kind == "send":
            current.sent(payload, time)
        else:
            current.received(payload, time)
    rows = [row for conversation in conversations for row in conversation.recorder.tuples]
    if day is None:  # the latencies stand; the times of day alone are no times
        rows = [(*row[:_TIME], None, *row[_TIME + 1 :]) for row in rows]
    return rows


def _seconds(clock: str | None, midnight: float) -> float | None:
    if clock is None:
        return None
    hours, minutes, seconds = clock.split(":")
    return midnight + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _literal(text: str) -> object:
    if len(text) > _LITERAL_LIMIT:
        return None
    try:
        with warnings.catch_warnings():  # a garbled escape ("\\z") is damage, not news for the user
            warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, RecursionError, MemoryError):  # garbled: not a literal
        return None


_LITERAL_LIMIT = 1 << 20  # smtplib prints a message as one literal; beyond this it is damage
