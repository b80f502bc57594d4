"""Reading the catalogue: what a reply code, an enhanced status code or a command means.

Theory of operation
===================

Where the codes come from
-------------------------
*Basic reply codes* are the three digits that start every server reply. RFC 5321 section 4.2
defines them: the first digit says how the command went (4.2.1: 2 done, 3 go on, 4 failed for
now, 5 failed for good), the second digit names a category (0 syntax, 1 information,
2 connection, 5 mail system; 3 and 4 are unspecified) and the third digit refines it. Section
4.2.3 lists the codes in numeric order. A few ESMTP extensions add codes of their own: RFC 4954
(AUTH: 235, 334, 432, 454, 530, 534, 535, 538), RFC 3207 (STARTTLS: 454, 530) and RFC 7504
(521, 556). :data:`REPLY_CODES` holds all of them, each with its meaning, its source and a hint
of what a client should do.

*Enhanced status codes* (RFC 3463) look like ``class.subject.detail``, e.g. ``5.1.1``. A server
that advertises ``ENHANCEDSTATUSCODES`` in its EHLO reply puts one at the start of the text of
its 2xx, 4xx and 5xx replies (RFC 2034 section 4). The class repeats the reply's first digit
(2 success, 4 persistent transient failure, 5 permanent failure), the subject says what the
status is about (0 other, 1 addressing, 2 mailbox, 3 mail system, 4 network and routing,
5 mail delivery protocol, 6 message content, 7 security or policy) and the detail pins it
down. RFC 3463 section 3 defines each detail once for every class, written ``X.1.1``; later
RFCs added more, collected in the IANA registry that RFC 5248 set up. :data:`ENHANCED_CODES`
lists every detail under each of the classes 2, 4 and 5 (``2.1.1``, ``4.1.1``, ``5.1.1`` share
one meaning), with the RFC that defines it.

How unknown codes are described
-------------------------------
RFC 5321 4.2 tells a client to be ready for codes it has never seen and to act on their first
digit alone. :func:`describe_code` does the same: for a well-formed but unregistered code such
as 299 it builds a :class:`CodeInfo` from the digit meanings of RFC 5321 4.2.1, with a meaning
starting ``"Unregistered code:"`` and the advice of its class. :func:`describe_enhanced` builds
an unknown detail (``5.1.99``) from its class and subject. Input that is not a code at all
raises :class:`ValueError` saying what a valid code looks like.

What :func:`explain` checks
---------------------------
:func:`explain` takes a code, a reply line (or a whole multi-line wire reply), an enhanced
code alone, or any object with ``code``/``enhanced``/``text`` attributes, and returns an
:class:`Explanation` that prints as a few readable lines (and as markdown in Jupyter). It warns
when the reply breaks a rule a student should notice: the enhanced class must match the reply
class and 3xx replies carry no enhanced code (RFC 2034 section 4), every line of a multi-line
reply must carry the same code (RFC 5321 4.2.1), and unregistered codes are flagged.

Pure data and small functions: no I/O, standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ENHANCED_CLASSES",
    "ENHANCED_CODES",
    "ENHANCED_SUBJECTS",
    "REPLY_CODES",
    "CodeInfo",
    "EnhancedInfo",
    "Explanation",
    "describe_code",
    "describe_command",
    "describe_enhanced",
    "explain",
    "reply_class",
]


from smtplab.protocol.catalogue import (
    CATEGORIES,
    CLASS_ADVICE,
    CLASS_NAMES,
    COMMANDS,
    ENHANCED_CLASSES,
    ENHANCED_CODES,
    ENHANCED_SUBJECTS,
    REPLY_CODES,
    CodeInfo,
    EnhancedInfo,
)

# --- lookup functions --------------------------------------------------------------------


def _check_code(code: object) -> int:
    """Return ``code`` if it is a reply code 200-599, else raise a helpful ValueError."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise ValueError(
            f"a reply code must be an int such as 250 or 550, not {type(code).__name__} {code!r}"
        )
    if not 200 <= code <= 599:
        hint = " (SMTP has no 1yz replies, RFC 5321 4.2.1)" if 100 <= code <= 199 else ""
        raise ValueError(
            f"{code} is not an SMTP reply code{hint}: a reply code has three digits and its "
            "first digit is 2, 3, 4 or 5 (RFC 5321 4.2), e.g. 250 or 550"
        )
    return code


