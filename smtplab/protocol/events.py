"""Events: what one side of an SMTP connection sees the other side do.

A server connection turns received bytes into *command events* (:class:`Hello`,
:class:`MailFrom`, :class:`RcptTo`, ...), a :class:`MessageReceived` after the final dot, and
:class:`ConnectionClosed`. Each command event owes exactly one :class:`Reply`; when the
protocol itself already knows the answer (bad syntax, bad sequence, an overlong line) the
event's ``error`` field holds that reply, and the server must send it or another 4xx/5xx reply.

A client connection turns received bytes into :class:`ReplyReceived` events.

All events are frozen dataclasses, so they can be stored, compared and put in tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ENHANCED = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}")  # ASCII digits only (RFC 3463 2)


def is_enhanced_code(text: str) -> bool:
    """Whether ``text`` is an RFC 3463 enhanced status code such as ``2.1.5``."""
    return _ENHANCED.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: a three-digit code, an optional RFC 3463 enhanced code, and text.

    ``text`` holds the reply's lines joined by ``\\n`` (without the code, the hyphen or the
    enhanced code). ``Reply(250, "OK", "2.0.0")`` is sent as ``250 2.0.0 OK``.
    """

    code: int
    text: str = ""
    enhanced: str | None = None

    def __post_init__(self) -> None:
        code = self.code
        if type(code) is not int or code < 200 or code > 599:
            raise ValueError(f"reply code must be an int from 200 to 599, not {code!r}")
        enhanced = self.enhanced
        if enhanced is not None and not is_enhanced_code(enhanced):
            raise ValueError(
                f"enhanced status code must look like '2.1.5' (RFC 3463), not {enhanced!r}"
            )
        if "\r" in self.text:
            raise ValueError("reply text must not contain CR; separate lines with '\\n'")

    @property
    def lines(self) -> list[str]:
        """The text lines of the reply (one for a single-line reply)."""
        return self.text.split("\n")

    @property
    def is_positive(self) -> bool:
        """2xx or 3xx: the command was accepted (RFC 5321 4.2.1)."""
        return self.code < 400

    @property
    def is_transient(self) -> bool:
        """4xx: a transient failure; the client should retry later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5xx: a permanent failure; retrying the same command will fail again."""
        return self.code >= 500

    def to_bytes(self) -> bytes:
        """The reply as sent on the wire (RFC 5321 4.2: ``code-text`` lines, then ``code text``)."""
        code, enhanced, text = self.code, self.enhanced, self.text
        if text and "\n" not in text:  # the usual reply: one line with text
            if enhanced:
                return f"{code} {enhanced} {text}\r\n".encode()
            return f"{code} {text}\r\n".encode()
        return _multiline_bytes(code, text, enhanced)

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # type: ignore[no-untyped-def]
        """Notebooks show a reply as it looks on the wire (IPython's pretty-printer hook)."""
        printer.text(str(self))

    def __str__(self) -> str:
        """The reply's lines as sent, without CRLF: ``250-first`` ... ``250 last``."""
        return self.to_bytes().decode("utf-8").replace("\r\n", "\n").rstrip("\n")


def _multiline_bytes(code: int, text: str, enhanced: str | None) -> bytes:
    *lines, last = text.split("\n")
    if enhanced:  # on every line (RFC 2034 4)
        lines = [f"{enhanced} {line}" if line else enhanced for line in lines]
        last = f"{enhanced} {last}" if last else enhanced
    # "250" alone is a complete last line (RFC 5321 4.2); earlier lines keep their hyphen.
    end = f"{code} {last}\r\n" if last else f"{code}\r\n"
    if code == 334 and not last and not lines:
        end = "334 \r\n"  # RFC 4954 4: continue-req is "334" SP [base64], even empty
    if lines:
        end = "".join([f"{code}-{line}\r\n" for line in lines]) + end
    return end.encode()


class Event:
    """Base class of everything ``next_event()`` returns."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Command(Event):
    """A command line received by a server.

    ``verb`` is upper-cased; ``argument`` is the rest of the line as sent. ``error`` is the
    reply the protocol requires (the command must then not be accepted), or ``None`` when the
    decision belongs to the server's policy.
    """

    verb: str
    argument: str = ""
    error: Reply | None = None


@dataclass(frozen=True, slots=True)
class Hello(Command):
    """HELO or EHLO (RFC 5321 4.1.1.1). ``domain`` is the client's claimed identity."""

    domain: str = ""

    @property
    def extended(self) -> bool:
        """True for EHLO: the client asks for the server's ESMTP extensions."""
        return self.verb == "EHLO"


