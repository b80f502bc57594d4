"""Command syntax: from one command line to a command event (RFC 5321 4.1.1, 4.1.2, 4.1.3).

Everything here is about the *text* of one line. Whether the command is allowed at this point of
the session is the state machine's business (:mod:`smtplab.protocol.states`); whether the server
wants the address is the policy's.

Two leniencies, both common in deployed servers and both documented: the verb is
case-insensitive (as 2.4 requires) and spaces after ``FROM:``/``TO:`` are tolerated (4.1.2
forbids them, Postfix and aiosmtpd accept them). Everything else follows the 4.1.2 grammar.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from smtplab.protocol import dsn
from smtplab.protocol.chunking import parse_bdat
from smtplab.protocol.events import (
    Auth,
    Bdat,
    Command,
    DataCommand,
    Expand,
    Hello,
    Help,
    MailFrom,
    Noop,
    Quit,
    RcptTo,
    Reply,
    Reset,
    StartTls,
    UnknownCommand,
    Verify,
)

# RFC 5321 4.1.2, extended to UTF-8 by RFC 6531 3.3 (any non-ASCII character is allowed in
# atext and in sub-domains; whether it may be used is decided by the SMTPUTF8 parameter).
_UTF8 = "\u0080-\U0010ffff"
_ATEXT = rf"[A-Za-z0-9!#$%&'*+\-/=?^_`{{|}}~{_UTF8}]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8}]|\\[\x20-\x7e])*"'
_LET_DIG = rf"[A-Za-z0-9{_UTF8}]"
_SUB_DOMAIN = rf"{_LET_DIG}(?:[A-Za-z0-9\-{_UTF8}]*{_LET_DIG})?"
_DOMAIN = rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*"
_ADDRESS_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"
_MAILBOX = rf"(?:{_DOT_STRING}|{_QUOTED})@(?:{_DOMAIN}|{_ADDRESS_LITERAL})"
_ADL = rf"@{_DOMAIN}(?:,@{_DOMAIN})*:"  # a source route, ignored as 4.1.1.3 and C allow

MAILBOX = re.compile(_MAILBOX)
DOMAIN_OR_LITERAL = re.compile(rf"(?:{_DOMAIN}|{_ADDRESS_LITERAL})")
_PATH = re.compile(rf"<(?:{_ADL})?({_MAILBOX})>")
_PARAM = re.compile(r"([A-Za-z0-9][A-Za-z0-9\-]*)(?:=([\x21-\x3c\x3e-\x7e]+))?")

#: Commands RFC 5321 and its extensions define that this engine knows but does not implement;
#: they get 502 (not implemented) rather than 500 (not recognised), as 4.2.4 asks.
KNOWN_UNIMPLEMENTED = frozenset(
    {"SEND", "SOML", "SAML", "TURN", "ETRN", "ATRN", "BDAT", "STARTTLS", "AUTH", "XCLIENT"}
)

#: Every command word of RFC 5321 and the extensions a client may use, known or not to this
#: engine: what a command line may start with.
COMMAND_VERBS = KNOWN_UNIMPLEMENTED | frozenset(
    {"EHLO", "HELO", "LHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "EXPN",
     "HELP", "XFORWARD"}
)  # fmt: skip

#: ESMTP parameters and the EHLO keyword that must be advertised for each (RFC 5321 4.1.1.11).
MAIL_PARAMETERS = {
    "SIZE": "SIZE",  # RFC 1870
    "BODY": "8BITMIME",  # RFC 6152
    "SMTPUTF8": "SMTPUTF8",  # RFC 6531
    "RET": "DSN",  # RFC 3461
    "ENVID": "DSN",
    "AUTH": "AUTH",  # RFC 4954
}
RCPT_PARAMETERS = {"NOTIFY": "DSN", "ORCPT": "DSN"}


def syntax_error(text: str) -> Reply:
    return Reply(501, text, "5.5.4")


def printable(text: str) -> str:
    """``text`` safe to echo in a reply: control characters shown as ``\\xNN``."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def hide_credentials(verb: str, argument: str) -> str:
    """AUTH's argument with everything after the mechanism replaced by ``***`` (RFC 4954)."""
    if verb.upper() != "AUTH":
        return argument
    parts = argument.split(None, 1)
    if not parts:
        return argument
    return f"{parts[0]} ***" if len(parts) > 1 else parts[0]


def redact_command(verb: str, argument: str) -> tuple[str, str]:
    """``(verb, argument)`` with AUTH credentials replaced by ``***``, whatever the spacing.

    A line like ``AUTH<TAB>PLAIN<TAB><blob>`` has no space, so it arrives whole as the verb:
    it is cut at its first whitespace too.
    """
    words = verb.split(None, 1)
    if len(words) > 1 and words[0].upper() == "AUTH":
        return "AUTH", hide_credentials("AUTH", f"{words[1]} {argument}".strip())
    return verb, hide_credentials(verb, argument)


