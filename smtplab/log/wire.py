"""Recording a conversation from its bytes: what a client sent, what the server answered.

The server records from its own events (:mod:`smtplab.server.session`). A client talking to
a real server over TCP has only the bytes, so :class:`WireRecorder` reads them as RFC 5321
frames them - command lines, message data up to ``<CRLF>.<CRLF>`` after a 354, replies - and
turns them into the same transcript rows, each reply paired with the unit it answers.

A command line ends at CRLF, and also at a bare LF: RFC 5321 2.3.8 says lines end with CRLF,
but real servers (Postfix, aiosmtpd, smtplab's own) end a command at the LF and answer it,
so the recording shows the command, a note saying how it ended, and the reply it got. Message
data is different: only ``<CRLF>.<CRLF>`` ends it (4.1.1.4), whatever bare LFs it holds, as
taking ``<LF>.<LF>`` for the end is what SMTP smuggling exploits.

Memory stays bounded whatever the client sends: message data and BDAT chunks are counted as
they arrive (:mod:`smtplab.log.blocks`) and only the start a row's preview shows is kept, and
of a command line without end at most :data:`MAX_LINE` octets are kept. Each octet is searched
a bounded number of times, so the work is linear in the octets however they are split.

Octets a capture lost
---------------------
A capture can miss a segment its receiver got (:meth:`WireRecorder.lost`). What it held is
gone, but the pairing must not slip for the rest of the session:

* lost **server** octets held the replies to every unit still waiting for one: the capture
  reader hands over the loss only after every unit the client sent before it received those
  octets, and before any it sent after (ACK numbers order the two directions). Those units
  stay unanswered and later replies pair with later units. When the lost replies answered
  DATA or STARTTLS, the client's next octets tell whether it went on with message content
  (not a command) or with TLS (a handshake record).
* lost **client** octets inside a message or a BDAT chunk are a hole in it; elsewhere they
  held a command or more: a ``LOST`` note stands for them and takes the replies that come
  before the client is seen to send anything after them (a 354 or a 220 among them: the next
  client octets tell whether they held DATA or STARTTLS). A first line after the gap that
  starts with no SMTP verb is the rest of a lost line.

A loss in the middle of a pipelined group can still pair a reply with the wrong unit (how
many replies or commands the lost octets held is not known); the note says what was lost.
"""

from __future__ import annotations

from smtplab.log.blocks import STEP, Block, DotStuffed
from smtplab.log.limits import clip
from smtplab.log.recorder import VERB, Recorder
from smtplab.log.schema import LOST
from smtplab.protocol.chunking import parse_bdat
from smtplab.protocol.errors import RemoteProtocolError
from smtplab.protocol.replies import ReplyParser

#: The note after a command line that ended in a bare LF.
BARE_LF_NOTE = "the line above ended in a bare LF, not CRLF (RFC 5321 2.3.8)"
#: What a client may say first in an SMTP session (RFC 5321 and its extensions).
SMTP_VERBS = frozenset(
    ["EHLO", "HELO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY",
     "EXPN", "HELP", "STARTTLS", "AUTH", "ETRN", "XCLIENT", "XFORWARD"]
)  # fmt: skip
#: A command line is at most 512 octets (RFC 5321 4.5.3.1.4); of a longer one, the recording
#: keeps the first and last octets up to this many (its middle is dropped as it arrives).
MAX_LINE = 2048
_TLS_HANDSHAKE = 0x16  # the first octet of a TLS handshake record (RFC 8446 5.1)


