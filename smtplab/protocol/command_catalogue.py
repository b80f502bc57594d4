"""What each SMTP command (and pseudo-step) does, in one line, with where the RFC says so.

The companion of the reply-code catalogue: a step-by-step player shows one of these beside each
command as it shows :func:`smtplab.explain` beside each reply.
"""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "CONNECT": ("the client opens a TCP connection; the server speaks first", "RFC 5321 3.1"),
    "EHLO": (
        "the client names itself and asks which extensions the server offers",
        "RFC 5321 4.1.1.1",
    ),
    "HELO": ("the client names itself; no extensions (plain SMTP)", "RFC 5321 4.1.1.1"),
    "MAIL": ("starts a mail transaction and gives the envelope sender", "RFC 5321 4.1.1.2"),
    "RCPT": ("adds one envelope recipient; repeat for each", "RFC 5321 4.1.1.3"),
    "DATA": (
        "asks to send the message; after 354 it follows, ended by <CRLF>.<CRLF>",
        "RFC 5321 4.1.1.4",
    ),
    "DATA-END": (
        "the message content and the final dot: the server answers once, now",
        "RFC 5321 4.1.1.4",
    ),
    "BDAT": ("sends a chunk of the message, its size given up front", "RFC 3030 2"),
    "RSET": ("abandons the current transaction", "RFC 5321 4.1.1.5"),
    "VRFY": ("asks whether an address is a valid mailbox", "RFC 5321 4.1.1.6"),
    "EXPN": ("asks for the members of a mailing list", "RFC 5321 4.1.1.7"),
    "HELP": ("asks the server for help text", "RFC 5321 4.1.1.8"),
    "NOOP": (
        "does nothing; the server answers 250 (keeps the connection alive)",
        "RFC 5321 4.1.1.9",
    ),
    "QUIT": ("asks the server to close the connection", "RFC 5321 4.1.1.10"),
    "STARTTLS": ("asks to start TLS; afterwards the session starts over", "RFC 3207 4"),
    "AUTH": ("authenticates the client (credentials never shown here)", "RFC 4954 4"),
}


def describe_command(verb: str) -> str:
    """``"MAIL — starts a mail transaction ... (RFC 5321 4.1.1.2)"``, or a note for others."""
    meaning = COMMANDS.get(verb.upper())
    if meaning is None:
        return f"{verb} — not an SMTP command this catalogue knows (a server answers 500 or 502)"
    text, rfc = meaning
    return f"{verb.upper()} — {text} ({rfc})"