def reply_class(code: int) -> str:
    """Name the class of a reply code by its first digit (RFC 5321 4.2.1).

    Returns ``"positive completion"``, ``"positive intermediate"``, ``"transient negative"``
    or ``"permanent negative"`` for 2yz, 3yz, 4yz and 5yz; raises ValueError otherwise.
    """
    return CLASS_NAMES[_check_code(code) // 100]


def describe_code(code: int) -> CodeInfo:
    """Describe a basic reply code.

    A registered code comes from :data:`REPLY_CODES`. An unregistered code from 200 to 599
    (e.g. 299) is described from its digits as RFC 5321 4.2.1 defines them; its meaning starts
    with ``"Unregistered code:"`` and its advice is that of its class. Anything else (not an
    int, or outside 200-599) raises ValueError.
    """
    code = _check_code(code)
    if code in REPLY_CODES:
        return REPLY_CODES[code]
    first, second = code // 100, code // 10 % 10
    category = CATEGORIES.get(
        second,
        f"with second digit {second}, outside the 0-5 that the RFC 5321 4.2 grammar allows",
    )
    return CodeInfo(
        code=code,
        meaning=f"Unregistered code: {CLASS_NAMES[first]} reply {category}",
        rfc="RFC 5321 4.2.1",
        advice=CLASS_ADVICE[first],
    )


_ENHANCED_SHAPE = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def describe_enhanced(code: str) -> EnhancedInfo:
    """Describe an enhanced status code ``class.subject.detail`` (RFC 3463).

    A registered code comes from :data:`ENHANCED_CODES`. An unregistered one (e.g.
    ``"5.1.99"``) is described from its class and subject, with a meaning starting
    ``"Unregistered detail:"``. Malformed input (``"9.9"``, ``"6.0.0"``) raises ValueError.
    """
    example = "like '5.1.1': class 2, 4 or 5, then subject and detail of 1-3 digits (RFC 3463 2)"
    if not isinstance(code, str):
        raise ValueError(f"an enhanced status code is a string {example}, not {code!r}")
    m = _ENHANCED_SHAPE.fullmatch(code.strip())
    if m is None:
        raise ValueError(f"{code!r} is not an enhanced status code: it should look {example}")
    cls, subject, detail = m.groups()
    if cls not in ("2", "4", "5"):
        raise ValueError(f"{code!r} has class {cls}; an enhanced status code should look {example}")
    if len(subject) > 3 or len(detail) > 3:
        raise ValueError(f"{code!r} has more than 3 digits in a field; it should look {example}")
    key = f"{cls}.{int(subject)}.{int(detail)}"
    if key in ENHANCED_CODES:
        return ENHANCED_CODES[key]
    class_title = ENHANCED_CLASSES[int(cls)].meaning.split(" (")[0]
    subj = ENHANCED_SUBJECTS.get(int(subject))
    about = subj.meaning.split(" (")[0] if subj else f"unassigned subject {int(subject)}"
    return EnhancedInfo(key, f"Unregistered detail: {class_title}, {about}", "RFC 3463 2")


# --- explain -----------------------------------------------------------------------------

_VALID = (
    "valid input looks like 550, '550', '550 5.1.1 text', a multi-line reply "
    "'250-a\\r\\n250 b', '5.1.1', or an object with .code (int), .enhanced and .text"
)
_LINE = re.compile(r"(\d{3})(?:([ -])(.*)|$)", re.DOTALL)
_LEADING_ENHANCED = re.compile(r"([245]\.[0-9]{1,3}\.[0-9]{1,3})(?:[ \t]+|$)")
_ENHANCED_ALONE = re.compile(r"(\d+\.\d+\.\d+)(?:[ \t]+(.*))?", re.DOTALL)


@dataclass(frozen=True)
class Explanation:
    """What a reply means: its basic code, enhanced code, text, and any rule it breaks."""

    code: int | None
    enhanced: str | None
    text: str | None
    """The reply text without codes (lines joined by ``\\n``), or None if there was none."""
    basic: CodeInfo | None
    detail: EnhancedInfo | None
    warnings: tuple[str, ...]

    def _advice(self) -> str:
        if self.basic is not None:
            return self.basic.advice
        assert self.enhanced is not None
        return CLASS_ADVICE[int(self.enhanced[0])]

    def _head(self) -> tuple[str, str, str]:
        label = " ".join(x for x in (str(self.code or ""), self.enhanced or "") if x)
        main = self.basic or self.detail
        assert main is not None
        return label, main.meaning, main.rfc

    def __str__(self) -> str:
        label, meaning, rfc = self._head()
        lines = [f"{label} — {meaning} ({rfc})"]
        if self.basic is not None and self.detail is not None:
            d = self.detail
            lines.append(f"  {d.code}: {d.meaning} ({d.rfc})")
        if self.text:
            lines.append("  Text: " + self.text.replace("\n", "\n        "))
        lines.append(f"  Client: {self._advice()}")
        lines.extend(f"  Warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # type: ignore[no-untyped-def]
        """Plain-text displays (IPython, nbval) show the readable form, not the fields."""
        printer.text(str(self))

    def _repr_markdown_(self) -> str:
        label, meaning, rfc = self._head()
        out = [f"**{label}** — {_md(meaning)} *({rfc})*", ""]
        if self.basic is not None and self.detail is not None:
            d = self.detail
            out.append(f"- **{d.code}**: {_md(d.meaning)} *({d.rfc})*")
        if self.text:
            out.append(f"- **Text**: {_md(self.text).replace(chr(10), '<br>')}")
        out.append(f"- **Client**: {_md(self._advice())}")
        out.extend(f"- ⚠ **Warning**: {_md(w)}" for w in self.warnings)
        return "\n".join(out)


def _md(s: str) -> str:
    """Escape text for markdown: HTML-significant characters and emphasis/link markers."""
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]])", r"\\\1", s)


