"""Server behaviour as policy: one hook per command, each returning the reply.

A policy decides what the protocol leaves open - who is greeted, which recipients exist, what
the replies say - and nothing else: commands the protocol already rejects (bad syntax, bad
sequence, overlong lines) never reach a hook. Hooks are synchronous and do no I/O, so one
policy runs in-process, over TCP and in tests alike (in the spirit of aiosmtpd's
``handle_RCPT``).

Subclass :class:`Policy` and override the hooks you need; each gets a :class:`Context` (who
is talking, the transaction so far, the time) and the command event, and returns a
:class:`~smtplab.protocol.events.Reply` - or an :class:`Answer` (a reply after a delay, with
a note row in the transcript) or :class:`Drop` (close without replying), which is how
:mod:`smtplab.server.faults` injects failures. Most behaviours need no subclass:
:class:`~smtplab.server.mailboxes.Mailboxes` takes them as settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smtplab.protocol.auth import Credentials
from smtplab.protocol.events import (
    Bdat,
    Command,
    Expand,
    Hello,
    Help,
    MailFrom,
    MessageReceived,
    Noop,
    Quit,
    RcptTo,
    Reply,
    Reset,
    StartTls,
    Verify,
)
from smtplab.protocol.server import Envelope, ServerConfig
from smtplab.server.store import StoredMessage

#: Placeholder in an end-of-data reply that the server replaces with the stored message's id.
QUEUE_ID = "{queue_id}"


@dataclass(frozen=True, slots=True)
class Answer:
    """A reply with extras: sent after ``delay`` seconds (virtual time in-process), and with a
    ``note`` row in the transcript saying why (fault injection uses both)."""

    reply: Reply
    delay: float = 0.0
    note: str = ""

    def __post_init__(self) -> None:
        if self.delay < 0:
            raise ValueError("a delay cannot be negative")


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection without replying, as a crashed server or a cut cable would."""

    note: str = ""


#: What a hook may return: a reply, a reply with a delay or a note, or no reply at all.
Decision = Reply | Answer | Drop


@dataclass(slots=True)
class Context:
    """What a hook may know about the session when it decides.

    The server brings one context per session up to date before each hook call: read it during
    the call; copy what you need to keep.
    """

    hostname: str  # the server's name, as in its greeting
    client: str  # the client's address, host:port
    client_domain: str | None  # what the client said in HELO/EHLO
    extended: bool  # the client said EHLO
    envelope: Envelope  # the transaction so far (MAIL accepted, recipients accepted)
    config: ServerConfig
    now: float  # POSIX seconds (virtual time in-process)
    session: str  # the session id
    # How many times each step came up in this session so far, this one included (CONNECT,
    # EHLO, ..., DATA-END), and how many commands were received, rejected ones included.
    counts: dict[str, int] = field(default_factory=dict)
    commands: int = 0
    tls: bool = False  # the session runs under TLS (after STARTTLS)
    user: str | None = None  # who authenticated with AUTH, if anyone


