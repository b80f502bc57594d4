"""Tests for smtplab.protocol.codes: the reply-code catalogue and explain().

Each table names the RFC section it checks.
"""

from __future__ import annotations

import dataclasses
import re
from types import SimpleNamespace

import pytest

from smtplab.protocol.codes import (
    ENHANCED_CLASSES,
    ENHANCED_CODES,
    ENHANCED_SUBJECTS,
    REPLY_CODES,
    CodeInfo,
    EnhancedInfo,
    Explanation,
    describe_code,
    describe_enhanced,
    explain,
    reply_class,
)

# --- RFC 5321 4.2.3: reply codes in numeric order -----------------------------------------

# (code, a fragment of the RFC 5321 4.2.3 text) for every code that section lists.
RFC5321_4_2_3 = [
    (211, "System status, or system help reply"),
    (214, "Help message"),
    (220, "<domain> Service ready"),
    (221, "<domain> Service closing transmission channel"),
    (250, "Requested mail action okay, completed"),
    (251, "User not local; will forward to <forward-path>"),
    (252, "Cannot VRFY user, but will accept message and attempt delivery"),
    (354, "Start mail input; end with <CRLF>.<CRLF>"),
    (421, "<domain> Service not available, closing transmission channel"),
    (450, "Requested mail action not taken: mailbox unavailable"),
    (451, "Requested action aborted: local error in processing"),
    (452, "Requested action not taken: insufficient system storage"),
    (455, "Server unable to accommodate parameters"),
    (500, "Syntax error, command unrecognized"),
    (501, "Syntax error in parameters or arguments"),
    (502, "Command not implemented"),
    (503, "Bad sequence of commands"),
    (504, "Command parameter not implemented"),
    (550, "Requested action not taken: mailbox unavailable"),
    (551, "User not local; please try <forward-path>"),
    (552, "Requested mail action aborted: exceeded storage allocation"),
    (553, "Requested action not taken: mailbox name not allowed"),
    (554, "Transaction failed"),
    (555, "MAIL FROM/RCPT TO parameters not recognized or not implemented"),
]


def test_rfc5321_4_2_3_table_is_complete() -> None:
    """RFC 5321 4.2.3 lists exactly 24 codes; the table above must not silently shrink."""
    assert len(RFC5321_4_2_3) == 24
    assert {c for c, _ in RFC5321_4_2_3} <= set(REPLY_CODES)


@pytest.mark.parametrize(("code", "fragment"), RFC5321_4_2_3)
def test_rfc5321_4_2_3_code_present_with_rfc(code: int, fragment: str) -> None:
    info = REPLY_CODES[code]
    assert info.code == code
    assert fragment in info.meaning
    assert info.rfc.startswith("RFC 5321 4.2.3")
    assert info.advice
    assert describe_code(code) is info


@pytest.mark.parametrize(
    ("code", "section"),
    [(251, "3.4"), (551, "3.4"), (252, "3.5.3"), (502, "4.2.4"), (555, "4.1.1.11")],
)
def test_rfc5321_cross_references(code: int, section: str) -> None:
    """RFC 5321 4.2.3 points 251/551 to 3.4, 252 to 3.5.3, 502 to 4.2.4; 555 is 4.1.1.11."""
    assert REPLY_CODES[code].rfc == f"RFC 5321 4.2.3, see {section}"


# --- ESMTP codes: RFC 4954 (AUTH), RFC 3207 (STARTTLS), RFC 7504 -------------------------

