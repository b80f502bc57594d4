"""The client side of an SMTP connection, sans-IO.

Theory of operation
-------------------
Each command method (:meth:`ClientConnection.ehlo`, :meth:`~ClientConnection.mail`, ...) checks
that the command is in sequence, formats it, and queues its bytes for
:meth:`~ClientConnection.data_to_send`; it also remembers that a reply to it is expected.
:meth:`~ClientConnection.receive_data` takes the server's bytes and
:meth:`~ClientConnection.next_event` returns one :class:`ReplyReceived` per complete reply,
paired with the oldest command still waiting (replies come in command order, RFC 2920 3.1).

The client follows the same state table as the server. It validates a new command against the
state it would reach if every command still waiting for a reply succeeded, so commands can be
pipelined; misuse (MAIL before EHLO, DATA when no recipient was accepted) raises
:class:`LocalProtocolError` and nothing is sent. :meth:`~ClientConnection.send_raw` sends any
bytes unchecked, for experiments.
"""

from __future__ import annotations

import base64
from collections import deque

from smtplab.protocol.chunking import bdat_line, parse_bdat
from smtplab.protocol.errors import LocalProtocolError, RemoteProtocolError
from smtplab.protocol.events import NEED_DATA, ConnectionClosed, Event, Reply, ReplyReceived
from smtplab.protocol.framing import dot_stuff
from smtplab.protocol.replies import ReplyParser
from smtplab.protocol.states import (
    GROUP_ENDERS,
    POSITIVE_CODES,
    State,
    Step,
    accepted_state,
    allowed,
    next_state,
    sequence_hint,
)