class Policy:
    """The default behaviour: accept every syntactically valid address.

    Replies follow RFC 5321's wording and carry RFC 3463 enhanced codes (RFC 2034 exempts
    the greeting and the HELO/EHLO reply).
    """

    hostname = "mx.example.org"

    def on_connect(self, ctx: Context) -> Decision:
        return Reply(220, f"{ctx.hostname} ESMTP smtplab")

    def on_hello(self, ctx: Context, event: Hello) -> Decision:
        if not event.extended:
            return Reply(250, ctx.hostname)
        config = ctx.config
        keywords = config.ehlo_keywords()
        if ctx.tls:  # RFC 3207 4.2: not offered again once TLS is on
            keywords = [k for k in keywords if k != "STARTTLS"]
        elif not config.auth_without_tls:  # RFC 4954 4: AUTH only under TLS
            keywords = [k for k in keywords if not k.startswith("AUTH")]
        lines = [f"{ctx.hostname} greets {event.domain}", *keywords]
        return Reply(250, "\n".join(lines))

    def on_mail(self, ctx: Context, event: MailFrom) -> Decision:
        return Reply(250, f"Sender <{event.address}> OK", "2.1.0")

    def on_rcpt(self, ctx: Context, event: RcptTo) -> Decision:
        return Reply(250, f"Recipient <{event.address}> OK", "2.1.5")

    def on_data(self, ctx: Context, event: Command) -> Decision:
        return Reply(354, "End data with <CR><LF>.<CR><LF>")

    def on_bdat(self, ctx: Context, event: Bdat) -> Decision:
        """A chunk that is not the last (RFC 3030 2); the LAST one goes to :meth:`on_message`."""
        return Reply(250, f"{event.size} octets received", "2.0.0")

    def on_message(self, ctx: Context, event: MessageReceived) -> Decision:
        """Decide on a complete message (after the final dot, or the LAST BDAT chunk); a 250
        here means the server stores it first."""
        return Reply(250, f"OK: queued as {QUEUE_ID}", "2.0.0")

    def on_delivered(self, ctx: Context, event: MessageReceived, stored: StoredMessage) -> None:
        """``event``'s message was stored as ``stored`` and is about to be acknowledged."""

    def on_rset(self, ctx: Context, event: Reset) -> Decision:
        return Reply(250, "OK", "2.0.0")

    def on_noop(self, ctx: Context, event: Noop) -> Decision:
        return Reply(250, "OK", "2.0.0")

    def on_vrfy(self, ctx: Context, event: Verify) -> Decision:
        # RFC 5321 3.5.3: 252 when the server will not or cannot verify.
        return Reply(252, "Cannot VRFY user, but will accept message and attempt delivery", "2.0.0")

    def on_expn(self, ctx: Context, event: Expand) -> Decision:
        return Reply(502, "EXPN not available", "5.5.1")

    def on_help(self, ctx: Context, event: Help) -> Decision:
        extensions = ctx.config.extensions
        optional = [verb for verb in ("BDAT", "STARTTLS", "AUTH") if _OFFERS[verb] in extensions]
        commands = ["EHLO", "HELO", "MAIL", "RCPT", "DATA", *optional]
        commands += ["RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP"]
        text = f"Commands: {' '.join(commands)}\nSee RFC 5321 section 4.1 for each command"
        return Reply(214, text, "2.0.0")

    def on_auth(self, ctx: Context, credentials: Credentials) -> Decision:
        """Check AUTH credentials: 235 to accept, 535 5.7.8 to refuse (RFC 4954 6)."""
        return Reply(535, "Authentication credentials invalid", "5.7.8")

    def on_starttls(self, ctx: Context, event: StartTls) -> Decision:
        return Reply(220, "Ready to start TLS", "2.0.0")

    def on_quit(self, ctx: Context, event: Quit) -> Decision:
        return Reply(221, f"{ctx.hostname} closing connection", "2.0.0")

    def reply_for(self, ctx: Context, event: Command | MessageReceived) -> Decision:
        """Dispatch ``event`` to its hook."""
        if isinstance(event, MessageReceived):
            return self.on_message(ctx, event)
        return getattr(self, _HOOKS[event.verb])(ctx, event)


_OFFERS = {"BDAT": "CHUNKING", "STARTTLS": "STARTTLS", "AUTH": "AUTH"}  # verb -> EHLO keyword

_HOOKS = {
    "EHLO": "on_hello",
    "HELO": "on_hello",
    "MAIL": "on_mail",
    "RCPT": "on_rcpt",
    "DATA": "on_data",
    "BDAT": "on_bdat",
    "RSET": "on_rset",
    "NOOP": "on_noop",
    "VRFY": "on_vrfy",
    "EXPN": "on_expn",
    "HELP": "on_help",
    "QUIT": "on_quit",
    "STARTTLS": "on_starttls",
}
