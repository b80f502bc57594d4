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

from smtplab.log.recorder import VERB, Recorder
from smtplab.log.schema import LOST
from smtplab.protocol.chunking import parse_bdat
from smtplab.protocol.errors import RemoteProtocolError
from smtplab.protocol.replies import ReplyParser

_DATA_END = b"\r\n.\r\n"
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
        self._out = bytearray()  # client bytes not yet a complete unit
        self._replies = ReplyParser()
        self._in_data = False  # the server said 354: client bytes are message content
        self._in_auth = False  # AUTH sent and not yet finished: client lines are credentials
        # After an AUTH, until a line starts with an SMTP verb: lines may be credentials.
        self._sasl_may_follow = False
        self._chunk: tuple[str, int] | None = None  # a BDAT line read: (argument, size)
        self._chunk_bare = False  # that line ended in a bare LF
        self._data_scanned = 0  # message octets already searched for the final dot
        self._line_scanned = 0  # octets of an unfinished command line searched for its LF
        # After a capture's loss (see the module docstring): octets of the chunk lost, part
        # of the message lost, the lost reply's verb (DATA, STARTTLS) that the client's next
        # octets tell the outcome of, and whether the next line may be the rest of a lost one.
        self._chunk_lost = 0
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
                argument, size = self._chunk
                have = size - self._chunk_lost  # what the capture can have of it
                if len(self._out) < have:
                    return
                self.recorder.chunk(time, argument, size, bytes(self._out[:have]))
                if self._chunk_bare:
                    self.recorder.note(time, BARE_LF_NOTE, sender="client")
                del self._out[:have]
                self._line_scanned = 0
                self._chunk, self._chunk_lost = None, 0
                continue
            if self._guess is not None and not self._guessed(time):
                return
            if self.opaque:
                return
            if self._in_data:
                # Search only what is new (and the 4 octets before it): a big message arrives
                # in many pieces, and rescanning all of it each time would be quadratic.
                start = max(self._data_scanned - 4, 0)
                end = (b"\r\n" + self._out).find(_DATA_END, start)
                if end < 0:
                    self._data_scanned = len(self._out) + 2
                    return
                content = bytes(self._out[:end])  # without the final dot line
                del self._out[: end + 3]
                self._end_data(content, time)
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
                continue
            seq = self.recorder.command(time, verb.upper(), argument)  # AUTH is redacted
            if bare:
                self.recorder.note(time, BARE_LF_NOTE, sender="client")
            if self.recorder.tuples[seq][VERB] == "AUTH":
                # Until AUTH is answered with anything but 334, lines are SASL responses,
                # even pipelined ones (over-redacting a pipelined command is the safe side).
                self._in_auth = self._sasl_may_follow = True

    def _end_data(self, content: bytes, time: float | None) -> None:
        """The message is over: record ``content`` (dot-stuffed, without the final dot)."""
        self._data_scanned = self._line_scanned = 0
        self._in_data = self._data_lost = False
        unstuffed = content.replace(b"\r\n.", b"\r\n")
        if unstuffed.startswith(b"."):
            unstuffed = unstuffed[1:]
        self.recorder.data(time, unstuffed)

    def received(self, data: bytes, time: float | None) -> None:
        if self.opaque:
            return
        if self._in_data and self._data_lost and data:
            # The server speaks before the final dot was seen: the capture lost it.
            content, self._out = bytes(self._out), bytearray()
            self._end_data(content, time)
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
            if verb == "DATA" and reply.code == 354:
                self._in_data = True
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
            if verbs and verbs[-1] in ("DATA", "STARTTLS") and not self._in_data:
                self._guess = verbs[-1]
            return
        if self._chunk is not None:
            _, size = self._chunk
            inside = min(octets, size - self._chunk_lost - len(self._out))
            self._chunk_lost += inside
            self.sent(b"", time)  # the chunk may be complete now
            if inside == octets:
                self.recorder.note(time, text + ": part of a BDAT chunk", sender="client")
                return
        if self._in_data:
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
            self._in_data = not _starts_with_verb(bytes(self._out[: end if end >= 0 else 512]))
        self._guess = None
        return True

    def closed(self, time: float | None, by: str, text: str = "") -> None:
        self.recorder.close(time, by, text)


def _starts_with_verb(line: bytes) -> bool:
    words = line.split(None, 1)
    return bool(words) and words[0].upper().decode("ascii", "replace") in SMTP_VERBS
