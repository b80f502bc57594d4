"""One server session: the sans-IO connection, a policy, a store and a recorder, wired.

:class:`ServerSession` is still free of I/O: bytes in (:meth:`ServerSession.receive`), bytes
out (:meth:`ServerSession.data_to_send`), time from a clock function. The in-process transport
and the TCP server both drive it, so they behave identically.

For each command event it asks the protocol first (an event with ``error`` is answered with that
error), then the policy. For a complete message it asks the policy, and on 250 stores the
message *before* the reply is queued, so a message acknowledged with 250 is always in the store
and a session that ends before the final dot leaves nothing behind.

Storing may wait on a disk. With ``defer_delivery`` the session does not store the message
itself: it leaves a :class:`~smtplab.server.delivery.Delivery` in :attr:`ServerSession.pending`
and answers nothing more (commands pipelined after the message wait, so replies stay in
order) until the transport kept it and called :meth:`ServerSession.finish_delivery`. The
in-process lab stores at once, so its transcripts stay deterministic.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

from smtplab.log.recorder import Recorder
from smtplab.protocol.auth import Challenge, SaslServer
from smtplab.protocol.errors import LocalProtocolError
from smtplab.protocol.events import (
    NEED_DATA,
    PAUSED,
    Auth,
    AuthResponse,
    Bdat,
    Command,
    ConnectionClosed,
    MessageReceived,
    Reply,
    StartTls,
)
from smtplab.protocol.server import ServerConfig, ServerConnection
from smtplab.protocol.states import State, Step
from smtplab.server.delivery import Delivery
from smtplab.server.policy import QUEUE_ID, Answer, Context, Decision, Drop, Policy
from smtplab.server.store import Store, StoredMessage, received_header

LOCAL_ERROR = Reply(451, "Requested action aborted: local error in processing", "4.3.0")
TOO_MANY_ERRORS = Reply(421, "Too many errors, closing connection", "4.7.0")
TOO_MANY_COMMANDS = Reply(421, "Too many commands in one session, please reconnect", "4.7.0")
#: Commands a client can repeat forever without moving a transaction on. Postfix flags HELO,
#: EHLO, RSET, NOOP, VRFY and ETRN (smtpd_junk_command_limit); EXPN and HELP are as cheap.
JUNK_COMMANDS = frozenset({"EHLO", "HELO", "NOOP", "RSET", "VRFY", "EXPN", "HELP"})
#: States inside a mail transaction, and how many commands past ``command_limit`` one may take.
_IN_TRANSACTION = frozenset({State.MAIL, State.RCPT, State.DATA, State.BDAT})
TRANSACTION_MARGIN = 1000


class ServerSession:
    """Drives one :class:`ServerConnection` with a policy, a store and a recorder."""

    def __init__(
        self,
        *,
        policy: Policy,
        store: Store,
        recorder: Recorder,
        clock: Callable[[], float],
        config: ServerConfig | None = None,
        client: str = "unknown",
        before_reply: Callable[[], None] | None = None,
        wait: Callable[[float], None] | None = None,
        error_limit: int | None = None,
        junk_limit: int | None = None,
        command_limit: int | None = None,
        defer_delivery: bool = False,
    ) -> None:
        self.conn = ServerConnection(config)
        self.policy = policy
        self.store = store
        self.recorder = recorder
        self.clock = clock
        self.client = client
        # Called before each reply: the in-process transport lets processing time pass.
        self.before_reply = before_reply
        # Lets time pass for a delayed Answer (the in-process clock's advance).
        self.wait = wait
        self.errors: list[str] = []  # exceptions raised by policy hooks, answered with 451
        # After this many 4xx/5xx replies the session is closed with 421 4.7.0, as Postfix's
        # smtpd_hard_error_limit does: a client that keeps failing is broken or probing.
        self.error_limit = error_limit
        self.error_replies = 0
        # Beyond this many EHLO/HELO/NOOP/RSET/VRFY/EXPN/HELP, each counts as an error too
        # (Postfix's smtpd_junk_command_limit): a client cannot keep a session busy with junk
        # forever. Both counts start again after a message is accepted, as in Postfix.
        self.junk_limit = junk_limit
        self.junk_commands = 0
        # After this many commands the session is closed with 421 4.7.0, whatever they were
        # (as Exim's smtp_accept_max_per_connection and nginx's keepalive_requests do): one
        # endless session of valid transactions would otherwise grow its transcript forever.
        # The client reconnects; nothing it was told was accepted is lost.
        self.command_limit = command_limit
        # Complete inputs taken so far (command lines, AUTH responses, messages, chunks): a
        # driver's sign that the client is moving on, bytes alone are not.
        self.inputs = 0
        self._ctx: Context | None = None
        self._close_recorded = False
        self._counts: dict[str, int] = {}  # step -> times it came up (for policies, faults)
        self._sasl: SaslServer | None = None  # an AUTH exchange in progress
        self.user: str | None = None  # who authenticated (AUTH, RFC 4954)
        self._commands = 0
        # A message waiting for the transport to keep it (``defer_delivery``), and a 421 that
        # came meanwhile: it is said after the message's reply, never instead of it.
        self.defer_delivery = defer_delivery
        self.pending: Delivery | None = None
        self._shutdown_after: tuple[Reply, str] | None = None

    @property
    def closed(self) -> bool:
        return self.conn.state is State.CLOSED

    def start(self) -> None:
        """Record the connection and send the greeting."""
        self.recorder.connect(self.clock())
        self._count(Step.CONNECT)
        greeting = self._decide(None)
        reply = greeting.reply if isinstance(greeting, Answer) else greeting
        if isinstance(reply, Reply) and reply.code not in (220, 421, 554):
            # RFC 5321 3.1 and 3.8: a greeting is 220, or 554 / 421 to refuse service.
            greeting = Reply(421, "Service not available, closing transmission channel", "4.3.0")
        self._answer(greeting)
        if self.closed:
            self._record_close("server")

    def receive(self, data: bytes) -> None:
        """Take bytes from the client (``b""``: it closed) and answer all complete commands."""
        self.conn.receive_data(data)
        self.answer_waiting()

    def answer_waiting(self) -> None:
        """Answer the complete commands received so far that nothing holds back any more:
        after TLS has started, commands that arrived with the end of the handshake."""
        arrived = self.clock()  # pipelined commands all arrived now (RFC 2920)
        conn = self.conn
        while True:
            if self.pending is not None:  # nothing is answered before the message's reply
                return
            event = conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                return
            self.inputs += 1
            if isinstance(event, ConnectionClosed):
                text = "client closed the connection"
                if event.during_data:
                    text += f" during {event.data_verb}: the partial message was discarded"
                self._record_close("client", text)
                return
            self.recorder.record(event, arrived)  # every row of a client's unit, made here
            if isinstance(event, Command):  # (an AUTH exchange line or a message is none)
                self._commands += 1
                self._count(event.verb)
            if isinstance(event, MessageReceived):
                self._count(Step.DATA_END)
                self._message(event)
                self._limit_commands()
            elif isinstance(event, AuthResponse):
                if event.error is not None:
                    self._sasl = None
                    self._answer(event.error)
                else:
                    self._answer(self._auth_step(event.line))
            elif isinstance(event, Bdat):
                if event.error is not None:
                    self._answer(event.error)
                elif event.message is not None:  # the LAST chunk: decided like the final dot
                    self._count(Step.DATA_END)
                    self._message(event.message)
                else:
                    self._answer(self._decide(event))
                self._limit_commands()
            elif isinstance(event, Auth):
                if event.error is not None:
                    self._answer(event.error)
                else:
                    self._sasl = SaslServer(event.mechanism)
                    self._answer(self._auth_step(event.initial))
            elif isinstance(event, StartTls):
                self.user = None  # RFC 3207 4.2: forgotten with everything else
                self._answer(event.error or self._decide(event))
            elif isinstance(event, Command):  # every other command: its error or the policy
                self._answer(event.error or self._decide(event))
                if self.junk_limit is not None and event.verb in JUNK_COMMANDS:
                    self.junk_commands += 1
                    if self.junk_commands > self.junk_limit:
                        self._count_error()
                self._limit_commands()
            if conn.state is State.CLOSED:
                self._record_close("server")
                return

    def data_to_send(self) -> bytes:
        return self.conn.data_to_send()

    def lost(self, text: str = "the connection was lost") -> None:
        """The transport is gone (the client vanished, a TLS handshake failed): record it."""
        if not self.closed:
            self.receive(b"")
        if not self._close_recorded:  # nothing could be read (e.g. waiting for TLS)
            self.conn.close()
            self._record_close("client", text)

    def shutdown(self, reply: Reply, note: str = "") -> None:
        """Say ``reply`` (a 421) unprompted and close: an idle timeout, too many errors, the
        server stopping. RFC 5321 3.8 allows a 421 at any time."""
        if self.closed:
            return
        if self.pending is not None:  # the message's reply first: a 421 now would get it resent
            self._shutdown_after = (reply, note)
            return
        if note:
            self.recorder.note(self.clock(), note)
        self._reply(reply)
        self._record_close("server")

    def _record_close(self, by: str, text: str = "") -> None:
        """One close row per session, whoever notices the end first."""
        if not self._close_recorded:
            self._close_recorded = True
            self.recorder.close(self.clock(), by, text)

    def _count(self, step: str) -> None:
        self._counts[step] = self._counts.get(step, 0) + 1

    def _context(self) -> Context:
        """The context for a hook call, brought up to date (one object per session)."""
        conn, ctx = self.conn, self._ctx
        if ctx is None:
            ctx = self._ctx = Context(
                hostname=self.policy.hostname,
                client=self.client,
                client_domain=None,
                extended=False,
                envelope=conn.envelope,
                config=conn.config,
                now=0.0,
                session=self.recorder.session,
                counts=self._counts,
            )
        ctx.client_domain = conn.client_domain
        ctx.extended = conn.extended
        ctx.envelope = conn.envelope
        ctx.now = self.clock()
        ctx.commands = self._commands
        ctx.tls = conn.tls
        ctx.user = self.user
        return ctx

    def _decide(self, event: Command | MessageReceived | None) -> Decision:
        """Ask the policy (``None``: for the greeting); a hook that raises gets 451."""
        try:
            if event is None:
                decision = self.policy.on_connect(self._context())
            else:
                decision = self.policy.reply_for(self._context(), event)
            return decision if isinstance(decision, Reply) else _validated(decision)
        except Exception as exc:  # a bug in a policy must not kill the session
            self.errors.append("".join(traceback.format_exception_only(exc)).strip())
            self.recorder.note(self.clock(), f"policy error, answered 451: {self.errors[-1]}")
            return LOCAL_ERROR

    def _auth_step(self, response: str | None) -> Decision:
        """One move of the AUTH exchange; the policy checks the credentials at the end."""
        assert self._sasl is not None
        move = self._sasl.step(response)
        if isinstance(move, Challenge):
            return move.reply()
        self._sasl = None
        if isinstance(move, Reply):
            return move
        try:
            decision = _validated(self.policy.on_auth(self._context(), move))
        except Exception as exc:  # a bug in a policy must not kill the session
            self.errors.append("".join(traceback.format_exception_only(exc)).strip())
            self.recorder.note(self.clock(), f"policy error, answered 454: {self.errors[-1]}")
            return Reply(454, "Temporary authentication failure", "4.7.0")
        reply = decision.reply if isinstance(decision, Answer) else decision
        if isinstance(reply, Reply) and reply.code == 235:
            self.user = move.username
        return decision

    def _message(self, event: MessageReceived) -> None:
        """Answer a complete message: an error or a refusal at once, a 250 only once the store
        has kept the message (now, or when the transport calls :meth:`finish_delivery`)."""
        decision = event.error or self._decide(event)
        reply = decision.reply if isinstance(decision, Answer) else decision
        if not isinstance(reply, Reply) or reply.code != 250:
            self._answer(decision)
            return
        try:
            self.pending = self._delivery(event, decision)
        except Exception as exc:  # e.g. a store's new_id failed: nothing is stored
            self._answer(self._store_failed(exc))
            return
        if not self.defer_delivery:
            self._delivered(self.pending.keep())

    def finish_delivery(self, outcome: StoredMessage | Exception) -> None:
        """The transport kept :attr:`pending` (with :meth:`Delivery.keep`): send its reply,
        then answer the commands that were pipelined after the message."""
        self._delivered(outcome)
        if not self.closed:
            self.answer_waiting()

    def _delivered(self, outcome: StoredMessage | Exception) -> None:
        """Reply to the pending message: 250 with its queue id if it was stored, else 451."""
        delivery, self.pending = self.pending, None
        assert delivery is not None, "no message is waiting to be stored"
        decision: Decision
        if isinstance(outcome, Exception):
            decision = self._store_failed(outcome)
        else:
            try:
                self.policy.on_delivered(self._context(), delivery.event, outcome)
            except Exception as exc:  # stored already: the 250 stands, the hook's bug is noted
                self.errors.append("".join(traceback.format_exception_only(exc)).strip())
                self.recorder.note(self.clock(), f"policy error after delivery: {self.errors[-1]}")
            decision = _with_queue_id(delivery.decision, outcome.id)
            self.error_replies = self.junk_commands = 0  # a message kept: forgiven (Postfix)
        if self.closed:  # the client left while the store was at work
            if not isinstance(outcome, Exception):
                text = f"message stored as {outcome.id}; the connection was gone before the 250"
                self.recorder.note(self.clock(), text)
        else:
            self._answer(decision)
        if self._shutdown_after is not None:
            reply, note = self._shutdown_after
            self._shutdown_after = None
            self.shutdown(reply, note)

    def _store_failed(self, exc: Exception) -> Reply:
        """The message is not stored: say so (a note row), never 250."""
        self.errors.append(f"store failed: {exc}")
        self.recorder.note(self.clock(), f"store failed, answered 451: {exc}")
        return LOCAL_ERROR

    def _delivery(self, event: MessageReceived, decision: Decision) -> Delivery:
        """The accepted message, with its queue id and Received header, ready to be kept."""
        conn, now = self.conn, self.clock()
        envelope = conn.envelope
        queue_id = self.store.new_id(self.recorder.session, now)
        protocol = "ESMTP" if conn.extended else "SMTP"
        if "SMTPUTF8" in envelope.mail_params:
            protocol = "UTF8SMTP"  # RFC 6531 4.3
        header = received_header(
            client_domain=conn.client_domain,
            client_address=self.client,
            hostname=self.policy.hostname,
            protocol=protocol,
            queue_id=queue_id,
            recipient=envelope.recipients[0] if len(envelope.recipients) == 1 else None,
            time=now,
        )
        return Delivery(
            self.store,
            queue_id,
            envelope.mail_from or "",
            tuple(envelope.recipients),
            header + event.content,
            now,
            self.recorder.session,
            dict(envelope.mail_params),
            {rcpt: dict(params) for rcpt, params in envelope.rcpt_params.items()},
            event,
            decision,
        )

    def _answer(self, decision: Decision) -> None:
        """Carry out a decision: reply, reply after a delay, or drop the connection."""
        if isinstance(decision, Reply):
            self._reply(decision)
            return
        if isinstance(decision, Drop):
            self.conn.close()
            note = f" ({decision.note})" if decision.note else ""
            self._record_close("server", f"server dropped the connection{note}")
            return
        if isinstance(decision, Answer):
            if decision.note:
                self.recorder.note(self.clock(), decision.note)
            if decision.delay and self.wait is not None:
                self.wait(decision.delay)
            decision = decision.reply
        self._reply(decision)

    def _reply(self, reply: Reply) -> None:
        if self.before_reply is not None:
            self.before_reply()
        try:
            sent = self.conn.send(reply)
        except LocalProtocolError as exc:  # a policy answered what the protocol forbids
            self.errors.append(str(exc))
            self.recorder.note(self.clock(), f"policy reply refused, answered 451: {exc}")
            sent = self.conn.send(LOCAL_ERROR)
        self.recorder.record(sent, self.clock())
        if sent.code >= 400 and sent.code != 421:
            self._count_error()

    def _limit_commands(self) -> None:
        limit = self.command_limit
        if limit is None or self._commands < limit:
            return
        # A transaction under way may finish (a 421 after the 354 would waste the message),
        # within a margin of commands; the 421 then comes between transactions.
        in_transaction = self.conn.state in _IN_TRANSACTION
        if in_transaction and self._commands < limit + TRANSACTION_MARGIN:
            return
        self.shutdown(TOO_MANY_COMMANDS, f"{self._commands} commands: closing")

    def _count_error(self) -> None:
        if self.error_limit is None or self.closed:
            return
        self.error_replies += 1
        if self.error_replies >= self.error_limit:
            self.shutdown(TOO_MANY_ERRORS, f"{self.error_replies} errors: closing")


def _with_queue_id(decision: Decision, queue_id: str) -> Decision:
    """The policy's 250 with the placeholder for the queue id filled in."""
    reply = decision.reply if isinstance(decision, Answer) else decision
    assert isinstance(reply, Reply)
    reply = Reply(reply.code, reply.text.replace(QUEUE_ID, queue_id), reply.enhanced)
    if isinstance(decision, Answer):
        return Answer(reply, decision.delay, decision.note)
    return reply


def _validated(decision: object) -> Decision:
    """``decision`` if a hook may return it; an Answer holding an Answer (a wrapper policy
    around a delaying one) is flattened, the delays adding up."""
    if isinstance(decision, Answer):
        inner: object = decision.reply
        if isinstance(inner, Answer):
            flat = _validated(inner)
            assert isinstance(flat, Answer)
            return Answer(flat.reply, flat.delay + decision.delay, decision.note or flat.note)
        if not isinstance(inner, Reply):
            raise TypeError(f"an Answer must hold a Reply, not {inner!r}")
        return decision
    if isinstance(decision, Reply | Drop):
        return decision
    raise TypeError(f"a hook must return a Reply, Answer or Drop, not {decision!r}")