def _parse_wire(s: str) -> tuple[int | None, str | None, str | None, list[str]]:
    """Split a reply string into (code, enhanced, text, warnings)."""
    stripped = s.strip()
    if not stripped:
        raise ValueError(f"empty reply; {_VALID}")
    alone = _ENHANCED_ALONE.fullmatch(stripped)
    if alone is not None:
        return None, alone.group(1), alone.group(2) or None, []
    lines = [ln for ln in stripped.replace("\r\n", "\n").split("\n") if ln.strip()]
    codes: list[int] = []
    texts: list[str] = []
    enhanced: list[str] = []
    for number, line in enumerate(lines, 1):
        m = _LINE.fullmatch(line.rstrip("\r"))
        if m is None:
            if len(lines) == 1:
                raise ValueError(
                    f"{line!r} is not a reply: it neither starts with a three-digit reply code "
                    f"nor is an enhanced status code class.subject.detail; {_VALID}"
                )
            raise ValueError(
                f"line {number} ({line!r}) does not start with a three-digit reply code "
                f"followed by a space, a hyphen or nothing; {_VALID}"
            )
        codes.append(int(m.group(1)))
        text = m.group(3) or ""
        e = _LEADING_ENHANCED.match(text)
        if e is not None:
            enhanced.append(e.group(1))
            text = text[e.end() :]
        texts.append(text.strip())
    warnings: list[str] = []
    if len(set(codes)) > 1:
        warnings.append(
            f"the lines carry different codes ({', '.join(map(str, codes))}); RFC 5321 4.2.1 "
            "requires the same code on every line of a multi-line reply"
        )
    if len(set(enhanced)) > 1:
        warnings.append(
            f"the lines carry different enhanced codes ({', '.join(enhanced)}); RFC 2034 4 "
            "requires the same one on every line"
        )
    text = "\n".join(texts).strip("\n")
    return codes[-1], (enhanced[0] if enhanced else None), text or None, warnings


