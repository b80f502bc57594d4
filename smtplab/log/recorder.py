"""The recorder: turns what a connection does into transcript rows.

It observes and never changes a session. A driver hands it each protocol event with the time
it happened (:meth:`Recorder.record`: a command, an AUTH response, a message, a BDAT chunk, a
reply); a source that has no events of its own, such as a server log, calls the method for
the unit it has (:meth:`Recorder.counted`, :meth:`Recorder.note` ...). The recorder
numbers the rows, pairs each reply with the unit it answers (in order, as RFC 2920 3.1 requires
of pipelined replies) and computes latencies. Rows are frozen :class:`Row` objects; one call to
:func:`smtplab.log.frame.to_frame` turns them into a DataFrame. Credentials never reach a row:
an AUTH command keeps only its mechanism name (RFC 4954). Nothing a peer sends makes a row
grow without bound: arguments, texts and message previews are cut (:mod:`smtplab.log.limits`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import NamedTuple

from smtplab.log.limits import MAX_ARGUMENT, MAX_TEXT, PREVIEW_LINES, clip, preview
from smtplab.protocol.commands import redact_command
from smtplab.protocol.events import (
    AuthResponse,
    Bdat,
    Command,
    Event,
    MessageReceived,
    Reply,
    ReplyReceived,
)
from smtplab.protocol.observer import Lost, Note, TlsStarted
from smtplab.protocol.states import Step

DATA_PREVIEW_LINES = PREVIEW_LINES  # the older name


class Row(NamedTuple):
    """One transcript row (immutable); field meanings are in :mod:`smtplab.log.schema`.

    A named tuple rather than a dataclass: a busy lab makes millions of these, and a tuple is
    built several times faster and turned into columns with one ``zip``.
    """

    session: str
    seq: int
    time: float | None  # POSIX seconds, UTC; None where the source does not say when
    sender: str
    kind: str
    verb: str | None = None
    argument: str | None = None
    code: int | None = None
    enhanced: str | None = None
    text: str | None = None
    reply_to: int | None = None
    latency: float | None = None
    source: str = "lab"
    client: str | None = None
    server: str | None = None
    tls: bool = False
    size: int | None = None
    lines: int | None = None


VERB = Row._fields.index("verb")


class Recorder:
    """Collects the rows of one session."""

    def __init__(
        self,
        session: str,
        source: str = "lab",
        client: str | None = None,
        server: str | None = None,
    ) -> None:
        self.session = session
        self.source = source
        self.client = client
        self.server = server
        self.tls = False
        # Plain tuples in Row's field order: the garbage collector stops tracking a plain tuple
        # of strings and numbers, but never a tuple subclass, and a lab keeps millions of rows.
        self.tuples: list[tuple] = []
        self._awaiting: deque[tuple[int, float | None]] = deque()  # (seq, time) of unanswered units
        self._lost: int | None = None  # a LOST note that took a reply and may take more
        self._lost_notes = False  # any LOST note at all (a capture's loss): see reply()

    def _add(
        self,
        time: float | None,
        sender: str,
        kind: str,
        verb: str | None = None,
        argument: str | None = None,
        code: int | None = None,
        enhanced: str | None = None,
        text: str | None = None,
        reply_to: int | None = None,
        latency: float | None = None,
        size: int | None = None,
        lines: int | None = None,
    ) -> int:
        if text is not None and len(text) > MAX_TEXT:
            text = clip(text, MAX_TEXT)
        rows = self.tuples
        seq = len(rows)
        rows.append(
            (
                self.session,
                seq,
                time,
                sender,
                kind,
                verb,
                argument,
                code,
                enhanced,
                text,
                reply_to,
                latency,
                self.source,
                self.client,
                self.server,
                self.tls,
                size,
                lines,
            )
        )
        return seq

    @property
    def rows(self) -> list[Row]:
        """The rows so far, as :class:`Row` named tuples."""
        return [Row._make(values) for values in self.tuples]

    def record(self, event: Event | Reply, time: float | None) -> int:
        """The row for one event, made the one way every source makes it: a command
        (credentials hidden), an AUTH exchange line (always ``***``), a BDAT chunk, a message
        after its final dot, a reply (a :class:`Reply` sent, or a :class:`ReplyReceived`)
        paired with the unit it answers, or what an observer of the bytes reports besides
        (a note, octets a capture lost, the start of TLS). Returns the row's ``seq``."""
        if isinstance(event, AuthResponse):  # RFC 4954 4: a SASL response, never in clear
            return self.command(time, "AUTH", "***")
        if isinstance(event, Bdat):
            return self.chunk(time, event.argument, event.size or 0, event.chunk, event.line_count)
        if isinstance(event, Command):
            return self.command(time, event.verb, event.argument)
        if isinstance(event, MessageReceived):
            return self.data(time, event.content, event.size, event.line_count)
        if isinstance(event, ReplyReceived):
            return self.reply(time, event.reply)
        if isinstance(event, Reply):
            return self.reply(time, event)
        if isinstance(event, Note):
            return self.note(time, event.text, event.sender)
        if isinstance(event, Lost):
            return self.lost(time, event.text)
        if isinstance(event, TlsStarted):
            return self.tls_started(time, event.text)
        raise TypeError(f"no transcript row is made from {type(event).__name__}")

    def connect(self, time: float | None, expects_reply: bool = True) -> int:
        """The TCP connection opened; the greeting will answer it (unless the source never
        shows the greeting, as a server's log does not)."""
        seq = self._add(time, "client", "connect", verb=Step.CONNECT)
        if expects_reply:
            if self._lost is not None:
                self._retire_lost()
            self._awaiting.append((seq, time))
        return seq

    def command(
        self, time: float | None, verb: str, argument: str = "", expects_reply: bool = True
    ) -> int:
        """A command line from the client."""
        verb, argument = redact_command(verb, argument)
        if len(argument) + len(verb) > MAX_ARGUMENT:  # an overlong line: its start is kept
            verb, argument = clip(verb, MAX_ARGUMENT), clip(argument, MAX_ARGUMENT)
        seq = self._add(time, "client", "command", verb=verb, argument=argument)
        if expects_reply:
            if self._lost is not None:
                self._retire_lost()
            self._awaiting.append((seq, time))
        return seq

    def counted(self, time: float | None, verbs: Iterable[str]) -> None:
        """Commands known only from a count (a server log's tally of a session's commands),
        a row each: no argument, and no reply expected, since the source shows none."""
        for verb in verbs:
            self._add(time, "client", "command", verb=verb)

    def data(
        self, time: float | None, content: bytes, size: int | None = None, lines: int | None = None
    ) -> int:
        """A message block, up to and including the final dot; the next reply answers it."""
        text = preview(content)
        if lines is None:
            lines = content.count(b"\r\n")
        seq = self._add(
            time,
            "client",
            "data",
            verb=Step.DATA_END,
            text=text,
            size=len(content) if size is None else size,
            lines=lines,
        )
        if self._lost is not None:
            self._retire_lost()
        self._awaiting.append((seq, time))
        return seq

    def chunk(
        self,
        time: float | None,
        argument: str,
        size: int,
        content: bytes = b"",
        lines: int | None = None,
    ) -> int:
        """A BDAT command and the ``size`` octets that followed it (RFC 3030): one row, with
        the chunk's size and first lines (``content``: the octets, when they were kept, or
        their start, with ``lines`` counted over all of them)."""
        seq = self._add(
            time,
            "client",
            "command",
            verb="BDAT",
            argument=clip(argument, MAX_ARGUMENT),
            text=preview(content) if content else None,
            size=size,
            lines=content.count(b"\r\n") if lines is None else lines,
        )
        if self._lost is not None:
            self._retire_lost()
        self._awaiting.append((seq, time))
        return seq

    def reply(self, time: float | None, reply: Reply, verb: str | None = None) -> int:
        """A reply from the server, paired with the oldest unit still awaiting one."""
        return self._reply(time, reply.code, reply.enhanced, reply.text, verb)

    def uncoded_reply(self, time: float | None, text: str | None, verb: str | None = None) -> int:
        """A reply that a server's log reports without its code (Exim logs that it rejected
        a command, and why, not the reply it sent): paired as :meth:`reply` pairs it, its
        ``code`` and ``enhanced`` left missing rather than guessed."""
        return self._reply(time, None, None, text, verb)

    def logged_reply(self, time: float | None, reply: Reply) -> int:
        """A reply a source logged without the command it answered (Zeek's ``smtp.log``
        keeps each transaction's last reply only): not paired with any unit (``reply_to``
        and ``verb`` stay missing, as which command it answered is not known)."""
        return self._add(
            time, "server", "reply", code=reply.code, enhanced=reply.enhanced, text=reply.text
        )

    def _reply(
        self,
        time: float | None,
        code: int | None,
        enhanced: str | None,
        text: str | None,
        verb: str | None,
    ) -> int:
        reply_to = latency = None
        if self._awaiting:
            reply_to, asked = self._awaiting.popleft()
            # Sources that do not know when (a swaks transcript) record None.
            latency = time - asked if time is not None and asked is not None else None
            if verb is None:
                verb = self.tuples[reply_to][VERB]
            if self._lost_notes and not self._awaiting and self.tuples[reply_to][VERB] == Step.LOST:
                # Lost octets may have held several commands: their note takes every reply
                # until the client is seen to send something after them.
                self._awaiting.appendleft((reply_to, asked))
                self._lost = reply_to
        return self._add(
            time,
            "server",
            "reply",
            verb=verb or Step.UNSOLICITED,
            code=code,
            enhanced=enhanced,
            text=text,  # cut by _add: a hostile server's endless reply keeps its start
            reply_to=reply_to,
            latency=latency,
        )

    def unanswered(self) -> list[int]:
        """The units still awaiting a reply, which will never get one here (the replies were
        lost from a capture): forgotten, so that later replies pair with later units."""
        seqs = [seq for seq, _ in self._awaiting]
        self._awaiting.clear()
        self._lost = None
        return seqs

    def lost(self, time: float | None, text: str) -> int:
        """A client note standing for units a capture lost: the next reply answers it, and
        so does every one after it until the client sends something else."""
        seq = self._add(time, "client", "note", verb=Step.LOST, text=text)
        self._awaiting.append((seq, time))
        self._lost_notes = True
        return seq

    def _retire_lost(self) -> None:
        """The client sent a unit after a LOST note that was answered: no more replies for it."""
        if self._awaiting and self._awaiting[0][0] == self._lost:
            self._awaiting.popleft()
        self._lost = None

    def tls_started(self, time: float | None, text: str) -> int:
        """TLS is on from here (STARTTLS, RFC 3207): this and every later row has ``tls``.

        Whatever the client sent before the handshake and was not answered is discarded by
        the server (RFC 3207 4.2): no reply after TLS is paired with it."""
        self.tls = True
        self._awaiting.clear()
        return self._add(time, "server", "tls", text=text)

    def close(self, time: float | None, sender: str, text: str = "") -> int:
        """The connection closed; ``sender`` is the side that closed it."""
        self._awaiting.clear()
        return self._add(time, sender, "close", text=text or None)

    def note(self, time: float | None, text: str, sender: str = "server") -> int:
        """Something worth knowing that is not a protocol unit (a message id, a stored file)."""
        return self._add(time, sender, "note", text=text)