ESMTP = [
    (235, "Authentication succeeded", ["RFC 4954 6"]),
    (334, "challenge", ["RFC 4954 4"]),
    (432, "A password transition is needed", ["RFC 4954 6"]),
    (454, "TLS not available", ["RFC 3207 4", "RFC 4954 6"]),
    (454, "temporary authentication failure", ["RFC 4954 6"]),
    (530, "Authentication required", ["RFC 4954 6", "RFC 3207 4"]),
    (530, "STARTTLS", ["RFC 3207 4"]),
    (534, "Authentication mechanism is too weak", ["RFC 4954 6"]),
    (535, "Authentication credentials invalid", ["RFC 4954 6"]),
    (538, "Encryption required for requested authentication mechanism", ["RFC 4954 6"]),
    (500, "AUTH line that is too long", ["RFC 5321 4.2.3"]),
    (521, "Host does not accept mail", ["RFC 7504"]),
    (556, "Domain does not accept mail", ["RFC 7504"]),
]


@pytest.mark.parametrize(("code", "fragment", "rfcs"), ESMTP)
def test_esmtp_codes(code: int, fragment: str, rfcs: list[str]) -> None:
    info = describe_code(code)
    assert fragment in info.meaning
    for rfc in rfcs:
        assert rfc in info.rfc


# --- advice follows the class (RFC 5321 4.2.1) -------------------------------------------


@pytest.mark.parametrize(
    ("first", "word"), [(3, "intermediate"), (4, "transient"), (5, "permanent")]
)
def test_advice_names_the_class(first: int, word: str) -> None:
    """RFC 5321 4.2.1: 4yz may succeed if repeated, 5yz should not be repeated as is."""
    codes = [c for c in REPLY_CODES if c // 100 == first]
    assert len(codes) >= 2
    for code in codes:
        assert REPLY_CODES[code].advice.startswith(word), code


def test_transient_and_permanent_advice_differ() -> None:
    assert "retry later" in REPLY_CODES[451].advice
    assert "do not retry" in REPLY_CODES[550].advice
    # RFC 5321 4.5.3.1.10: a 552 after RCPT is really "too many recipients" (452).
    assert "4.5.3.1.10" in REPLY_CODES[552].advice
    assert "452" in REPLY_CODES[552].advice


def test_every_reply_entry_is_consistent_and_frozen() -> None:
    for code, info in REPLY_CODES.items():
        assert info.code == code and 200 <= code <= 599
        assert re.match(r"RFC \d{4}", info.rfc)
        assert info.meaning and info.advice
    with pytest.raises(dataclasses.FrozenInstanceError):
        REPLY_CODES[250].meaning = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        REPLY_CODES[299] = REPLY_CODES[250]  # type: ignore[index]


# --- unknown and malformed basic codes (RFC 5321 4.2, 4.2.1) ------------------------------


@pytest.mark.parametrize(
    ("code", "klass", "category"),
    [
        (299, "positive completion", "unspecified"),  # x9z: outside the grammar
        (209, "positive completion", "syntax"),
        (259, "positive completion", "mail system"),
        (317, "positive intermediate", "information"),
        (429, "transient negative", "connection"),
        (559, "permanent negative", "mail system"),
    ],
)
def test_unregistered_code_built_from_digits(code: int, klass: str, category: str) -> None:
    info = describe_code(code)
    assert code not in REPLY_CODES
    assert info.code == code
    assert info.meaning.startswith("Unregistered code:")
    assert klass in info.meaning
    if code == 299:
        assert "0-5" in info.meaning  # RFC 5321 4.2 Reply-code grammar: second digit 0-5
    else:
        assert category in info.meaning
    assert info.rfc == "RFC 5321 4.2.1"
    assert info.advice.startswith(
        {2: "success", 3: "intermediate", 4: "transient", 5: "permanent"}[code // 100]
    )


@pytest.mark.parametrize("bad", [0, 42, 99, 150, 199, 600, 1000, -550, True, "550", 55.0, None])
def test_malformed_code_raises(bad: object) -> None:
    with pytest.raises(ValueError, match=r"250|550") as exc:
        describe_code(bad)  # type: ignore[arg-type]
    if bad == 150:
        assert "1yz" in str(exc.value)


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (220, "positive completion"),
        (299, "positive completion"),
        (354, "positive intermediate"),
        (334, "positive intermediate"),
        (451, "transient negative"),
        (554, "permanent negative"),
    ],
)
def test_reply_class(code: int, name: str) -> None:
    """RFC 5321 4.2.1: the first digit names the class."""
    assert reply_class(code) == name


