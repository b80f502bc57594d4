"""Watching a conversation from its bytes: what the client sent, what the server answered.

The engines (:mod:`~smtplab.protocol.client`, :mod:`~smtplab.protocol.server`) take part in a
conversation. An :class:`Observer` only watches one - a client's own bytes over TCP, or both
directions of a capture - and says what each side did, as events: the client's units
(:class:`~smtplab.protocol.events.Command`, :class:`~smtplab.protocol.events.AuthResponse`,
:class:`~smtplab.protocol.events.Bdat`, :class:`~smtplab.protocol.events.MessageReceived`),
the server's replies (:class:`~smtplab.protocol.events.Reply`), and what is worth a note.
Sans-IO like the engines: bytes in, events out, no clocks.

It frames the bytes as RFC 5321 does. A command line ends at CRLF, and also at a bare LF:
RFC 5321 2.3.8 says lines end with CRLF, but real servers (Postfix, aiosmtpd, smtplab's own)
end a command at the LF and answer it, so the observer reports the command and a
:class:`Note` saying how it ended. Message data is different: only ``<CRLF>.<CRLF>`` ends it
(4.1.1.4), whatever bare LFs it holds, as taking ``<LF>.<LF>`` for the end is what SMTP
smuggling exploits.

What a reply answered decides how the client's next octets are read (a 354 to DATA: message
content; a 334 to AUTH: SASL responses; a 220 to STARTTLS: TLS). Pairing replies with what
they answer is the recorder's work, so the caller reads the replies one at a time
(:meth:`Observer.next_reply`) and tells the observer what each answered
(:meth:`Observer.answered`).

Memory stays bounded whatever the client sends: message data and BDAT chunks are counted as
they arrive (:mod:`smtplab.protocol.blocks`) and only their first ``keep`` octets are kept, and
of a command line without end at most :data:`MAX_LINE` octets. Each octet is searched a
bounded number of times, so the work is linear in the octets however they are split.

Octets a capture lost
---------------------
A capture can miss a segment its receiver got. What it held is gone, but the reading must not
slip for the rest of the session:

* lost **server** octets held the replies to every unit still waiting for one
  (:meth:`Observer.server_lost`); when the lost replies answered DATA or STARTTLS, the client's
  next octets tell whether it went on with message content (not a command) or with TLS (a
  handshake record).
* lost **client** octets inside a message or a BDAT chunk are a hole in it; elsewhere they held
  a command or more (:meth:`Observer.client_lost`): a :class:`Lost` event stands for them (a
  354 or a 220 answering it: the next client octets tell whether they held DATA or STARTTLS).
  A first line after the gap that starts with no SMTP verb is the rest of a lost line.
"""

from __future__ import annotations

from dataclasses import dataclass

from smtplab.protocol.blocks import STEP, Block, DotStuffed
from smtplab.protocol.chunking import parse_bdat
from smtplab.protocol.commands import COMMAND_VERBS, redact_command, split_command
from smtplab.protocol.errors import RemoteProtocolError
from smtplab.protocol.events import (
    AuthResponse,
    Bdat,
    Command,
    Event,
    MessageReceived,
    Reply,
)
from smtplab.protocol.replies import ReplyParser
from smtplab.protocol.states import Step

#: The note after a command line that ended in a bare LF.
BARE_LF_NOTE = "the line above ended in a bare LF, not CRLF (RFC 5321 2.3.8)"
#: A command line is at most 512 octets (RFC 5321 4.5.3.1.4); of a longer one, the observer
#: keeps the first and last octets up to this many (its middle is dropped as it arrives).
MAX_LINE = 2048
_TLS_HANDSHAKE = 0x16  # the first octet of a TLS handshake record (RFC 8446 5.1)


@dataclass(frozen=True, slots=True)
class Note(Event):
    """Something worth knowing that is no protocol unit (how a line ended, a cut message)."""

    text: str
    sender: str = "client"


@dataclass(frozen=True, slots=True)
class Lost(Event):
    """Client octets a capture lost outside a message: a command or more, whose reply (or
    replies) come next."""

    text: str


@dataclass(frozen=True, slots=True)
class TlsStarted(Event):
    """What follows is TLS (RFC 3207): the observer reads no more of either direction."""

    text: str


