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
"""

from __future__ import annotations

from smtplab.log.recorder import VERB, Recorder
from smtplab.protocol.chunking import parse_bdat
from smtplab.protocol.errors import RemoteProtocolError
from smtplab.protocol.replies import ReplyParser

_DATA_END = b"\r\n.\r\n"
#: The note after a command line that ended in a bare LF.
BARE_LF_NOTE = "the line above ended in a bare LF, not CRLF (RFC 5321 2.3.8)"


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
        self._chunk: tuple[str, int] | None = None  # a BDAT line read: (argument, size)
        self._chunk_bare = False  # that line ended in a bare LF
        self._data_scanned = 0  # message octets already searched for the final dot

    def connected(self, time: float | None) -> None:
        self.recorder.connect(time)

    def sent(self, data: bytes, time: float | None) -> None:
        if self.opaque:
            return
        self._out += data
        while self._out or self._chunk is not None:
            if self._chunk is not None:  # a BDAT's octets follow its line (RFC 3030 2)
                argument, size = self._chunk
                if len(self._out) < size:
                    return
                self.recorder.chunk(time, argument, size, bytes(self._out[:size]))
                self._bare_lf(time, self._chunk_bare)
                del self._out[:size]
                self._chunk = None
                continue
            if self._in_data:
                # Search only what is new (and the 4 octets before it): a big message arrives
                # in many pieces, and rescanning all of it each time would be quadratic.
                start = max(self._data_scanned - 4, 0)
                end = (b"\r\n" + self._out).find(_DATA_END, start)
                if end < 0:
                    self._data_scanned = len(self._out) + 2
                    return
                self._data_scanned = 0
                content = bytes(self._out[:end])  # without the final dot line
                del self._out[: end + 3]
                self._in_data = False
                unstuffed = content.replace(b"\r\n.", b"\r\n")
                if unstuffed.startswith(b"."):
                    unstuffed = unstuffed[1:]
                self.recorder.data(time, unstuffed)
                continue
            end = self._out.find(b"\n")
            if end < 0:
                return
            bare = end == 0 or self._out[end - 1] != 0x0D  # a bare LF (see the docstring)
            line = bytes(self._out[: end if bare else end - 1])
            del self._out[: end + 1]
            if self._in_auth:  # RFC 4954: a SASL response, never recorded in clear
                self.recorder.command(time, "AUTH", "***")
                self._bare_lf(time, bare)
                continue
            text = line.decode("utf-8", "replace")
            verb, _, argument = text.partition(" ")
            chunk = parse_bdat(argument) if verb.upper() == "BDAT" else None
            if chunk is not None:
                self._chunk = (argument, chunk[0])
                self._chunk_bare = bare
                continue
            seq = self.recorder.command(time, verb.upper(), argument)  # AUTH is redacted
            self._bare_lf(time, bare)
            if self.recorder.tuples[seq][VERB] == "AUTH":
                # Until AUTH is answered with anything but 334, lines are SASL responses,
                # even pipelined ones (over-redacting a pipelined command is the safe side).
                self._in_auth = True

    def _bare_lf(self, time: float | None, bare: bool) -> None:
        if bare:
            self.recorder.note(time, BARE_LF_NOTE, sender="client")

    def received(self, data: bytes, time: float | None) -> None:
        if self.opaque:
            return
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
            if verb == "AUTH" and reply.code != 334:
                self._in_auth = False
            if verb == "STARTTLS" and reply.code == 220 and self.opaque_after_starttls:
                self.recorder.tls_started(time, "encrypted from here on (STARTTLS): not decoded")
                self.opaque = True
                self._out.clear()
                return

    def closed(self, time: float | None, by: str, text: str = "") -> None:
        self.recorder.close(time, by, text)