@pytest.mark.parametrize("bad", [150, 600, 42])
def test_reply_class_rejects_non_codes(bad: int) -> None:
    with pytest.raises(ValueError, match="reply code"):
        reply_class(bad)


# --- RFC 3463 2: classes and subjects ------------------------------------------------------

SUBJECTS = [
    (0, "Other or Undefined Status"),
    (1, "Addressing Status"),
    (2, "Mailbox Status"),
    (3, "Mail System Status"),
    (4, "Network and Routing Status"),
    (5, "Mail Delivery Protocol Status"),
    (6, "Message Content or Media Status"),
    (7, "Security or Policy Status"),
]


@pytest.mark.parametrize(("subject", "title"), SUBJECTS)
def test_subject_resolves(subject: int, title: str) -> None:
    """RFC 3463 2 defines subjects X.0 to X.7; each has an X.Y.0 detail in RFC 3463 3.x."""
    assert ENHANCED_SUBJECTS[subject].meaning.startswith(title)
    assert ENHANCED_SUBJECTS[subject].rfc == "RFC 3463 2"
    for cls in "245":
        known = describe_enhanced(f"{cls}.{subject}.0")
        assert known.code == f"{cls}.{subject}.0"
        assert not known.meaning.startswith("Unregistered")
        assert known.rfc == f"RFC 3463 3.{subject + 1}"
        unknown = describe_enhanced(f"{cls}.{subject}.999")
        assert unknown.meaning.startswith("Unregistered detail:")
        assert title in unknown.meaning


@pytest.mark.parametrize(
    ("cls", "title"),
    [(2, "Success"), (4, "Persistent Transient Failure"), (5, "Permanent Failure")],
)
def test_classes(cls: int, title: str) -> None:
    assert ENHANCED_CLASSES[cls].meaning.startswith(title)
    assert title in describe_enhanced(f"{cls}.1.99").meaning


def test_unassigned_subject_is_described_not_rejected() -> None:
    info = describe_enhanced("4.9.1")
    assert info.meaning == "Unregistered detail: Persistent Transient Failure, unassigned subject 9"


# --- known details: RFC 3463 3.1-3.8 and the IANA registry -------------------------------