class Observer:
    """One conversation's bytes in, in the order they went; events out (see the module)."""

    def __init__(self, keep: int, opaque_after_starttls: bool = False) -> None:
        self.keep = keep  # octets kept of each message or chunk's start
        # A capture cannot read what follows a 220 to STARTTLS: it is encrypted (RFC 3207).
        # A live client can (it holds the keys) and reports the TLS start itself.
        self.opaque_after_starttls = opaque_after_starttls
        self.opaque = False
        self._out = bytearray()  # client octets not yet read: between calls, at most a line
        self._replies = ReplyParser()
        self._message: DotStuffed | None = None  # after a 354: the message, as it arrives
        self._in_auth = False  # AUTH sent and not yet finished: client lines are credentials
        # After an AUTH, until a line starts with an SMTP verb: lines may be credentials.
        self._sasl_may_follow = False
        self._chunk: tuple[str, int] | None = None  # a BDAT line read: (argument, size)
        self._chunk_bare = False  # that line ended in a bare LF
        self._chunk_block = Block(keep)  # the chunk's octets so far, counted
        self._chunk_left = 0  # its octets still to come (less those a capture lost)
        self._line_scanned = 0  # octets of an unfinished command line searched for its LF
        # After a capture's loss (see the module docstring): part of the message lost, the
        # lost reply's verb (DATA, STARTTLS) that the client's next octets tell the outcome
        # of, and whether the next line may be the rest of a lost one.
        self._data_lost = False
        self._guess: str | None = None
        self._resync = False

    # -- the client's octets ----------------------------------------------------------------

    def client_data(self, data: bytes) -> list[Event]:
        """Read the client's next octets; the units they completed, in order."""
        events: list[Event] = []
        if self.opaque:
            return events
        self._out += data
        while self._out or self._chunk is not None:
            if self._chunk is not None:  # a BDAT's octets follow its line (RFC 3030 2)
                if not self._read_chunk(events):
                    return events
                continue
            if self._guess is not None and not self._guessed(events):
                return events
            if self.opaque:
                return events
            if self._message is not None:
                # Counted as it arrives, up to its final dot: what follows is the next unit.
                taken = self._message.feed(self._out)
                if taken < 0:
                    self._out.clear()
                    return events
                del self._out[:taken]
                events.append(self._end_data())
                continue
            if not self._read_line(events):
                return events
        return events

    def _read_chunk(self, events: list[Event]) -> bool:
        """Count the chunk's octets that are here; whether it is complete (then reported)."""
        assert self._chunk is not None
        take = min(len(self._out), self._chunk_left)
        # Counted in steps of STEP octets and dropped: only the chunk's start is kept.
        for start in range(0, take, STEP):
            self._chunk_block.add(self._out[start : min(start + STEP, take)])
        del self._out[:take]
        self._chunk_left -= take
        if self._chunk_left:
            return False
        argument, size = self._chunk
        block = self._chunk_block
        events.append(
            Bdat("BDAT", argument, size=size, chunk=bytes(block.head), line_count=block.lines)
        )
        if self._chunk_bare:
            events.append(Note(BARE_LF_NOTE))
        self._line_scanned = 0
        self._chunk = None
        return True

    def _read_line(self, events: list[Event]) -> bool:
        """Read one command line if it is complete (False: it is not, yet)."""
        # Search only what is new: a line without end arriving in pieces would otherwise
        # be searched again with every piece. Its middle past MAX_LINE octets is dropped.
        end = self._out.find(b"\n", self._line_scanned)
        if end < 0:
            if len(self._out) > MAX_LINE:
                del self._out[MAX_LINE // 2 : len(self._out) - 1]
            self._line_scanned = len(self._out)
            return False
        self._line_scanned = 0
        bare = end == 0 or self._out[end - 1] != 0x0D  # a bare LF (see the module docstring)
        line = bytes(self._out[: end if bare else end - 1])
        del self._out[: end + 1]
        if self._resync:
            self._resync = False
            if not starts_with_verb(line):
                return True  # the rest of a line whose start the capture lost
        text = line.decode("utf-8", "replace")
        if self._in_auth or (self._sasl_may_follow and not starts_with_verb(line)):
            # RFC 4954: a SASL response; after a refused AUTH (538, 504 ...) or a failed
            # exchange, a line that is no command may be one too.
            events.append(AuthResponse(text, None))
        else:
            self._sasl_may_follow = False
            verb, argument = split_command(text)
            chunk = parse_bdat(argument) if verb == "BDAT" else None
            if chunk is not None:
                self._chunk = (argument, chunk[0])
                self._chunk_bare = bare
                self._chunk_block, self._chunk_left = Block(self.keep), chunk[0]
                return True
            events.append(Command(verb, argument))
            if redact_command(verb, argument)[0] == "AUTH":  # as its row will say
                # Until AUTH is answered with anything but 334, lines are SASL responses,
                # even pipelined ones (over-hiding a pipelined command is the safe side).
                self._in_auth = self._sasl_may_follow = True
        if bare:
            events.append(Note(BARE_LF_NOTE))
        return True

    def _end_data(self) -> MessageReceived:
        """The message is over (its final dot read, or lost): its start, size and lines."""
        assert self._message is not None
        block = self._message.finish()
        self._message = None
        self._line_scanned = 0
        self._data_lost = False
        return MessageReceived(bytes(block.head), block.size, block.lines, None)

    # -- the server's octets ----------------------------------------------------------------

    def server_data(self, data: bytes) -> list[Event]:
        """Take the server's next octets; read their replies with :meth:`next_reply`. What
        comes first: a message whose final dot the capture lost ends here."""
        if self.opaque:
            return []
        events: list[Event] = []
        if self._message is not None and self._data_lost and data:
            # The server speaks before the final dot was seen: the capture lost it.
            self._out.clear()
            events.append(self._end_data())
        self._replies.feed(data)
        return events

    def next_reply(self) -> Reply | Note | None:
        """The next complete reply, a :class:`Note` for a line that is none (it is dropped
        and reading goes on), or None until more comes. Tell :meth:`answered` what each
        reply answered before asking for the next."""
        if self.opaque:
            return None
        try:
            return self._replies.next_reply()
        except RemoteProtocolError as error:
            return Note(f"not an SMTP reply: {error}", sender="server")

    def answered(self, step: str, code: int) -> list[Event]:
        """The reply just read, ``code``, answered ``step``: what the client sends next is
        read accordingly (message content after 354 to DATA, TLS after 220 to STARTTLS)."""
        if step == "DATA" and code == 354 and self._message is None:
            self._message = DotStuffed(self.keep)
        elif step == Step.LOST and code in (354, 220):  # the lost octets held DATA, or
            self._guess = "DATA" if code == 354 else "STARTTLS"  # STARTTLS (or not)
        if step == "AUTH" and code != 334:
            self._in_auth = False
        if step == "STARTTLS" and code == 220 and self.opaque_after_starttls:
            return [self._start_tls("encrypted from here on (STARTTLS): not decoded")]
        return []

    def _start_tls(self, text: str) -> TlsStarted:
        self.opaque = True
        self._out.clear()
        self._line_scanned = 0
        return TlsStarted(text)

    # -- what a capture lost ----------------------------------------------------------------

    def server_lost(self, waiting: list[str]) -> None:
        """Server octets were lost; they held the replies to ``waiting`` (the steps still
        waiting for one, oldest first), which will not come."""
        self._replies = ReplyParser()  # a reply the gap cut is lost with it
        if waiting and waiting[-1] in ("DATA", "STARTTLS") and self._message is None:
            self._guess = waiting[-1]

    def client_lost(self, octets: int, text: str) -> list[Event]:
        """``octets`` of the client's were lost (``text`` says so): a hole in a chunk or a
        message, or a :class:`Lost` unit standing for what they held."""
        events: list[Event] = []
        if self._chunk is not None:
            inside = min(octets, self._chunk_left)
            self._chunk_left -= inside
            events += self.client_data(b"")  # the chunk may be complete now
            if inside == octets:
                return [*events, Note(text + ": part of a BDAT chunk")]
        if self._message is not None:
            self._data_lost = True
            return [*events, Note(text + ": part of the message")]
        self._out.clear()  # a line the gap cut is lost with it
        self._line_scanned = 0
        self._resync = True
        return [*events, Lost(text + ": a command or more, answered by the next reply")]

    def _guessed(self, events: list[Event]) -> bool:
        """After a lost reply to DATA or STARTTLS: whether the client went on with message
        content or TLS, told from its next octets (False: not enough of them yet)."""
        if self._guess == "STARTTLS":
            if self._out[0] == _TLS_HANDSHAKE and self.opaque_after_starttls:
                events.append(
                    self._start_tls("encrypted from here on (STARTTLS, its 220 not captured)")
                )
        else:
            end = self._out.find(b"\n")
            if end < 0 and len(self._out) < 512:
                return False
            if starts_with_verb(bytes(self._out[: end if end >= 0 else 512])):
                self._message = None
            elif self._message is None:
                self._message = DotStuffed(self.keep)
        self._guess = None
        return True

    # -- the end ----------------------------------------------------------------------------

    def interrupted(self) -> list[Event]:
        """The conversation ends here (it closed, or the capture ends): a message or BDAT
        chunk still arriving gets a note saying how much of it came."""
        if self._chunk is not None:
            argument, size = self._chunk
            block = self._chunk_block
            self._chunk = None
            return [
                Note(
                    f"BDAT {_clip(argument, 100)}: the chunk was cut short, {block.size} of its"
                    f" {size} octets came ({block.lines} lines)"
                )
            ]
        if self._message is not None:
            block = self._message.finish()
            self._message = None
            return [
                Note(
                    f"a message was cut short: {block.size} octets ({block.lines} lines) came,"
                    " never its final dot"
                )
            ]
        return []


def starts_with_verb(line: bytes) -> bool:
    """Whether ``line`` starts with a word an SMTP client says first (a command verb)."""
    return _first_word(line) in COMMAND_VERBS


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_word(line: bytes) -> str:
    words = line.split(None, 1)
    return words[0].upper().decode("ascii", "replace") if words else ""