class ClientConnection:
    """One SMTP connection seen from the client. See the module docstring."""

    def __init__(self) -> None:
        self.state = State.GREETING
        self.extensions: dict[str, str] = {}  # EHLO keyword -> its parameters (RFC 5321 4.1.1.1)
        self._parser = ReplyParser()
        self._waiting: deque[str] = deque([Step.CONNECT])
        self._out = bytearray()
        self._eof = False
        self._closed_seen = False
        self._raw = False  # send_raw was used: the server may answer things we did not track

    # -- commands ---------------------------------------------------------------------------

    def ehlo(self, domain: str) -> None:
        self.send_command("EHLO", domain)

    def helo(self, domain: str) -> None:
        self.send_command("HELO", domain)

    def mail(self, address: str, params: dict[str, str | None] | None = None) -> None:
        self.send_command("MAIL", f"FROM:<{address}>{_params(params)}")

    def rcpt(self, address: str, params: dict[str, str | None] | None = None) -> None:
        self.send_command("RCPT", f"TO:<{address}>{_params(params)}")

    def data(self) -> None:
        self.send_command("DATA")

    def rset(self) -> None:
        self.send_command("RSET")

    def noop(self) -> None:
        self.send_command("NOOP")

    def vrfy(self, string: str) -> None:
        self.send_command("VRFY", string)

    def expn(self, string: str) -> None:
        self.send_command("EXPN", string)

    def help(self, topic: str = "") -> None:
        self.send_command("HELP", topic)

    def quit(self) -> None:
        self.send_command("QUIT")

    def auth_plain(self, username: str, password: str) -> None:
        """AUTH PLAIN with the credentials as its initial response (RFC 4954, RFC 4616)."""
        blob = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
        self.send_command("AUTH", f"PLAIN {blob}")

    def starttls(self) -> None:
        """STARTTLS (RFC 3207); after its 220 the transport must switch to TLS."""
        self.send_command("STARTTLS")

    def bdat(self, chunk: bytes, last: bool = False) -> None:
        """``BDAT <size> [LAST]`` and the chunk right after it (RFC 3030 2): no dot-stuffing,
        the octets go as they are. Chunks may be pipelined; the LAST one ends the message."""
        if "CHUNKING" not in self.extensions:
            raise LocalProtocolError("cannot send BDAT: the server did not advertise CHUNKING")
        self._check_sequence("BDAT")
        self._out += bdat_line(len(chunk), last) + chunk
        self._waiting.append(Step.BDAT_LAST if last else "BDAT")

    def send_command(self, verb: str, argument: str = "") -> None:
        """Queue one command line after checking it is in sequence."""
        verb = verb.upper()
        if "\r" in argument or "\n" in argument:
            raise LocalProtocolError("a command argument cannot contain CR or LF")
        if verb == "BDAT":
            raise LocalProtocolError("BDAT carries a chunk: use bdat(chunk, last)")
        self._check_sequence(verb)
        line = f"{verb} {argument}" if argument else verb
        self._out += line.encode("utf-8") + b"\r\n"
        self._waiting.append(verb)

    def _check_sequence(self, verb: str) -> None:
        """Refuse a command that is out of sequence or may not be pipelined now."""
        planned = self.planned_state
        if self.state is State.GREETING:
            planned = State.GREETING  # never talk before the greeting (RFC 5321 3.1)
        if verb in POSITIVE_CODES and not allowed(planned, verb):  # a verb the table knows
            hint = sequence_hint(planned, verb)
            raise LocalProtocolError(f"cannot send {verb} now ({planned.value}): {hint}")
        if self._waiting:
            self._check_pipelining(verb)

    def _check_pipelining(self, verb: str) -> None:
        """Send before the last reply came only as RFC 2920 3.1 allows."""
        last = self._waiting[-1]
        if last in GROUP_ENDERS:
            raise LocalProtocolError(
                f"cannot send {verb} before the reply to {last}: {last} must be the last "
                "command of a pipelined group (RFC 2920 3.1)"
            )
        if "PIPELINING" not in self.extensions:
            raise LocalProtocolError(
                f"cannot send {verb} before the reply to {last}: the server did not advertise "
                "PIPELINING (RFC 2920)"
            )

    def send_message(self, content: bytes) -> None:
        """Send the message after a 354: dot-stuffed, CRLF line ends, then ``<CRLF>.<CRLF>``."""
        if self.state is not State.DATA or self._waiting:
            raise LocalProtocolError(
                "send the message only after the server answered DATA with 354 (RFC 5321 4.1.1.4)"
            )
        self._out += dot_stuff(content)
        self._waiting.append(Step.DATA_END)

    def send_raw(self, data: bytes, expect: tuple[str, ...] | None = None) -> None:
        """Send ``data`` exactly as given, unchecked, for experiments.

        ``expect`` names the replies it will get (e.g. ``("RCPT",)``); by default they are
        worked out the way RFC 5321 frames input: one per CRLF-terminated command line, one
        for a ``<CRLF>.<CRLF>`` that ends message data. A server that frames differently (bare
        LF as a line end) may send more; those replies come with verb ``UNSOLICITED``.
        """
        self._raw = True
        self._out += data
        if expect is None:
            expect = expected_steps(data, self.planned_state is State.DATA)
        self._waiting.extend(step.upper() for step in expect)

    @property
    def planned_state(self) -> State:
        """The state once every command still waiting for a reply has been accepted."""
        state = self.state
        for step in self._waiting:
            state = accepted_state(state, step)
        return state

    @property
    def waiting(self) -> tuple[str, ...]:
        """The steps sent whose replies have not arrived yet, oldest first."""
        return tuple(self._waiting)

    @property
    def expects_reply(self) -> bool:
        """Some command sent (or the greeting) still waits for its reply."""
        return bool(self._waiting)

    def savepoint(self) -> tuple[int, int]:
        """Where the outgoing queue stands, for :meth:`rollback`."""
        return len(self._out), len(self._waiting)

    def rollback(self, savepoint: tuple[int, int]) -> None:
        """Forget the commands queued since ``savepoint`` (not yet taken by data_to_send)."""
        out, waiting = savepoint
        if out > len(self._out) or waiting > len(self._waiting):
            raise LocalProtocolError("those commands were sent already: nothing to roll back")
        del self._out[out:]
        while len(self._waiting) > waiting:
            self._waiting.pop()

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    # -- replies ----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the server; ``b""`` means the server closed the connection."""
        if data:
            self._parser.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Event:
        """The next :class:`ReplyReceived`, :class:`ConnectionClosed` or :data:`NEED_DATA`.

        Raises :class:`RemoteProtocolError` when the server sends what is no reply, or a
        reply that answers nothing; the connection is then unusable (state ``CLOSED``): what
        the server says next cannot be paired with the commands sent.
        """
        try:
            reply = self._parser.next_reply()
        except RemoteProtocolError:
            self._give_up()
            raise
        if reply is None:
            if self._eof and not self._closed_seen:
                self._closed_seen = True
                during_data = self.state is State.DATA
                self.state = State.CLOSED
                return ConnectionClosed(during_data=during_data)
            return NEED_DATA
        return self._answered(reply)

    def _answered(self, reply: Reply) -> ReplyReceived:
        """Pair ``reply`` with the oldest waiting command and move the state on."""
        if self._waiting:
            step = self._waiting.popleft()
        elif reply.code == 421 or self._raw:
            step = Step.UNSOLICITED  # a server may say 421 and close at any time (RFC 5321 3.8)
        else:
            self._give_up()
            raise RemoteProtocolError(f"reply '{brief(reply)}' arrived when no command was waiting")
        code = reply.code
        if code < 400:
            codes = POSITIVE_CODES.get(step)
            if codes is not None and code not in codes:
                # e.g. 250 to DATA: going on would send the message as commands (4.3.2).
                self._give_up()
                raise RemoteProtocolError(
                    f"'{brief(reply)}' cannot answer {step}; RFC 5321 4.3.2 allows "
                    + ", ".join(map(str, sorted(codes)))
                    + " or an error reply"
                )
        self.state = next_state(self.state, step, code)
        if step == "EHLO" and code == 250:
            self.extensions = ehlo_extensions(reply.text)
        elif step in ("EHLO", "HELO") or (step == "STARTTLS" and code == 220):
            # A refused EHLO or any HELO: no extensions known; after STARTTLS everything is
            # forgotten and the client says EHLO again (RFC 3207 4.2).
            self.extensions = {}
        return ReplyReceived("BDAT" if step == Step.BDAT_LAST else step, reply)

    def _give_up(self) -> None:
        """The server broke the protocol: nothing more can be sent or paired."""
        self._waiting.clear()
        self.state = State.CLOSED