DETAILS = [
    ("2.0.0", "Other undefined Status", "RFC 3463 3.1"),
    ("2.1.5", "Destination address valid", "RFC 3463 3.2"),
    ("5.1.1", "Bad destination mailbox address", "RFC 3463 3.2"),
    ("5.1.2", "Bad destination system address", "RFC 3463 3.2"),
    ("5.1.3", "Bad destination mailbox address syntax", "RFC 3463 3.2"),
    ("5.1.8", "Bad sender's system address", "RFC 3463 3.2"),
    ("5.1.9", "Message relayed to non-compliant mailer", "RFC 3886"),
    ("5.1.10", "Recipient address has null MX", "RFC 7505"),
    ("4.2.2", "Mailbox full", "RFC 3463 3.3"),
    ("5.2.3", "Message length exceeds administrative limit", "RFC 3463 3.3"),
    ("4.3.2", "System not accepting network messages", "RFC 3463 3.4"),
    ("5.3.4", "Message too big for system", "RFC 3463 3.4"),
    ("4.4.1", "No answer from host", "RFC 3463 3.5"),
    ("4.4.7", "Delivery time expired", "RFC 3463 3.5"),
    ("5.5.1", "Invalid command", "RFC 3463 3.6"),
    ("4.5.3", "Too many recipients", "RFC 3463 3.6"),
    ("5.5.6", "Authentication Exchange line is too long", "RFC 4954 6"),
    ("5.6.1", "Media not supported", "RFC 3463 3.7"),
    ("5.6.6", "Message content not available", "RFC 4468"),
    ("5.6.7", "Non-ASCII addresses not permitted for that sender/recipient", "RFC 6531"),
    ("5.6.8", "UTF-8 string reply is required, but not permitted by the SMTP client", "RFC 6531"),
    ("5.7.0", "Other or undefined security status", "RFC 3463 3.8"),
    ("5.7.1", "Delivery not authorized, message refused", "RFC 3463 3.8"),
    ("4.7.1", "Delivery not authorized, message refused", "RFC 3463 3.8"),
    ("5.7.7", "Message integrity failure", "RFC 3463 3.8"),
    ("5.7.8", "Authentication credentials invalid", "RFC 4954 6"),
    ("5.7.9", "Authentication mechanism is too weak", "RFC 4954 6"),
    ("5.7.10", "Encryption Needed", "RFC 5248"),
    ("5.7.11", "Encryption required for requested authentication mechanism", "RFC 4954 6"),
    ("4.7.12", "A password transition is needed", "RFC 4954 6"),
    ("5.7.13", "User Account Disabled", "RFC 5248"),
    ("5.7.17", "Mailbox owner has changed", "RFC 7293"),
    ("5.7.23", "SPF validation failed", "RFC 7372"),
    ("5.7.26", "Multiple authentication checks failed", "RFC 7372"),
    ("5.7.27", "Sender address has null MX", "RFC 7505"),
]


@pytest.mark.parametrize(("code", "meaning", "rfc"), DETAILS)
def test_known_detail(code: str, meaning: str, rfc: str) -> None:
    info = describe_enhanced(code)
    assert info.code == code
    assert info.meaning == meaning
    assert info.rfc.startswith(rfc)
    assert ENHANCED_CODES[code] is info


def test_details_are_expanded_for_every_class() -> None:
    """RFC 3463 defines each detail once as X.Y.Z; the table lists it under 2, 4 and 5."""
    assert len(ENHANCED_CODES) % 3 == 0 and len(ENHANCED_CODES) >= 3 * 70
    for key, info in ENHANCED_CODES.items():
        assert re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", key) and info.code == key
        assert re.match(r"RFC \d{4}", info.rfc)
        rest = key[1:]
        meanings = {ENHANCED_CODES[f"{c}{rest}"].meaning for c in "245"}
        assert meanings == {info.meaning}


def test_leading_zeros_are_normalised() -> None:
    """RFC 3463 2: subject and detail are 1*3digit, so 5.01.001 is 5.1.1."""
    assert describe_enhanced("5.01.001") is ENHANCED_CODES["5.1.1"]


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("9.9", "not an enhanced status code"),
        ("6.0.0", "class 6"),
        ("3.1.1", "class 3"),
        ("5.1", "not an enhanced"),
        ("5.1.1.1", "not an enhanced"),
        ("5.1000.1", "3 digits"),
        ("a.b.c", "not an enhanced"),
        ("", "not an enhanced"),
        ("5.1.1x", "not an enhanced"),
    ],
)
def test_malformed_enhanced_raises(bad: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)) as exc:
        describe_enhanced(bad)
    assert "'5.1.1'" in str(exc.value)  # says what a valid code looks like


# --- explain(): the accepted input forms --------------------------------------------------


def test_explain_int() -> None:
    e = explain(550)
    assert (e.code, e.enhanced, e.text, e.detail) == (550, None, None, None)
    assert e.basic is REPLY_CODES[550]
    assert e.warnings == ()


def test_explain_code_string() -> None:
    assert explain("550") == explain(550)


def test_explain_code_and_enhanced() -> None:
    e = explain("550 5.1.1")
    assert (e.code, e.enhanced, e.text) == (550, "5.1.1", None)
    assert e.detail is ENHANCED_CODES["5.1.1"]
    assert e.warnings == ()


