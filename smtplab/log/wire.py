"""Recording a conversation from its bytes: what a client sent, what the server answered.

The server records from its own events (:mod:`smtplab.server.session`). A client talking to
a real server over TCP, or a capture of one, has only the bytes: :class:`WireRecorder` hands
them to an :class:`~smtplab.protocol.observer.Observer`, which frames them as RFC 5321 does,
and records each event it reports with :meth:`Recorder.record
<smtplab.log.recorder.Recorder.record>`, the way the server's rows are made. The recorder
pairs each reply with the unit it answers and the observer is told what that was, since it
decides how the client's next octets are read (message content after a 354 to DATA).

A capture can miss octets (:meth:`WireRecorder.lost`): lost server octets held the replies to
every unit still waiting for one, and the capture reader hands over the loss only after every
unit the client sent before it received those octets, and before any it sent after (ACK
numbers order the two directions); those units stay unanswered and later replies pair with
later units. A loss in the middle of a pipelined group can still pair a reply with the wrong
unit (how many replies or commands the lost octets held is not known); the note says what
was lost. The observer's docstring says how lost client octets are read.
"""

from __future__ import annotations

from smtplab.log.limits import PREVIEW_OCTETS
from smtplab.log.recorder import VERB, Recorder
from smtplab.protocol.events import Reply
from smtplab.protocol.observer import BARE_LF_NOTE, MAX_LINE, Observer

__all__ = ["BARE_LF_NOTE", "MAX_LINE", "WireRecorder"]

#: Octets of a message's or chunk's start that are kept: all a row's preview looks at, and one
#: more, which tells it that the block goes on.
KEEP = PREVIEW_OCTETS + 1


class WireRecorder:
    """Feeds :meth:`sent` and :meth:`received` bytes, through an observer, into a
    :class:`Recorder`."""

    def __init__(self, recorder: Recorder, opaque_after_starttls: bool = False) -> None:
        self.recorder = recorder
        self.observer = Observer(KEEP, opaque_after_starttls)

    @property
    def opaque(self) -> bool:
        """TLS has started and nothing more can be read (a capture's view)."""
        return self.observer.opaque

    def connected(self, time: float | None) -> None:
        self.recorder.connect(time)

    def sent(self, data: bytes, time: float | None) -> None:
        for event in self.observer.client_data(data):
            self.recorder.record(event, time)

    def received(self, data: bytes, time: float | None) -> None:
        observer, recorder = self.observer, self.recorder
        for event in observer.server_data(data):
            recorder.record(event, time)
        while (reply := observer.next_reply()) is not None:
            seq = recorder.record(reply, time)
            if isinstance(reply, Reply):  # else a note: that line was no reply
                verb = recorder.tuples[seq][VERB]  # the unit it answers, paired in order
                for event in observer.answered(verb, reply.code):
                    recorder.record(event, time)

    def lost(self, by_client: bool, octets: int, time: float | None, where: str) -> None:
        """``octets`` of one side that a capture missed though the other side received them
        (``where``: which packet showed it); see the module docstring."""
        if self.opaque:
            return
        side = "client" if by_client else "server"
        text = f"{octets} octets missing from the capture were skipped ({side}, {where})"
        if by_client:
            for event in self.observer.client_lost(octets, text):
                self.recorder.record(event, time)
            return
        verbs = [str(self.recorder.tuples[seq][VERB]) for seq in self.recorder.unanswered()]
        if verbs:
            text += ": the replies to " + ", ".join(verbs)
        self.recorder.note(time, text)
        self.observer.server_lost(verbs)

    def closed(self, time: float | None, by: str, text: str = "") -> None:
        self.interrupted(time)
        self.recorder.close(time, by, text)

    def interrupted(self, time: float | None) -> None:
        """The conversation ends here (it closed, or the capture ends): a message or BDAT
        chunk still arriving gets a note saying how much of it came, since it gets no row."""
        for event in self.observer.interrupted():
            self.recorder.record(event, time)
