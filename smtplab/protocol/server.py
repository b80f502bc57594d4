"""The server side of an SMTP connection, sans-IO.

Theory of operation
-------------------
Feed received bytes to :meth:`ServerConnection.receive_data`; call
:meth:`ServerConnection.next_event` until it returns :data:`NEED_DATA` (or :data:`PAUSED`);
answer each command event with exactly one :meth:`ServerConnection.send`; write
:meth:`ServerConnection.data_to_send` to the peer. The first thing a server sends is its
greeting (220, or 554 to refuse service), before any event is returned.

Bytes are parsed lazily, one command at a time, and only after the previous command has been
answered: replies go out in command order (RFC 2920 3.1), and bytes that follow ``DATA`` are
read as message content only once 354 has been sent, because only then is the client allowed
to send them (RFC 5321 4.1.1.4; RFC 2920 3.1). A ``BDAT`` command is returned as one
:class:`~smtplab.protocol.events.Bdat` event once its chunk has arrived (RFC 3030 2; the framing
is in :mod:`smtplab.protocol.chunking`).

The connection decides what is *protocol*: framing, syntax, sequence (through the table in
:mod:`smtplab.protocol.states`), limits. It puts the reply RFC 5321 requires in the event's
``error`` field and refuses (:class:`LocalProtocolError`) to accept such a command. Everything
else - which mailboxes exist, what text to say - is the caller's (the policy's) decision.

Every command line is parsed when it arrives, and every event is new: nothing a policy does
to one session's event can reach another session.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from smtplab.protocol.chunking import ChunkedMessage, ChunkReader, check_content
from smtplab.protocol.commands import (
    decode_line,
    hide_credentials,
    parse_command,
    split_command,
)
from smtplab.protocol.config import ServerConfig
from smtplab.protocol.errors import LocalProtocolError
from smtplab.protocol.events import (
    NEED_DATA,
    PAUSED,
    Auth,
    AuthResponse,
    Bdat,
    Command,
    ConnectionClosed,
    Event,
    Hello,
    MailFrom,
    MessageReceived,
    RcptTo,
    Reply,
    StartTls,
    UnknownCommand,
)
from smtplab.protocol.framing import (
    CommandLineReader,
    DataReader,
    InputBuffer,
    Problem,
)
from smtplab.protocol.states import (
    POSITIVE_CODES,
    State,
    Step,
    allowed,
    next_state,
)

# Replies the protocol itself requires, by problem (RFC 5321 4.2.3, RFC 3463).
_LINE_PROBLEMS = {
    Problem.TOO_LONG: Reply(500, "Line too long (RFC 5321 4.5.3.1.4)", "5.5.2"),
    Problem.BARE_LF: Reply(
        500, "Bare LF in command: SMTP lines end with CRLF (RFC 5321 2.3.8)", "5.5.2"
    ),
    Problem.BARE_CR: Reply(
        500, "Bare CR in command: SMTP lines end with CRLF (RFC 5321 2.3.8)", "5.5.2"
    ),
    Problem.BAD_UTF8: Reply(501, "Command is not valid UTF-8 (RFC 6531 3.3)", "5.5.2"),
}
_DATA_PROBLEMS = {
    Problem.TOO_LONG: Reply(500, "Line too long in message (RFC 5321 4.5.3.1.6)", "5.5.2"),
    Problem.BARE_LF: Reply(
        554, "Message rejected: bare LF in data; lines end with CRLF (RFC 5321 2.3.8)", "5.6.0"
    ),
    Problem.BARE_CR: Reply(
        554, "Message rejected: bare CR in data; lines end with CRLF (RFC 5321 2.3.8)", "5.6.0"
    ),
}


# Accepted, these leave no failed chunked transaction behind (RFC 3030 2: "A RSET command
# MUST be sent to clear the transaction before continuing").
_FRESH_START = frozenset({"MAIL", "RSET", "EHLO", "HELO", "STARTTLS"})

# Command events with sequence checks of their own (see _special_error).
_CHECKED_APART = (UnknownCommand, StartTls, Auth, Bdat)


#: What a reply is owed to: a command, a response in an AUTH exchange, or a message.
OwedEvent = Command | AuthResponse | MessageReceived


@dataclass(slots=True)
class Envelope:
    """The current mail transaction as the server accepted it so far."""

    mail_from: str | None = None
    mail_params: dict[str, str | None] = field(default_factory=dict)
    recipients: list[str] = field(default_factory=list)
    # ESMTP parameters of each accepted recipient that had any (DSN's NOTIFY, ORCPT).
    rcpt_params: dict[str, dict[str, str | None]] = field(default_factory=dict)


class ServerConnection:
    """One SMTP connection seen from the server. See the module docstring."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.state = State.GREETING
        self.client_domain: str | None = None
        self.extended = False  # the client said EHLO: ESMTP parameters are allowed
        self._offers_enhanced = "ENHANCEDSTATUSCODES" in self.config.extensions
        self.envelope = Envelope()
        self._in = InputBuffer()
        self._lines = CommandLineReader(self.config.max_command_line, self.config.line_endings)
        self._data: DataReader | None = None
        # BDAT (RFC 3030): the chunk being read, its command, and the chunks accepted so far.
        self._chunk: ChunkReader | None = None
        self._chunk_event: Bdat | None = None
        self._chunks: ChunkedMessage | None = None
        self._chunking_failed = False  # a chunk of this transaction was refused: RSET first
        self._out = bytearray()
        self._owed: str | None = Step.CONNECT  # the step whose reply is owed, if any
        self._owed_event: OwedEvent | None = None
        self._closed_seen = False
        # STARTTLS (RFC 3207): ``tls_pending`` from the 220 until the driver has switched the
        # transport to TLS and called :meth:`tls_started`; no plaintext is read meanwhile.
        self.tls = False
        self.tls_pending = False
        self.authenticated = False  # AUTH succeeded (RFC 4954): no second AUTH
        self._auth_continues = False  # a 334 was sent: the next line is an AUTH response
        self._sasl_may_follow = False  # see _hide_sasl

    # -- input ------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add received bytes; ``b""`` means the client closed its side."""
        self._in.feed(data)

    def next_event(self) -> Event:
        """The next event, :data:`NEED_DATA`, or :data:`PAUSED` while a reply is owed."""
        if self._owed is not None or self.tls_pending:
            return PAUSED
        if self.state is State.CLOSED:
            return self._closed(during_data=False) if self._in.eof else NEED_DATA
        if self.state is State.DATA:
            return self._next_data_event()
        if self._chunk is not None:
            return self._next_chunk_event()
        # An empty buffer holds no line (the usual case after a reply): no need to ask.
        line = self._lines.next_line(self._in) if self._in.data else None
        if line is None:
            if not self._in.eof:
                return NEED_DATA
            return self._closed(during_data=self.state is State.BDAT, verb="BDAT")
        if self._auth_continues:  # RFC 4954 4: a response to our 334, not a command
            error = None
            if line.problem is Problem.TOO_LONG:
                error = Reply(500, "Authentication Exchange line is too long", "5.5.6")
            elif line.problem is not None:
                error = Reply(501, "Malformed authentication response", "5.5.2")
            response = AuthResponse(line.content.decode("utf-8", "replace"), error)
            self._owed, self._owed_event = "AUTH", response
            return response
        event = self._hide_sasl(self._command_event(line.content, line.problem))
        if event.verb == "BDAT" and isinstance(event, Bdat) and event.size is not None:
            # Read the chunk even when refusing the command: its octets are no commands.
            self._chunk = ChunkReader(event.size, keep=event.error is None)
            self._chunk_event = event
            return self._next_chunk_event()
        self._owed, self._owed_event = event.verb, event
        return event

    def _hide_sasl(self, event: Command) -> Command:
        """``event``, or, when its line may be a SASL response, an unknown command ``AUTH ***``.

        The rule: after a line whose verb is AUTH, every line this server cannot read as a
        command it knows may be a SASL response (RFC 4954 4) - one pipelined behind an AUTH
        that was refused (538, 504, 503, 501), or sent after a failed exchange (535) by a
        client that did not wait for the reply - until the first line that is a known
        command. Such a line is answered as before (500, 501 ...) but its event, and so its
        row, holds ``AUTH ***``: base64 credentials never reach a row. Lines read while a 334
        is outstanding are :class:`AuthResponse` events, hidden the same way.
        """
        if event.verb.split(None, 1)[:1] == ["AUTH"]:
            self._sasl_may_follow = True
        elif self._sasl_may_follow:
            if type(event) in (Command, UnknownCommand):  # no command it knows (not a subclass)
                assert event.error is not None  # an unknown or unreadable line is refused
                return UnknownCommand("AUTH", "***", event.error)
            self._sasl_may_follow = False
        return event

    def _next_chunk_event(self) -> Event:
        assert self._chunk is not None and self._chunk_event is not None
        chunk = self._chunk.read(self._in)
        if chunk is None:
            return self._closed(during_data=True, verb="BDAT") if self._in.eof else NEED_DATA
        event, self._chunk, self._chunk_event = self._chunk_event, None, None
        if event.error is None:
            if self._chunks is None:
                self._chunks = ChunkedMessage()
            self._chunks.add(chunk)
            message = self._chunked_message() if event.last else None
            error = message.error if message is not None else None
            event = dataclasses.replace(event, chunk=chunk, message=message, error=error)
        self._owed, self._owed_event = (Step.BDAT_LAST if event.last else "BDAT"), event
        return event

    def _chunked_message(self) -> MessageReceived:
        """The message the LAST chunk completes, checked as DATA content would be."""
        assert self._chunks is not None
        content, size = self._chunks.content(), self._chunks.size
        problem = None
        if (self.envelope.mail_params.get("BODY") or "").upper() != "BINARYMIME":
            content, problem = check_content(
                content, self.config.max_text_line, self.config.line_endings
            )
        error = _DATA_PROBLEMS[problem] if problem is not None else None
        return MessageReceived(content, size, content.count(b"\r\n"), error)

    def _next_data_event(self) -> Event:
        assert self._data is not None
        end = self._data.read(self._in)
        if end is None:
            return self._closed(during_data=True) if self._in.eof else NEED_DATA
        error = _DATA_PROBLEMS.get(end.problem) if end.problem else None
        if end.problem is Problem.TOO_LARGE:
            limit = self.config.max_message_size
            error = Reply(552, f"Message size exceeds fixed limit of {limit} octets", "5.3.4")
        event = MessageReceived(end.content, end.size, end.line_count, error)
        self._owed, self._owed_event = Step.DATA_END, event
        return event

    def _closed(self, during_data: bool, verb: str = "DATA") -> Event:
        if self._closed_seen:
            return NEED_DATA
        self._closed_seen = True
        self.state = State.CLOSED
        self._data = self._chunk = self._chunk_event = self._chunks = None
        return ConnectionClosed(during_data, verb)

    def _command_event(self, raw: bytes, problem: Problem | None) -> Command:
        envelope = self.envelope
        event = None
        if problem is None:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                problem = Problem.BAD_UTF8
            else:
                config = self.config
                utf8 = "SMTPUTF8" in envelope.mail_params
                event = parse_command(
                    line, config.extensions, self.extended, config.max_message_size, utf8
                )
        if event is None:
            assert problem is not None
            verb, argument = split_command(decode_line(raw)[0])
            return Command(verb, hide_credentials(verb, argument), _LINE_PROBLEMS[problem])
        verb = event.verb
        if isinstance(event, _CHECKED_APART):
            sequence_error = self._special_error(event)
        else:
            sequence_error = self._sequence_error(verb)
        if (
            verb == "DATA"
            and sequence_error is None
            and (envelope.mail_params.get("BODY") or "").upper() == "BINARYMIME"
        ):
            text = "BODY=BINARYMIME: send the message with BDAT, not DATA (RFC 3030 3)"
            sequence_error = Reply(503, text, "5.5.1")
        if (
            sequence_error is None
            and event.error is None
            and verb == "RCPT"
            and self.config.max_recipients is not None
            and len(envelope.recipients) >= self.config.max_recipients
        ):
            # RFC 5321 4.5.3.1.10: 452 for too many recipients; the client sends the rest later.
            sequence_error = Reply(452, "Too many recipients", "4.5.3")
        if sequence_error is not None:
            event = dataclasses.replace(event, error=sequence_error)
        return event

    def _special_error(self, event: Command) -> Reply | None:
        """The sequence error of an unknown command, STARTTLS, AUTH or BDAT, or None."""
        unreadable = isinstance(event, UnknownCommand) or (
            isinstance(event, Bdat) and event.size is None  # its syntax error says more
        )
        sequence_error = None if unreadable else self._sequence_error(event.verb)
        if isinstance(event, StartTls) and self.tls:
            sequence_error = Reply(503, "TLS already active (RFC 3207 4.2)", "5.5.1")
        if isinstance(event, Auth) and sequence_error is None and event.error is None:
            sequence_error = self._auth_error(event)
        if isinstance(event, Bdat) and sequence_error is None and event.error is None:
            sequence_error = self._bdat_error(event)
        return sequence_error

    def _auth_error(self, event: Auth) -> Reply | None:
        """Why this AUTH cannot start (RFC 4954 4 and 6), or None."""
        if self.authenticated:
            return Reply(503, "Already authenticated", "5.5.1")
        if event.mechanism not in self.config.auth_mechanisms:
            return Reply(504, "Unrecognized authentication type", "5.5.4")
        if not self.tls and not self.config.auth_without_tls:
            return Reply(
                538, "Encryption required for requested authentication mechanism", "5.7.11"
            )
        return None

    def _bdat_error(self, event: Bdat) -> Reply | None:
        """Why this chunk cannot be accepted, in sequence as it is (RFC 3030 2), or None."""
        limit = self.config.max_message_size
        so_far = self._chunks.size if self._chunks is not None else 0
        if limit is not None and so_far + (event.size or 0) > limit:
            return Reply(552, f"Message size exceeds fixed limit of {limit} octets", "5.3.4")
        return None

    def _sequence_error(self, verb: str) -> Reply | None:
        """The 503 (or 554) reply for a command out of sequence (RFC 5321 3.3, 4.1.4)."""
        if verb not in POSITIVE_CODES or allowed(self.state, verb):
            return None
        state = self.state
        if state is State.REFUSED:
            text = "Service refused at connection: only QUIT is accepted (RFC 5321 3.1)"
        elif verb == "BDAT" and self._chunking_failed:
            text = "An earlier chunk of this transaction failed: chunk discarded; send RSET"
        elif state is State.BDAT and verb in ("DATA", "RCPT"):
            text = f"{verb} after BDAT: the message is being sent in chunks (RFC 3030 2)"
        elif verb == "MAIL" and state in (State.MAIL, State.RCPT, State.BDAT):
            text = "Nested MAIL command: finish or RSET the current transaction first"
        elif verb == "MAIL":
            text = "Send HELO or EHLO first (RFC 5321 4.1.4)"
        elif verb == "RCPT":
            text = "Need MAIL before RCPT"
        elif verb in ("DATA", "BDAT") and state is State.MAIL:
            # RFC 5321 4.1.1.4 allows 503 or 554 here; 554 says why.
            return Reply(554, "No valid recipients", "5.5.1")
        elif verb in ("DATA", "BDAT"):
            text = f"Need MAIL and RCPT before {verb}"
        else:
            text = "Bad sequence of commands"
        return Reply(503, text, "5.5.1")

    # -- output -----------------------------------------------------------------------------

    @property
    def reading_message(self) -> bool:
        """Whether a message is on its way: from the 354 to the final dot, or from the first
        BDAT chunk to the LAST one (RFC 3030), including chunk octets not all read yet."""
        return self.state is State.DATA or self.state is State.BDAT or self._chunk is not None

    @property
    def owed(self) -> OwedEvent | None:
        """The command event (or message) awaiting a reply, if any."""
        return self._owed_event

    def send(self, reply: Reply) -> Reply:
        """Queue ``reply`` as the answer to the owed step (or an unprompted 421).

        Returns the reply as sent: its enhanced status code is dropped unless the extension is
        in effect (advertised, and the client said EHLO) and the reply is not a 3xx, since
        RFC 2034 and RFC 3463 define them only then.
        """
        if self.state is State.CLOSED:
            raise LocalProtocolError("the connection is closed: nothing more can be sent")
        step, code = self._owed, reply.code
        if step is None:
            if code != 421:
                raise LocalProtocolError(
                    f"no command is waiting for a reply; only 421 may be sent unprompted, "
                    f"not {code} (RFC 5321 3.8)"
                )
            step = Step.UNSOLICITED
        elif code < 400:
            self._check_positive(step, reply)
        if reply.enhanced and (
            not (self.extended and self._offers_enhanced) or 300 <= code < 400
        ):  # the enhanced code is not in effect: the reply goes without it
            reply = Reply(code, reply.text)
        self._apply(step, code)
        self._out += reply.to_bytes()
        return reply

    def _check_positive(self, step: str, reply: Reply) -> None:
        """Refuse a positive reply that cannot answer ``step`` (RFC 5321 4.3.2), or that
        accepts a command the protocol requires refusing."""
        codes = POSITIVE_CODES.get(step)
        if codes is None or reply.code not in codes:
            expected = ", ".join(map(str, sorted(codes))) if codes else "a 4xx or 5xx reply"
            raise LocalProtocolError(f"{reply.code} cannot answer {step}; expected {expected}")
        error = getattr(self._owed_event, "error", None)
        if error is not None:
            raise LocalProtocolError(
                f"the protocol requires rejecting this {step} command with '{error}', "
                f"not accepting it with {reply.code}"
            )

    def _apply(self, step: str, code: int) -> None:
        """Move on after ``step`` was answered with ``code`` (RFC 5321 4.1.4, 3.3)."""
        event, previous = self._owed_event, self.state
        self._owed = self._owed_event = None
        if step == Step.UNSOLICITED:
            self.state = State.CLOSED
            return
        if step == "AUTH":
            self._auth_continues = code == 334
            self.authenticated = self.authenticated or code == 235
        state = self.state = next_state(previous, step, code)
        if code >= 400:
            if state is not previous:  # a refused final dot, a 421: no transaction left
                self.envelope, self._data, self._chunks = Envelope(), None, None
                self._chunking_failed = isinstance(event, Bdat)
            return
        if step in _FRESH_START:
            self._chunking_failed = False
        if step == "MAIL":
            assert isinstance(event, MailFrom)
            # A copy: the envelope changes as the transaction goes on; the event stays as read.
            self.envelope = Envelope(event.address, dict(event.params))
        elif step == "RCPT":
            assert isinstance(event, RcptTo)
            self.envelope.recipients.append(event.address)
            if event.params:
                self.envelope.rcpt_params[event.address] = dict(event.params)
        elif step == "STARTTLS":
            # RFC 3207 4.2: forget everything the client said, and discard whatever it sent
            # after STARTTLS in plaintext (pipelined commands there are an injection attack,
            # CVE-2011-0411): TLS starts at the byte after this command's line.
            self.client_domain, self.extended, self.authenticated = None, False, False
            self._in.data.clear()
            self._lines = CommandLineReader(self.config.max_command_line, self.config.line_endings)
            self.tls_pending = True
        elif step in ("EHLO", "HELO"):
            assert isinstance(event, Hello)
            self.client_domain, self.extended = event.domain, event.extended
        if state is State.DATA:
            if previous is not State.DATA:
                config = self.config
                self._data = DataReader(
                    config.max_text_line, config.max_message_size, config.line_endings
                )
        elif state is State.READY or state is State.CONNECTED or state is State.CLOSED:
            self.envelope = Envelope()  # EHLO, RSET, end of data, QUIT: no transaction
            self._data = self._chunks = None

    def tls_started(self) -> None:
        """The transport now runs TLS (after our 220 to STARTTLS): read commands again."""
        if not self.tls_pending:
            raise LocalProtocolError("TLS can start only after a 220 reply to STARTTLS")
        self.tls_pending, self.tls = False, True

    def close(self) -> None:
        """Drop the connection without a reply (a crash, a fault): nothing more is sent or read.

        Bytes already queued stay in :meth:`data_to_send`; an unfinished transaction is gone.
        """
        self.state = State.CLOSED
        self._owed, self._owed_event = None, None
        self.tls_pending = self._auth_continues = False
        self._closed_seen = True  # the peer's close needs no event of its own now
        self.envelope, self._data = Envelope(), None
        self._chunk = self._chunk_event = self._chunks = None

    def data_to_send(self) -> bytes:
        """The bytes queued for the client since the last call."""
        out = bytes(self._out)
        self._out.clear()
        return out