@dataclass(frozen=True, slots=True)
class MailFrom(Command):
    """MAIL FROM:<reverse-path> [parameters] (RFC 5321 4.1.1.2). ``address`` is '' for <>."""

    address: str = ""
    # ESMTP parameters as the client sent them (SIZE, BODY, RET ...), upper-cased keywords.
    # The server's envelope takes a copy when the command is accepted.
    params: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RcptTo(Command):
    """RCPT TO:<forward-path> [parameters] (RFC 5321 4.1.1.3)."""

    address: str = ""
    params: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DataCommand(Command):
    """DATA (RFC 5321 4.1.1.4): the client asks to send the message content."""


@dataclass(frozen=True, slots=True)
class Reset(Command):
    """RSET (RFC 5321 4.1.1.5): abort the current transaction."""


@dataclass(frozen=True, slots=True)
class Verify(Command):
    """VRFY <string> (RFC 5321 4.1.1.6): ask whether a mailbox exists."""


@dataclass(frozen=True, slots=True)
class Expand(Command):
    """EXPN <string> (RFC 5321 4.1.1.7): ask for the members of a mailing list."""


@dataclass(frozen=True, slots=True)
class Help(Command):
    """HELP [string] (RFC 5321 4.1.1.8)."""


@dataclass(frozen=True, slots=True)
class Noop(Command):
    """NOOP (RFC 5321 4.1.1.9): do nothing, reply 250."""


@dataclass(frozen=True, slots=True)
class Quit(Command):
    """QUIT (RFC 5321 4.1.1.10): the server replies 221 and closes."""


@dataclass(frozen=True, slots=True)
class Auth(Command):
    """AUTH mechanism [initial-response] (RFC 4954 4). ``argument`` keeps the mechanism only;
    the initial response (credentials) is kept apart and never shown."""

    mechanism: str = ""
    initial: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class AuthResponse(Event):
    """A client's line answering a 334 challenge during AUTH (RFC 4954 4): credentials."""

    line: str = field(repr=False)
    error: Reply | None = None  # the line itself is unusable (too long, bare LF ...)


@dataclass(frozen=True, slots=True)
class StartTls(Command):
    """STARTTLS (RFC 3207): after a 220 reply, the connection continues under TLS."""


@dataclass(frozen=True, slots=True)
class Bdat(Command):
    """BDAT chunk-size [LAST] (RFC 3030 2), returned once its ``size`` octets have arrived.

    ``chunk`` holds them (empty when the command is refused: they were read and discarded).
    On an acceptable ``last`` chunk, ``message`` is the whole message, chunks joined, for
    the server to accept with 250 (the message is then delivered) or refuse.
    """

    size: int | None = None  # None: the chunk size could not be read (the line gets 501)
    last: bool = False
    chunk: bytes = field(default=b"", repr=False)
    message: MessageReceived | None = field(default=None, repr=False)
    # CRLFs in the chunk, when ``chunk`` holds only its start (an observer keeps no more).
    line_count: int | None = None


@dataclass(frozen=True, slots=True)
class UnknownCommand(Command):
    """A line that is not a command this server implements (error: 500 or 502)."""


@dataclass(frozen=True, slots=True)
class MessageReceived(Event):
    """The message content, complete after ``<CRLF>.<CRLF>`` (RFC 5321 4.1.1.4).

    ``content`` is the message with dot-stuffing removed and lines ending in CRLF. When
    ``error`` is set the message is not acceptable (an overlong line, bare LF/CR under the
    ``reject`` setting, over the size limit) and ``content`` holds only what was kept before
    the problem; it must be rejected with ``error`` or another 4xx/5xx reply.
    """

    content: bytes
    size: int
    line_count: int
    error: Reply | None = None


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The peer closed its side of the connection. ``during_data`` marks a message cut short,
    inside the content of ``data_verb`` (``DATA``, or ``BDAT`` in the middle of a chunk)."""

    during_data: bool = False
    data_verb: str = "DATA"


@dataclass(frozen=True, slots=True)
class ReplyReceived(Event):
    """A client received a complete (possibly multi-line) reply to the command ``verb``.

    ``verb`` is ``CONNECT`` for the greeting and ``DATA-END`` for the reply after the final
    dot; ``UNSOLICITED`` for a reply that answers no command (a 421 before closing).
    """

    verb: str
    reply: Reply


class _Sentinel(Event):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA = _Sentinel("NEED_DATA")
"""``next_event()`` needs more bytes before it can return another event."""

PAUSED = _Sentinel("PAUSED")
"""``next_event()`` waits for this side to send a reply first (the greeting, or the reply
owed to the last command event). RFC 5321 replies come in command order, so a server answers
one command before it reads the next (RFC 2920 3.1)."""