def explain(reply: object) -> Explanation:
    """Explain a reply: its codes, what they mean, what a client should do, what is wrong.

    ``reply`` may be an int (``550``); a string: ``"550"``, ``"550 5.1.1"``,
    ``"550 5.1.1 <nobody@example.org>: Recipient address rejected"``, an enhanced code alone
    (``"5.1.1"``) or a whole multi-line wire reply (``"250-mail.example.org\\r\\n250 SIZE 1000"``,
    whose code is the code of its lines); bytes of such a string; or any object with
    attributes ``code`` (int), ``enhanced`` (str or None) and optionally ``text``. Anything
    else raises ValueError saying what is wrong and what valid input looks like.
    """
    warnings: list[str] = []
    code: int | None
    enhanced: str | None
    text: str | None = None
    if isinstance(reply, bytes | bytearray):
        reply = bytes(reply).decode("utf-8", errors="replace")
    if isinstance(reply, bool):
        raise ValueError(f"{reply!r} is not a reply; {_VALID}")
    if isinstance(reply, int):
        code, enhanced = reply, None
    elif isinstance(reply, str):
        code, enhanced, text, warnings = _parse_wire(reply)
    elif hasattr(reply, "code"):
        code = reply.code
        enhanced = getattr(reply, "enhanced", None)
        raw_text = getattr(reply, "text", None)
        text = raw_text if isinstance(raw_text, str) and raw_text else None
        if enhanced is not None and not isinstance(enhanced, str):
            raise ValueError(f"the object's .enhanced must be a str or None, not {enhanced!r}")
    else:
        raise ValueError(f"cannot explain a {type(reply).__name__}; {_VALID}")

    try:
        basic = describe_code(code) if code is not None else None
        detail = describe_enhanced(enhanced) if enhanced is not None else None
    except ValueError as exc:
        raise ValueError(f"{exc}; {_VALID}") from None
    if detail is not None:
        enhanced = detail.code

    if basic is not None and basic.meaning.startswith("Unregistered"):
        warnings.append(
            f"{code} is not a registered reply code; RFC 5321 4.2 says a client must act on "
            "its first digit alone"
        )
    if detail is not None and detail.meaning.startswith("Unregistered"):
        warnings.append(
            f"{detail.code} is not a registered enhanced status code; it is described from "
            "its class and subject (RFC 3463 2)"
        )
    if code is not None and enhanced is not None:
        if code // 100 == 3:
            warnings.append(
                f"a {code} reply carries enhanced code {enhanced}, but 3xx replies carry none "
                "(RFC 2034 section 4)"
            )
        elif str(code // 100) != enhanced[0]:
            warnings.append(
                f"enhanced class {enhanced[0]} does not match reply class {code // 100} "
                f"(RFC 2034 section 4 requires they agree: a {code // 100}xx reply carries a "
                f"{code // 100}.X.X code)"
            )
    return Explanation(code, enhanced, text, basic, detail, tuple(warnings))


def describe_command(verb: str) -> str:
    """``"MAIL — starts a mail transaction ... (RFC 5321 4.1.1.2)"``, or a note for others."""
    meaning = COMMANDS.get(verb.upper())
    if meaning is None:
        return f"{verb} — not an SMTP command this catalogue knows (a server answers 500 or 502)"
    text, rfc = meaning
    return f"{verb.upper()} — {text} ({rfc})"