def command_verb(word: str) -> str:
    """The verb of a command line as it is recorded: upper-cased when it is an SMTP command
    (verbs are case-insensitive, RFC 5321 2.4), else as sent, so that a message line sent as a
    command (``Subject: hi`` after a refused DATA) reads as it was written."""
    upper = word.upper()
    return upper if upper in COMMAND_VERBS else word


def split_command(line: str) -> tuple[str, str]:
    """``"mail FROM:<a@b>"`` -> ``("MAIL", "FROM:<a@b>")``; see :func:`command_verb`."""
    verb, _, argument = line.partition(" ")
    return command_verb(verb), argument


def decode_line(raw: bytes) -> tuple[str, bool]:
    """The line as text, and whether it was valid UTF-8 (RFC 6531 3.3 requires it)."""
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), False


def parse_command(
    line: str,
    extensions: Collection[str],
    extended: bool,
    max_size: int | None,
    utf8: bool = False,
) -> Command:
    """Build the command event for ``line``, with ``error`` set when its syntax is wrong.

    ``extensions`` are the EHLO keywords the server advertises; ``extended`` tells whether this
    session said EHLO (only then may the client use ESMTP parameters, RFC 5321 4.1.1.11);
    ``utf8`` whether the current transaction's MAIL carried SMTPUTF8, which allows UTF-8 in
    every forward-path of the transaction (RFC 6531 3.4).
    """
    verb, argument = split_command(line)
    error: Reply | None
    if verb in ("EHLO", "HELO"):
        domain = argument.strip()
        if not domain or " " in domain or not DOMAIN_OR_LITERAL.fullmatch(domain):
            error = syntax_error(f"Syntax: {verb} <domain or address literal>")
            return Hello(verb, argument, error, domain=domain)
        return Hello(verb, argument, domain=domain)
    if verb == "MAIL":
        return _parse_mail_or_rcpt(
            MailFrom, "FROM:", argument, extensions, extended, max_size, utf8
        )
    if verb == "RCPT":
        return _parse_mail_or_rcpt(RcptTo, "TO:", argument, extensions, extended, max_size, utf8)
    if verb in _NO_ARGUMENT:
        error = syntax_error(f"Syntax: {verb} (no argument)") if argument.strip() else None
        return _NO_ARGUMENT[verb](verb, argument, error)
    if verb in _NEEDS_ARGUMENT:
        error = syntax_error(f"Syntax: {verb} <string>") if not argument.strip() else None
        return _NEEDS_ARGUMENT[verb](verb, argument, error)
    if verb == "NOOP":
        return Noop(verb, argument)  # "any parameter string specified" is ignored (4.1.1.9)
    if verb == "HELP":
        return Help(verb, argument)
    if verb == "AUTH" and "AUTH" in extensions:
        mechanism, _, initial = argument.strip().partition(" ")
        shown = f"{mechanism} ***" if initial else mechanism  # credentials stay out of sight
        if not mechanism:
            return Auth(verb, shown, syntax_error("Syntax: AUTH mechanism [initial-response]"))
        return Auth(verb, shown, mechanism=mechanism.upper(), initial=initial.strip() or None)
    if verb == "STARTTLS" and "STARTTLS" in extensions:
        error = syntax_error("Syntax: STARTTLS (no argument)") if argument.strip() else None
        return StartTls(verb, argument, error)  # RFC 3207 4
    if verb == "BDAT" and "CHUNKING" in extensions:
        chunk = parse_bdat(argument)
        if chunk is None:
            return Bdat(verb, argument, syntax_error("Syntax: BDAT chunk-size [LAST] (RFC 3030)"))
        return Bdat(verb, argument, size=chunk[0], last=chunk[1])
    if verb in KNOWN_UNIMPLEMENTED:
        shown = hide_credentials(verb, argument)  # an AUTH the server does not offer, too
        return UnknownCommand(verb, shown, Reply(502, "Command not implemented", "5.5.1"))
    if not verb:
        return UnknownCommand(verb, argument, Reply(500, "Syntax error: empty command", "5.5.2"))
    return UnknownCommand(verb, argument, Reply(500, "Command unrecognized", "5.5.2"))


_NO_ARGUMENT: dict[str, type[Command]] = {"DATA": DataCommand, "RSET": Reset, "QUIT": Quit}
_NEEDS_ARGUMENT: dict[str, type[Command]] = {"VRFY": Verify, "EXPN": Expand}