def test_explain_full_reply_line() -> None:
    e = explain("550 5.1.1 <nobody@example.org>: Recipient address rejected")
    assert (e.code, e.enhanced) == (550, "5.1.1")
    assert e.text == "<nobody@example.org>: Recipient address rejected"
    assert e.basic is REPLY_CODES[550] and e.detail is ENHANCED_CODES["5.1.1"]


def test_explain_enhanced_alone() -> None:
    e = explain("5.1.1")
    assert (e.code, e.enhanced, e.text, e.basic) == (None, "5.1.1", None, None)
    assert e.detail is ENHANCED_CODES["5.1.1"]
    assert "permanent" in str(e)


def test_explain_multiline_wire_reply() -> None:
    """RFC 5321 4.2.1: all lines carry the same code; nothing else is worth a warning."""
    e = explain("250-mail.example.org\r\n250 SIZE 1000")
    assert (e.code, e.enhanced) == (250, None)
    assert e.text == "mail.example.org\nSIZE 1000"
    assert e.warnings == ()


def test_explain_multiline_with_enhanced_codes() -> None:
    """RFC 2034 4: the enhanced code starts the text of every line."""
    e = explain("550-5.7.1 Relaying denied.\r\n550 5.7.1 Authenticate first.\r\n")
    assert (e.code, e.enhanced) == (550, "5.7.1")
    assert e.text == "Relaying denied.\nAuthenticate first."
    assert e.warnings == ()


def test_explain_multiline_mixed_codes_warns() -> None:
    e = explain("250-first\r\n251 second")
    assert e.code == 251
    assert any("RFC 5321 4.2.1" in w and "same code" in w for w in e.warnings)


def test_explain_bytes_and_trailing_crlf() -> None:
    e = explain(b"421 4.3.2 Service shutting down\r\n")
    assert (e.code, e.enhanced, e.text) == (421, "4.3.2", "Service shutting down")


def test_explain_text_that_only_looks_like_a_code() -> None:
    """An IP address is not an enhanced code (its class digit would be 1)."""
    e = explain("250 1.2.3.4 is your address")
    assert (e.enhanced, e.text) == (None, "1.2.3.4 is your address")


def test_explain_duck_typed_object() -> None:
    e = explain(SimpleNamespace(code=550, enhanced="5.7.1", text="Relay access denied"))
    assert (e.code, e.enhanced, e.text) == (550, "5.7.1", "Relay access denied")
    assert e.detail is ENHANCED_CODES["5.7.1"]
    e2 = explain(SimpleNamespace(code=250, enhanced=None))
    assert (e2.code, e2.enhanced, e2.text, e2.detail) == (250, None, None, None)
    assert explain(SimpleNamespace(code=250, enhanced=None, text="")).text is None


def test_explain_unregistered_codes_warn() -> None:
    e = explain("299 2.1.99 odd")
    assert e.basic is not None and e.basic.meaning.startswith("Unregistered code:")
    assert e.detail is not None and e.detail.meaning.startswith("Unregistered detail:")
    assert any("first digit" in w for w in e.warnings)
    assert any("2.1.99" in w for w in e.warnings)


# --- RFC 2034 4: the enhanced class must agree with the reply class ----------------------


@pytest.mark.parametrize(
    ("reply", "warning"),
    [
        ("550 2.1.1 no such user", "enhanced class 2 does not match reply class 5"),
        ("250 5.0.0 ok?", "enhanced class 5 does not match reply class 2"),
        ("451 5.3.0 try later", "enhanced class 5 does not match reply class 4"),
        ("354 2.0.0 go ahead", "3xx replies carry none"),
    ],
)
def test_class_mismatch_warns(reply: str, warning: str) -> None:
    warnings = explain(reply).warnings
    assert any(warning in w and "RFC 2034" in w for w in warnings), warnings