class WireRecorder:
    """Feeds :meth:`sent` and :meth:`received` bytes into a :class:`Recorder`."""

    def __init__(self, recorder: Recorder, opaque_after_starttls: bool = False) -> None:
        self.recorder = recorder
        # A capture cannot read what follows a 220 to STARTTLS: it is encrypted (RFC 3207).
        # A live client can (it holds the keys) and records the TLS start itself.
        self.opaque_after_starttls = opaque_after_starttls
        self.opaque = False
        self._out = bytearray()  # client bytes not yet read: between calls, at most a line
        self._replies = ReplyParser()
        self._message: DotStuffed | None = None  # after a 354: the message, as it arrives
        self._in_auth = False  # AUTH sent and not yet finished: client lines are credentials
        # After an AUTH, until a line starts with an SMTP verb: lines may be credentials.
        self._sasl_may_follow = False
        self._chunk: tuple[str, int] | None = None  # a BDAT line read: (argument, size)
        self._chunk_bare = False  # that line ended in a bare LF
        self._chunk_block = Block()  # the chunk's octets so far, counted
        self._chunk_left = 0  # its octets still to come (less those a capture lost)
        self._line_scanned = 0  # octets of an unfinished command line searched for its LF
        # After a capture's loss (see the module docstring): part of the message lost, the
        # lost reply's verb (DATA, STARTTLS) that the client's next octets tell the outcome
        # of, and whether the next line may be the rest of a lost one.
        self._data_lost = False
        self._guess: str | None = None
        self._resync = False

    def connected(self, time: float | None) -> None:
        self.recorder.connect(time)

    def sent(self, data: bytes, time: float | None) -> None:
        if self.opaque:
            return
        self._out += data
        while self._out or self._chunk is not None:
            if self._chunk is not None:  # a BDAT's octets follow its line (RFC 3030 2)
                take = min(len(self._out), self._chunk_left)
                # Counted in steps of STEP octets and dropped: only the chunk's start is kept.
                for start in range(0, take, STEP):
                    self._chunk_block.add(self._out[start : min(start + STEP, take)])
                del self._out[:take]
                self._chunk_left -= take
                if self._chunk_left:
                    return
                argument, size = self._chunk
                block = self._chunk_block
                self.recorder.chunk(time, argument, size, bytes(block.head), block.lines)
                if self._chunk_bare:
                    self.recorder.note(time, BARE_LF_NOTE, sender="client")
                self._line_scanned = 0
                self._chunk = None
                continue
            if self._guess is not None and not self._guessed(time):
                return
            if self.opaque:
                return
            if self._message is not None:
                # Counted as it arrives, up to its final dot: what follows is the next unit.
                taken = self._message.feed(self._out)
                if taken < 0:
                    self._out.clear()
                    return
                del self._out[:taken]
                self._end_data(time)
                continue
            # Search only what is new: a line without end arriving in pieces would otherwise
            # be searched again with every piece. Its middle past MAX_LINE octets is dropped.
            end = self._out.find(b"\n", self._line_scanned)
            if end < 0:
                if len(self._out) > MAX_LINE:
                    del self._out[MAX_LINE // 2 : len(self._out) - 1]
                self._line_scanned = len(self._out)
                return
            self._line_scanned = 0
            bare = end == 0 or self._out[end - 1] != 0x0D  # a bare LF (see the docstring)
            line = bytes(self._out[: end if bare else end - 1])
            del self._out[: end + 1]
            if self._resync:
                self._resync = False
                if not _starts_with_verb(line):
                    continue  # the rest of a line whose start the capture lost
            if self._in_auth:  # RFC 4954: a SASL response, never recorded in clear
                self.recorder.command(time, "AUTH", "***")
                if bare:
                    self.recorder.note(time, BARE_LF_NOTE, sender="client")
                continue
            if self._sasl_may_follow and not _starts_with_verb(line):
                # After AUTH, a line that is no command may be a SASL response sent after a
                # refusal (538, 504 ...) or a failed exchange: never recorded in clear either.
                self.recorder.command(time, "AUTH", "***")
                if bare:
                    self.recorder.note(time, BARE_LF_NOTE, sender="client")
                continue
            self._sasl_may_follow = False
            text = line.decode("utf-8", "replace")
            verb, _, argument = text.partition(" ")
            chunk = parse_bdat(argument) if verb.upper() == "BDAT" else None
            if chunk is not None:
                self._chunk = (argument, chunk[0])
                self._chunk_bare = bare
                self._chunk_block, self._chunk_left = Block(), chunk[0]
                continue
            seq = self.recorder.command(time, verb.upper(), argument)  # AUTH is redacted
            if bare:
                self.recorder.note(time, BARE_LF_NOTE, sender="client")
            if self.recorder.tuples[seq][VERB] == "AUTH":
                # Until AUTH is answered with anything but 334, lines are SASL responses,
                # even pipelined ones (over-redacting a pipelined command is the safe side).
                self._in_auth = self._sasl_may_follow = True

    def _end_data(self, time: float | None) -> None:
        """The message is over (its final dot read, or lost): record it."""
        assert self._message is not None
        block = self._message.finish()
        self._message = None
        self._line_scanned = 0
        self._data_lost = False
        self.recorder.data(time, bytes(block.head), block.size, block.lines)

    def received(self, data: bytes, time: float | None) -> None:
        if self.opaque:
            return
        if self._message is not None and self._data_lost and data:
            # The server speaks before the final dot was seen: the capture lost it.
            self._out.clear()
            self._end_data(time)
        self._replies.feed(data)
        while True:
            try:
                reply = self._replies.next_reply()
            except RemoteProtocolError as error:  # that line is dropped: read on
                self.recorder.note(time, f"not an SMTP reply: {error}")
                continue
            if reply is None:
                return
            seq = self.recorder.reply(time, reply)
            verb = self.recorder.tuples[seq][VERB]  # the unit it answers, paired in order
            if verb == "DATA" and reply.code == 354 and self._message is None:
                self._message = DotStuffed()
            elif verb == LOST and reply.code in (354, 220):  # the lost octets held DATA, or
                self._guess = "DATA" if reply.code == 354 else "STARTTLS"  # STARTTLS (or not)
            if verb == "AUTH" and reply.code != 334:
                self._in_auth = False
            if verb == "STARTTLS" and reply.code == 220 and self.opaque_after_starttls:
                self._start_tls(time, "encrypted from here on (STARTTLS): not decoded")
                return

    def _start_tls(self, time: float | None, text: str) -> None:
        self.recorder.tls_started(time, text)
        self.opaque = True
        self._out.clear()
        self._line_scanned = 0

    def lost(self, by_client: bool, octets: int, time: float | None, where: str) -> None:
        """``octets`` of one side that a capture missed though the other side received them
        (``where``: which packet showed it); see the module docstring."""
        if self.opaque:
            return
        side = "client" if by_client else "server"
        text = f"{octets} octets missing from the capture were skipped ({side}, {where})"
        if not by_client:
            self._replies = ReplyParser()  # a reply the gap cut is lost with it
            verbs = [str(self.recorder.tuples[seq][VERB]) for seq in self.recorder.unanswered()]
            if verbs:
                text += ": the replies to " + ", ".join(verbs)
            self.recorder.note(time, text)
            if verbs and verbs[-1] in ("DATA", "STARTTLS") and self._message is None:
                self._guess = verbs[-1]
            return
        if self._chunk is not None:
            inside = min(octets, self._chunk_left)
            self._chunk_left -= inside
            self.sent(b"", time)  # the chunk may be complete now
            if inside == octets:
                self.recorder.note(time, text + ": part of a BDAT chunk", sender="client")
                return
        if self._message is not None:
            self._data_lost = True
            self.recorder.note(time, text + ": part of the message", sender="client")
            return
        self._out.clear()  # a line the gap cut is lost with it
        self._line_scanned = 0
        self._resync = True
        self.recorder.lost(time, text + ": a command or more, answered by the next reply")

    def _guessed(self, time: float | None) -> bool:
        """After a lost reply to DATA or STARTTLS: whether the client went on with message
        content or TLS, told from its next octets (False: not enough of them yet)."""
        if self._guess == "STARTTLS":
            if self._out[0] == _TLS_HANDSHAKE and self.opaque_after_starttls:
                self._start_tls(time, "encrypted from here on (STARTTLS, its 220 not captured)")
        else:
            end = self._out.find(b"\n")
            if end < 0 and len(self._out) < 512:
                return False
            if _starts_with_verb(bytes(self._out[: end if end >= 0 else 512])):
                self._message = None
            elif self._message is None:
                self._message = DotStuffed()
        self._guess = None
        return True

    def closed(self, time: float | None, by: str, text: str = "") -> None:
        self.interrupted(time)
        self.recorder.close(time, by, text)

    def interrupted(self, time: float | None) -> None:
        """The conversation ends here (it closed, or the capture ends): a message or BDAT
        chunk still arriving gets a note saying how much of it came, since it gets no row."""
        if self._chunk is not None:
            argument, size = self._chunk
            block = self._chunk_block
            self.recorder.note(
                time,
                f"BDAT {clip(argument, 100)}: the chunk was cut short, {block.size} of its"
                f" {size} octets came ({block.lines} lines)",
                sender="client",
            )
            self._chunk = None
        elif self._message is not None:
            block = self._message.finish()
            self.recorder.note(
                time,
                f"a message was cut short: {block.size} octets ({block.lines} lines) came,"
                " never its final dot",
                sender="client",
            )
            self._message = None


def _starts_with_verb(line: bytes) -> bool:
    words = line.split(None, 1)
    return bool(words) and words[0].upper().decode("ascii", "replace") in SMTP_VERBS