def brief(reply: Reply, width: int = 80) -> str:
    """A reply in one short line for an error message: its first line, cut at ``width``."""
    first = str(reply).split("\n", 1)[0]
    more = len(reply.lines) - 1
    text = first if len(first) <= width else first[: width - 3] + "..."
    return text + (f" (and {more} more lines)" if more else "")


def _params(params: dict[str, str | None] | None) -> str:
    if not params:
        return ""
    return "".join(f" {k}" if v is None else f" {k}={v}" for k, v in params.items())


def ehlo_extensions(text: str) -> dict[str, str]:
    """The keywords of an EHLO reply's ``text`` (the lines after the greeting line), each
    upper-cased, with its parameters (RFC 5321 4.1.1.1: keywords are case-insensitive)."""
    keywords = {}
    for line in text.split("\n")[1:]:
        keyword, _, params = line.strip().partition(" ")
        if keyword:
            keywords[keyword.upper()] = params
    return keywords


def expected_steps(data: bytes, in_data: bool) -> tuple[str, ...]:
    """The replies a strictly RFC 5321 server owes for ``data`` (see ``send_raw``)."""
    steps: list[str] = []
    while data:
        if in_data:
            end = (b"\r\n" + data).find(b"\r\n.\r\n")
            if end < 0:
                break
            steps.append(Step.DATA_END)
            data, in_data = data[end + 3 :], False
            continue
        line, found, rest = data.partition(b"\r\n")
        if not found:
            break
        verb, _, argument = line.decode("utf-8", "replace").partition(" ")
        verb = verb.upper()
        steps.append(verb)
        data, in_data = rest, verb == "DATA"
        chunk = parse_bdat(argument) if verb == "BDAT" else None
        if chunk is not None:  # its octets follow the line: they are no commands (RFC 3030 2)
            data = data[chunk[0] :]
    return tuple(steps)