def _parse_mail_or_rcpt(
    kind: type[MailFrom] | type[RcptTo],
    prefix: str,
    argument: str,
    extensions: Collection[str],
    extended: bool,
    max_size: int | None,
    utf8: bool,
) -> Command:
    verb = "MAIL" if kind is MailFrom else "RCPT"
    if argument[: len(prefix)].upper() != prefix:
        return kind(verb, argument, syntax_error(f"Syntax: {verb} {prefix}<address> [parameters]"))
    rest = argument[len(prefix) :].lstrip(" ")
    path, param_text = _split_path(rest)
    address, error = _parse_path(kind, path)
    if error is None:
        params, error = _parse_params(kind, param_text, extensions, extended, max_size)
    else:
        params = {}
    if kind is MailFrom:
        utf8 = "SMTPUTF8" in params
    if error is None and not address.isascii() and not utf8:
        error = Reply(553, "Non-ASCII address requires the SMTPUTF8 parameter", "5.6.7")
    return kind(verb, argument, error, address=address, params=params)


def _split_path(text: str) -> tuple[str, str]:
    """Split ``<path> params`` at the ``>`` that closes the path (quotes may hold spaces)."""
    if not text.startswith("<"):
        path, _, params = text.partition(" ")
        return path, params
    if '"' not in text:  # the usual case: no quoted local part, so the first ">" closes
        end = text.find(">") + 1
        if end and text[end : end + 1] == " ":
            return text[:end], text[end + 1 :]
        if end == len(text):
            return text, ""
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = quoted
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            path, params = text[: index + 1], text[index + 1 :]
            if params and not params.startswith(" "):
                return text, ""  # "<a@b>junk": let the path check reject it
            return path, params[1:]
    return text, ""


def _parse_path(kind: type[MailFrom] | type[RcptTo], path: str) -> tuple[str, Reply | None]:
    if kind is MailFrom and path == "<>":
        return "", None  # the null reverse-path, for bounces (4.5.5)
    # "Postmaster" without a domain must be accepted as a recipient (4.1.1.3, 4.5.1).
    if kind is RcptTo and path.lower() == "<postmaster>":
        return "Postmaster", None
    if not (path.startswith("<") and path.endswith(">")):
        verb, prefix = ("MAIL", "FROM:") if kind is MailFrom else ("RCPT", "TO:")
        return "", syntax_error(f"Syntax: {verb} {prefix}<address> (angle brackets required)")
    match = _PATH.fullmatch(path)
    if match is None:
        if kind is MailFrom:
            return path[1:-1], Reply(553, "Bad sender address syntax", "5.1.7")
        return path[1:-1], Reply(553, "Bad destination mailbox address syntax", "5.1.3")
    return match.group(1), None


def _parse_params(
    kind: type[MailFrom] | type[RcptTo],
    text: str,
    extensions: Collection[str],
    extended: bool,
    max_size: int | None,
) -> tuple[dict[str, str | None], Reply | None]:
    params: dict[str, str | None] = {}
    if not text:  # the usual MAIL and RCPT: no parameters, nothing to check
        return params, None
    known = MAIL_PARAMETERS if kind is MailFrom else RCPT_PARAMETERS
    for word in text.split(" "):
        if not word:
            continue
        match = _PARAM.fullmatch(word)
        if match is None:
            return params, syntax_error(f"Bad parameter syntax: {printable(word[:40])}")
        name, value = match.group(1).upper(), match.group(2)
        if not extended or known.get(name) not in extensions:
            # 555: "MAIL FROM/RCPT TO parameters not recognized or not implemented" (4.2.3)
            return params, Reply(555, f"Parameter {name} not recognized", "5.5.4")
        if name in params:  # e.g. RFC 3461 4: "MUST NOT appear more than once"
            return params, syntax_error(f"Parameter {name} given twice")
        params[name] = value
    return params, _check_params(params, max_size, extensions)


def _check_params(
    params: dict[str, str | None], max_size: int | None, extensions: Collection[str]
) -> Reply | None:
    if "SIZE" in params:
        size = params["SIZE"]
        if size is None or not size.isdigit():
            return syntax_error("Bad SIZE parameter: SIZE=<number of octets> (RFC 1870)")
        if max_size is not None and int(size) > max_size:
            return Reply(552, f"Message size exceeds fixed limit of {max_size} octets", "5.3.4")
    if "BODY" in params:
        body = (params["BODY"] or "").upper()
        if body == "BINARYMIME" and "BINARYMIME" not in extensions:
            return Reply(555, "BODY=BINARYMIME is not offered (RFC 3030 3)", "5.5.4")
        if body not in ("7BIT", "8BITMIME", "BINARYMIME"):
            return syntax_error("Bad BODY parameter: BODY=7BIT or BODY=8BITMIME (RFC 6152)")
    if "SMTPUTF8" in params and params["SMTPUTF8"] is not None:
        return syntax_error("SMTPUTF8 takes no value (RFC 6531)")
    problem = dsn.check_mail(params) or dsn.check_rcpt(params)
    return syntax_error(problem) if problem else None
