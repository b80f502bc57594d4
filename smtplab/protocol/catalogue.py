"""The catalogue as data: RFC 5321 reply codes, RFC 3463 enhanced status codes, and commands.

Each basic code has its meaning, its source and what a client should do with it; each enhanced
code its meaning and source; each command (and pseudo-step) what it does, in one line, with the
section that says so. :mod:`smtplab.protocol.codes` looks things up and explains replies with
these tables (its docstring says where the codes come from). Pure data: no I/O, standard
library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class CodeInfo:
    """One basic (three-digit) reply code: what it means, where it is defined, what to do."""

    code: int
    """The reply code, e.g. ``250``."""
    meaning: str
    """One line of plain English, e.g. ``"Requested mail action okay, completed"``."""
    rfc: str
    """The RFC and section that define it, e.g. ``"RFC 5321 4.2.3"``."""
    advice: str
    """What a client should do when it gets this reply."""


@dataclass(frozen=True)
class EnhancedInfo:
    """One enhanced status code ``class.subject.detail`` (RFC 3463)."""

    code: str
    """The code, e.g. ``"5.1.1"`` (``"X.1.XXX"``-style for class/subject tables)."""
    meaning: str
    """Its title in the RFC / IANA registry, e.g. ``"Bad destination mailbox address"``."""
    rfc: str
    """The RFC and section that define it, e.g. ``"RFC 3463 3.2"``."""


# --- basic reply codes -------------------------------------------------------------------

#: First digit of a reply code -> what kind of reply it is (RFC 5321 4.2.1).
CLASS_NAMES = {
    2: "positive completion",
    3: "positive intermediate",
    4: "transient negative",
    5: "permanent negative",
}

#: First digit -> what a client should do with such a reply.
CLASS_ADVICE = {
    2: "success: the action was done; go on with the next command",
    3: "intermediate: the server waits for more input; send what it asks for next",
    4: "transient: keep the message and retry later; the same command may then succeed",
    5: "permanent: do not retry this as is; fix the command or bounce/notify the sender",
}

#: Second digit -> what the reply is about (RFC 5321 4.2.1).
CATEGORIES = {
    0: "about syntax (x0z)",
    1: "giving information (x1z)",
    2: "about the connection (x2z)",
    3: "in an unspecified category (x3z)",
    4: "in an unspecified category (x4z)",
    5: "about the mail system (x5z)",
}

_N = "RFC 5321 4.2.3"  # the numeric list of reply codes

# code: (meaning, rfc, advice)
_REPLY_TABLE: dict[int, tuple[str, str, str]] = {
    211: (
        "System status, or system help reply",
        _N,
        "informational: show the text to the user; nothing to retry",
    ),
    214: (
        "Help message (how to use the server or what a non-standard command means; "
        "useful only to a human)",
        _N,
        "informational: show the text to the user; nothing to retry",
    ),
    220: (
        "<domain> Service ready",
        _N,
        "success: the server is ready; send EHLO (after STARTTLS, 220 means: start the TLS "
        "handshake now, RFC 3207 4)",
    ),
    221: (
        "<domain> Service closing transmission channel",
        _N,
        "success: the session is over (the normal answer to QUIT); close the connection",
    ),
    250: (
        "Requested mail action okay, completed",
        _N,
        "success: the action was done; go on with the next command",
    ),
    251: (
        "User not local; will forward to <forward-path>",
        f"{_N}, see 3.4",
        "success: the server accepted the recipient and will forward the message; go on",
    ),
    252: (
        "Cannot VRFY user, but will accept message and attempt delivery",
        f"{_N}, see 3.5.3",
        "success: the server will not confirm the address but will take mail for it; go on",
    ),
    354: (
        "Start mail input; end with <CRLF>.<CRLF>",
        _N,
        "intermediate: send the message now (dot-stuffed, RFC 5321 4.5.2) and end it with a "
        "line holding only '.'",
    ),
    421: (
        "<domain> Service not available, closing transmission channel (may be the reply "
        "to any command when the server must shut down)",
        _N,
        "transient: the server is closing the connection; keep the message and retry later "
        "on a new connection",
    ),
    450: (
        "Requested mail action not taken: mailbox unavailable (e.g., mailbox busy or "
        "temporarily blocked for policy reasons)",
        _N,
        "transient: keep the message and retry this recipient later (greylisting servers "
        "answer 450 or 451 to a first attempt)",
    ),
    451: (
        "Requested action aborted: local error in processing",
        _N,
        "transient: the server had a problem; keep the message and retry later",
    ),
    452: (
        "Requested action not taken: insufficient system storage",
        _N,
        "transient: retry later; after RCPT it also means 'too many recipients': send the "
        "remaining recipients in another transaction (RFC 5321 4.5.3.1.10)",
    ),
    455: (
        "Server unable to accommodate parameters",
        _N,
        "transient: the server cannot handle these MAIL/RCPT parameters just now; retry "
        "later (RFC 5321 4.1.1.11)",
    ),
    500: (
        "Syntax error, command unrecognized (may include errors such as command line too "
        "long; RFC 4954 also uses 500 5.5.6 for an AUTH line that is too long)",
        _N,
        "permanent: the server did not recognise the command or the line was too long; "
        "fix the client, do not resend it as is",
    ),
    501: (
        "Syntax error in parameters or arguments",
        _N,
        "permanent: fix the arguments (e.g. a malformed address) before trying again",
    ),
    502: (
        "Command not implemented",
        f"{_N}, see 4.2.4",
        "permanent: the server knows this command but does not implement it; do not use "
        "it with this server",
    ),
    503: (
        "Bad sequence of commands",
        _N,
        "permanent for this order: send commands in the right order (EHLO, MAIL, RCPT, "
        "DATA; RFC 5321 4.1.4)",
    ),
    504: (
        "Command parameter not implemented",
        _N,
        "permanent: drop or change the parameter this server does not implement",
    ),
    550: (
        "Requested action not taken: mailbox unavailable (e.g., mailbox not found, no "
        "access, or command rejected for policy reasons)",
        _N,
        "permanent: do not retry this recipient as is; bounce/notify the sender",
    ),
    551: (
        "User not local; please try <forward-path>",
        f"{_N}, see 3.4",
        "permanent: the server will not take mail for this address; the text may name the "
        "address to use instead (RFC 5321 3.4); otherwise bounce/notify the sender",
    ),
    552: (
        "Requested mail action aborted: exceeded storage allocation (e.g. message larger "
        "than the SIZE limit, RFC 1870 6)",
        _N,
        "permanent: do not resend the message as is; but after RCPT treat 552 like 452 "
        "'too many recipients' and retry the rest later (RFC 5321 4.5.3.1.10)",
    ),
    553: (
        "Requested action not taken: mailbox name not allowed (e.g., mailbox syntax incorrect)",
        _N,
        "permanent: fix the address; do not retry it as is",
    ),
    554: (
        'Transaction failed (or, as the connection greeting, "No SMTP service here")',
        _N,
        "permanent: do not resend as is; bounce/notify the sender (as a greeting: send QUIT "
        "and close, RFC 5321 3.1)",
    ),
    555: (
        "MAIL FROM/RCPT TO parameters not recognized or not implemented",
        f"{_N}, see 4.1.1.11",
        "permanent: drop the parameters the server did not advertise in its EHLO reply",
    ),
    # ESMTP extensions
    235: (
        "Authentication succeeded",
        "RFC 4954 6",
        "success: the client is authenticated; go on with MAIL FROM",
    ),
    334: (
        "Authentication challenge: continue the AUTH exchange (the text is a base64 "
        "challenge, possibly empty)",
        "RFC 4954 4",
        "intermediate: send the base64-encoded response, or a single '*' to cancel",
    ),
    432: (
        "A password transition is needed",
        "RFC 4954 6",
        "transient: the user must first authenticate once another way (typically PLAIN "
        "over TLS) to enable the selected mechanism; then retry",
    ),
    454: (
        "TLS not available due to temporary reason (STARTTLS), or temporary "
        "authentication failure (AUTH)",
        "RFC 3207 4; RFC 4954 6",
        "transient: retry later; never fall back to sending a password unencrypted",
    ),
    521: (
        "Host does not accept mail (sent instead of the 220 greeting)",
        "RFC 7504",
        "permanent: this host never accepts mail; do not retry it",
    ),
    530: (
        "Authentication required (AUTH), or must issue a STARTTLS command first",
        "RFC 4954 6; RFC 3207 4",
        "permanent for this command as is: authenticate (AUTH) or start TLS (STARTTLS) "
        "first, then send the command again",
    ),
    534: (
        "Authentication mechanism is too weak",
        "RFC 4954 6",
        "permanent: authenticate again with a stronger SASL mechanism",
    ),
    535: (
        "Authentication credentials invalid",
        "RFC 4954 6",
        "permanent: wrong user name or password; ask the user for new credentials instead "
        "of retrying the same ones",
    ),
    538: (
        "Encryption required for requested authentication mechanism",
        "RFC 4954 6",
        "permanent: start TLS (STARTTLS) before using this mechanism",
    ),
    556: (
        "Domain does not accept mail (e.g. the recipient domain has a null MX, RFC 7505)",
        "RFC 7504",
        "permanent: the recipient's domain never accepts mail; do not retry; bounce/notify "
        "the sender",
    ),
}

REPLY_CODES: Mapping[int, CodeInfo] = MappingProxyType(
    {code: CodeInfo(code, *row) for code, row in sorted(_REPLY_TABLE.items())}
)
"""Every registered reply code, keyed by the integer code."""


# --- enhanced status codes ---------------------------------------------------------------

ENHANCED_CLASSES: Mapping[int, EnhancedInfo] = MappingProxyType(
    {
        2: EnhancedInfo("2.XXX.XXX", "Success (the action succeeded)", "RFC 3463 2"),
        4: EnhancedInfo(
            "4.XXX.XXX", "Persistent Transient Failure (may succeed if sent later)", "RFC 3463 2"
        ),
        5: EnhancedInfo(
            "5.XXX.XXX", "Permanent Failure (will not succeed if resent as is)", "RFC 3463 2"
        ),
    }
)
"""The class sub-codes 2, 4 and 5 of RFC 3463 section 2."""

ENHANCED_SUBJECTS: Mapping[int, EnhancedInfo] = MappingProxyType(
    {
        s: EnhancedInfo(f"X.{s}.XXX", meaning, "RFC 3463 2")
        for s, meaning in enumerate(
            [
                "Other or Undefined Status",
                "Addressing Status (the sender or recipient address)",
                "Mailbox Status (the recipient's mailbox)",
                "Mail System Status (the receiving mail system)",
                "Network and Routing Status (getting the message to the next host)",
                "Mail Delivery Protocol Status (the SMTP dialogue itself)",
                "Message Content or Media Status (the message content)",
                "Security or Policy Status (security, authentication or policy)",
            ]
        )
    }
)
"""The subject sub-codes X.0 to X.7 of RFC 3463 section 2."""

# Details, defined once for every class ("X.Y.Z" -> title, rfc). RFC 3463 3.1-3.8 and the
# IANA "SMTP Enhanced Status Codes" registry (RFC 5248).
_R = "RFC 3463 "
_DETAILS: dict[str, tuple[str, str]] = {
    "X.0.0": ("Other undefined Status", _R + "3.1"),
    "X.1.0": ("Other address status", _R + "3.2"),
    "X.1.1": ("Bad destination mailbox address", _R + "3.2"),
    "X.1.2": ("Bad destination system address", _R + "3.2"),
    "X.1.3": ("Bad destination mailbox address syntax", _R + "3.2"),
    "X.1.4": ("Destination mailbox address ambiguous", _R + "3.2"),
    "X.1.5": ("Destination address valid", _R + "3.2"),
    "X.1.6": ("Destination mailbox has moved, No forwarding address", _R + "3.2"),
    "X.1.7": ("Bad sender's mailbox address syntax", _R + "3.2"),
    "X.1.8": ("Bad sender's system address", _R + "3.2"),
    "X.1.9": ("Message relayed to non-compliant mailer", "RFC 3886"),
    "X.1.10": ("Recipient address has null MX", "RFC 7505; RFC 7504"),
    "X.2.0": ("Other or undefined mailbox status", _R + "3.3"),
    "X.2.1": ("Mailbox disabled, not accepting messages", _R + "3.3"),
    "X.2.2": ("Mailbox full", _R + "3.3"),
    "X.2.3": ("Message length exceeds administrative limit", _R + "3.3"),
    "X.2.4": ("Mailing list expansion problem", _R + "3.3"),
    "X.3.0": ("Other or undefined mail system status", _R + "3.4"),
    "X.3.1": ("Mail system full", _R + "3.4"),
    "X.3.2": ("System not accepting network messages", _R + "3.4; RFC 7504"),
    "X.3.3": ("System not capable of selected features", _R + "3.4"),
    "X.3.4": ("Message too big for system", _R + "3.4"),
    "X.3.5": ("System incorrectly configured", _R + "3.4"),
    "X.3.6": ("Requested priority was changed", "RFC 6710"),
    "X.4.0": ("Other or undefined network or routing status", _R + "3.5"),
    "X.4.1": ("No answer from host", _R + "3.5"),
    "X.4.2": ("Bad connection", _R + "3.5"),
    "X.4.3": ("Directory server failure", _R + "3.5"),
    "X.4.4": ("Unable to route", _R + "3.5"),
    "X.4.5": ("Mail system congestion", _R + "3.5"),
    "X.4.6": ("Routing loop detected", _R + "3.5"),
    "X.4.7": ("Delivery time expired", _R + "3.5"),
    "X.5.0": ("Other or undefined protocol status", _R + "3.6"),
    "X.5.1": ("Invalid command", _R + "3.6"),
    "X.5.2": ("Syntax error", _R + "3.6"),
    "X.5.3": ("Too many recipients", _R + "3.6"),
    "X.5.4": ("Invalid command arguments", _R + "3.6"),
    "X.5.5": ("Wrong protocol version", _R + "3.6"),
    "X.5.6": ("Authentication Exchange line is too long", "RFC 4954 6"),
    "X.6.0": ("Other or undefined media error", _R + "3.7"),
    "X.6.1": ("Media not supported", _R + "3.7"),
    "X.6.2": ("Conversion required and prohibited", _R + "3.7"),
    "X.6.3": ("Conversion required but not supported", _R + "3.7"),
    "X.6.4": ("Conversion with loss performed", _R + "3.7"),
    "X.6.5": ("Conversion Failed", _R + "3.7"),
    "X.6.6": ("Message content not available", "RFC 4468"),
    "X.6.7": ("Non-ASCII addresses not permitted for that sender/recipient", "RFC 6531"),
    "X.6.8": ("UTF-8 string reply is required, but not permitted by the SMTP client", "RFC 6531"),
    "X.6.9": (
        "UTF-8 header message cannot be transferred to one or more recipients, so the "
        "message must be rejected",
        "RFC 6531",
    ),
    "X.6.10": (
        "Deprecated duplicate of X.6.8 (UTF-8 string reply is required, but not "
        "permitted by the SMTP client)",
        "RFC 6531",
    ),
    "X.7.0": ("Other or undefined security status", _R + "3.8"),
    "X.7.1": ("Delivery not authorized, message refused", _R + "3.8"),
    "X.7.2": ("Mailing list expansion prohibited", _R + "3.8"),
    "X.7.3": ("Security conversion required but not possible", _R + "3.8"),
    "X.7.4": ("Security features not supported", _R + "3.8"),
    "X.7.5": ("Cryptographic failure", _R + "3.8"),
    "X.7.6": ("Cryptographic algorithm not supported", _R + "3.8"),
    "X.7.7": ("Message integrity failure", _R + "3.8"),
    "X.7.8": ("Authentication credentials invalid", "RFC 4954 6"),
    "X.7.9": ("Authentication mechanism is too weak", "RFC 4954 6"),
    "X.7.10": ("Encryption Needed", "RFC 5248 2.4"),
    "X.7.11": ("Encryption required for requested authentication mechanism", "RFC 4954 6"),
    "X.7.12": ("A password transition is needed", "RFC 4954 6"),
    "X.7.13": ("User Account Disabled", "RFC 5248 2.4"),
    "X.7.14": ("Trust relationship required", "RFC 5248 2.4"),
    "X.7.15": ("Priority Level is too low", "RFC 6710"),
    "X.7.16": ("Message is too big for the specified priority", "RFC 6710"),
    "X.7.17": ("Mailbox owner has changed", "RFC 7293"),
    "X.7.18": ("Domain owner has changed", "RFC 7293"),
    "X.7.19": ("RRVS test cannot be completed", "RFC 7293"),
    "X.7.20": ("No passing DKIM signature found", "RFC 7372"),
    "X.7.21": ("No acceptable DKIM signature found", "RFC 7372"),
    "X.7.22": ("No valid author-matched DKIM signature found", "RFC 7372"),
    "X.7.23": ("SPF validation failed", "RFC 7372"),
    "X.7.24": ("SPF validation error", "RFC 7372"),
    "X.7.25": ("Reverse DNS validation failed", "RFC 7372"),
    "X.7.26": ("Multiple authentication checks failed", "RFC 7372"),
    "X.7.27": ("Sender address has null MX", "RFC 7505"),
}

ENHANCED_CODES: Mapping[str, EnhancedInfo] = MappingProxyType(
    {
        f"{cls}{key[1:]}": EnhancedInfo(f"{cls}{key[1:]}", meaning, rfc)
        for cls in (2, 4, 5)
        for key, (meaning, rfc) in _DETAILS.items()
    }
)
"""Every registered detail, under each class: ``"2.1.1"``, ``"4.1.1"`` and ``"5.1.1"``."""


#: What each command (and pseudo-step) does, and where the RFC says so: shown beside each
#: command by the step-by-step player, as :func:`smtplab.explain` is beside each reply.
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