def test_class_mismatch_on_object_and_agreement_is_silent() -> None:
    e = explain(SimpleNamespace(code=550, enhanced="2.0.0", text=None))
    assert any("does not match" in w for w in e.warnings)
    for good in ("250 2.1.5 ok", "451 4.7.1 greylisted", "550 5.1.1 unknown"):
        assert explain(good).warnings == ()


# --- explain(): bad input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("hello", "'hello' is not a reply"),
        (42, "42 is not an SMTP reply code"),
        ("42", "'42' is not a reply"),
        ("6.0.0", "class 6"),
        ("9.9", "'9.9' is not a reply"),
        ("", "empty reply"),
        ("   \r\n", "empty reply"),
        ("5500 text", "three-digit reply code"),
        ("150 preliminary", "1yz"),
        ("700 no", "not an SMTP reply code"),
        ("250-ok\r\nnot a reply line", "line 2"),
        (None, "cannot explain a NoneType"),
        (3.5, "cannot explain a float"),
        (True, "True is not a reply"),
        (SimpleNamespace(code="550", enhanced=None), "must be an int"),
        (SimpleNamespace(code=550, enhanced=511), ".enhanced must be a str"),
        (SimpleNamespace(code=550, enhanced="5.1"), "not an enhanced status code"),
    ],
)
def test_explain_bad_input_raises_helpful_error(bad: object, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)) as exc:
        explain(bad)
    # Every message also says what valid input looks like (except a wrong .enhanced type).
    if not str(exc.value).startswith("the object's .enhanced"):
        assert "550 5.1.1" in str(exc.value)


# --- rendering ------------------------------------------------------------------------------


def test_str_has_codes_meanings_and_advice() -> None:
    s = str(explain("550 5.1.1 <nobody@example.org>: Recipient address rejected"))
    first, *rest = s.splitlines()
    assert first.startswith("550 5.1.1 — Requested action not taken: mailbox unavailable")
    assert first.endswith("(RFC 5321 4.2.3)")
    assert "  5.1.1: Bad destination mailbox address (RFC 3463 3.2)" in rest
    assert "  Text: <nobody@example.org>: Recipient address rejected" in rest
    assert any(line.startswith("  Client: permanent") for line in rest)


def test_str_shows_warnings_and_enhanced_only_form() -> None:
    s = str(explain("550 2.1.1 x"))
    assert "Warning: enhanced class 2 does not match reply class 5" in s
    s2 = str(explain("4.2.2"))
    assert s2.splitlines()[0] == "4.2.2 — Mailbox full (RFC 3463 3.3)"
    assert "transient" in s2


def test_str_indents_multiline_text() -> None:
    s = str(explain("250-mail.example.org\r\n250 SIZE 1000"))
    assert "  Text: mail.example.org\n        SIZE 1000" in s


def test_markdown_has_codes_meanings_and_escapes_html() -> None:
    md = explain("550 5.1.1 <nobody@example.org>: Recipient address rejected")._repr_markdown_()
    assert md.startswith("**550 5.1.1**")
    assert "Requested action not taken: mailbox unavailable" in md
    assert "Bad destination mailbox address" in md
    assert "RFC 3463 3.2" in md
    assert "&lt;nobody@example.org&gt;" in md and "<nobody@" not in md
    md220 = explain(220)._repr_markdown_()
    assert "&lt;domain&gt; Service ready" in md220


def test_markdown_lists_warnings_and_multiline_text() -> None:
    md = explain("550-2.0.0 a\r\n550 2.0.0 b")._repr_markdown_()
    assert "Warning" in md and "does not match" in md
    assert "a<br>b" in md


def test_types_exported() -> None:
    e = explain(250)
    assert isinstance(e, Explanation)
    assert isinstance(e.basic, CodeInfo)
    assert isinstance(describe_enhanced("2.0.0"), EnhancedInfo)
