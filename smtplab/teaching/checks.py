"""Exercise checks that never give the answer away.

A check cell says ``check("02-1", answer)``: exercise 1 of notebook 2, the student's answer.
The right answer is not in the cell, nor in this package: each exercise keeps a SHA-256 digest
of it (in a canonical form: text without regard to case or spacing, sets in any order), a
one-line hint that says where to look, and the RFC section to read. So:

* a right answer is told so, with why it is right;
* a wrong one gets the hint and the section, raised as :class:`NotYet`, which a notebook shows
  as that one line, not as a traceback (IPython's ``_render_traceback_``), and which stops
  "Run All" there, as a failed check should (nbval fails the instructor edition on it too);
* ``answer = ...`` (the student edition's placeholder) is "not answered yet", without an error.

A determined student can of course try answers against a digest; the point is that the check
cell shows no answer, and the feedback never prints one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from smtplab.teaching.exercises import Feedback, NotYet


@dataclass(frozen=True)
class Exercise:
    key: str  # "02-1": notebook 2, exercise 1
    digest: str  # of the right answer's canonical form (see digest())
    hint: str  # where to look: never the answer
    rfc: str  # the section to read
    why: str  # said once the answer is right


def canonical(answer: Any) -> str:
    """One text for every way of writing the same answer."""
    if isinstance(answer, str):
        return " ".join(answer.lower().split())
    if isinstance(answer, bool) or answer is None:
        return str(answer).lower()
    if isinstance(answer, int | float) and float(answer).is_integer():
        return str(int(answer))
    if isinstance(answer, list | tuple):
        return "[" + ",".join(canonical(item) for item in answer) + "]"
    if isinstance(answer, set | frozenset):
        return "{" + ",".join(sorted(canonical(item) for item in answer)) + "}"
    if isinstance(answer, dict):
        pairs = sorted(f"{canonical(k)}:{canonical(v)}" for k, v in answer.items())
        return "{" + ",".join(pairs) + "}"
    return canonical(str(answer))


def digest(key: str, answer: Any) -> str:
    """What an exercise keeps of its right answer."""
    return hashlib.sha256(f"smtplab-exercise:{key}:{canonical(answer)}".encode()).hexdigest()


def check(key: str, answer: Any) -> Feedback:
    """Grade ``answer`` to exercise ``key``; see the module's docstring."""
    exercise = EXERCISES.get(key)
    if exercise is None:
        raise KeyError(f"no exercise {key!r}; exercises: {', '.join(sorted(EXERCISES))}")
    if answer is Ellipsis:
        return Feedback(False, f"exercise {key} is not answered yet: replace the ... with it")
    if digest(key, answer) == exercise.digest:
        return Feedback(True, f"right: {exercise.why}")
    raise NotYet(f"not yet: {exercise.hint} ({exercise.rfc})")


EXERCISES = {
    exercise.key: exercise
    for exercise in [
        Exercise(
            "01-1",
            "c363ad84001a24d5604826d13d5cd4d10fc479b71977d7865bff6313c76eb89a",
            "which of the three is a mailbox of the lab's server? Each RCPT is answered alone",
            "RFC 5321 3.3",
            "only the unknown mailbox is refused (550 5.1.1); the others get 250 and the message",
        ),
        Exercise(
            "01-2",
            "a7308db15c35e94881c7a370bdb46ce6dcf117441b500d760280e50c5405b82a",
            "a transaction is open after the first MAIL: look the code up with smtplab.explain",
            "RFC 5321 4.1.4",
            "503 5.5.1: bad sequence, MAIL inside a transaction (RSET first to start over)",
        ),
        Exercise(
            "01-3",
            "201f861560581f02ba789d1a94b7fda872ccfff392c8d3bf53ece368a74f9b6b",
            "the server cannot take DATA without a recipient: find the two codes the section "
            "allows",
            "RFC 5321 4.1.1.4",
            "554 (no valid recipients), which the section allows beside 503",
        ),
        Exercise(
            "01-4",
            "99c7c97efbfc94c8db102903dd4e27317b8fe813a4a1b6e90fae6f2611baceba",
            "message() dot-stuffs the line and the server removes the stuffing: compare the "
            "stored content with what you wrote",
            "RFC 5321 4.5.2",
            "the dot survives: stuffed on the wire, unstuffed by the server",
        ),
        Exercise(
            "02-1",
            "ddbd0d5daabb94f30adb6146d0ca97e4c595da21ff05e4dc8bc43f05dae00ce9",
            "the first digit gives the class, the second the category: use the two tables",
            "RFC 5321 4.2.1",
            "421 is transient (4) and about the connection (2): the server is closing it",
        ),
        Exercise(
            "02-2",
            "68056ddebf1113656ba9ab7ba0a0e6a6211bbecbe3938991d269b791c0179a67",
            "the enhanced code's subject 2 is the mailbox; its class digit says whether to retry",
            "RFC 3463 3.3",
            "4.2.2, mailbox full: class 4, so retry later",
        ),
        Exercise(
            "02-3",
            "bf44cbfe4fa38078b27293e9e7fd527f6e6a89217587dcf9e751fd76e011c60a",
            "every line of a multi-line reply carries the code; only the last has a space after it",
            "RFC 5321 4.2.1",
            "three lines, all 214",
        ),
        Exercise(
            "03-1",
            "14044ce2c52e3ab0d0e8c7c44c9af2a5f8bb797596c9bfd0384da170588f8eac",
            "the client waits retry_delay, then twice as long each time; the greylist lets a retry"
            " through once 600 s have passed",
            "RFC 5321 4.5.4.1",
            "5 tries, at 0, 60, 180, 420 and 900 s: the first at or after 600 s gets through",
        ),
        Exercise(
            "03-2",
            "c47f3a03819a1ae9949f2e9533479399099dacbb729e9d51867058b668699280",
            "look at lab.messages; then at the class of a reply that came after the final dot",
            "RFC 5321 3.8, 4.2.5",
            "421 after the dot: nothing was stored, and a transient failure means send it again",
        ),
        Exercise(
            "03-3",
            "01154d198063894198365e1ceaf90ab45d984b76595b0862b856b14a3a88b914",
            "an alias maps a local part to a mailbox (Mailboxes(aliases=...)); VRFY answers with "
            "the mailbox it resolves to",
            "RFC 5321 3.5.1, 3.5.3",
            "250 and the mailbox the alias leads to",
        ),
        Exercise(
            "04-1",
            "ec268d0f6661c407e2385dfd187834b41d08a2cab9e73128b480a15511301a5c",
            "the EHLO reply's SIZE keyword is the limit in octets: try MAIL FROM with SIZE= at it "
            "and one above",
            "RFC 1870 4, 6.1",
            "SIZE at the limit gets 250; one octet more gets 552 5.3.4",
        ),
        Exercise(
            "04-2",
            "a6248bf506e048dc0873560517952777f07e3d3916ce20eb55a83f4e2ba8e015",
            "each pipelined command still gets its own reply, in order; count the commands in the "
            "group",
            "RFC 2920 3.1",
            "4: MAIL, two RCPTs and DATA, one reply each",
        ),
        Exercise(
            "04-3",
            "13b4a06b5050e0ed02b2d43e3bfea1d57d9f498e9ab9fbc0c4291c5813ba1a36",
            "the server answers a BDAT chunk once its octets are in",
            "RFC 3030 2",
            "3, one per chunk; the reply to the LAST one accepts the message",
        ),
        Exercise(
            "05-1",
            "4e3c138c2c56f90ff6b1556d8846af8b2e22f41dd7bc7cb020e9e49c0a3f1590",
            "find the reply to AUTH in the transcript; smtplab.explain names its enhanced code",
            "RFC 4954 6",
            "538 5.7.11: encryption required for the requested authentication mechanism",
        ),
        Exercise(
            "05-2",
            "22a9acd083cb43ac00f9b7cb4115f8f770acaec2035537034eb3933cb66c9dc0",
            "look at session.extensions after the new EHLO",
            "RFC 3207 4.2",
            "not offered again: a server must not offer STARTTLS once TLS has started",
        ),
        Exercise(
            "05-3",
            "49ee7f297bcb54fb8306b5a7c57312aeb8da41fa10521b696a99b9edc1eb3d6d",
            "a 334's text is base64: decode it with base64.b64decode",
            "RFC 4954 4",
            "'Password:', AUTH LOGIN's second challenge",
        ),
        Exercise(
            "06-1",
            "de16521e654ad7a40ceca652e7d9ed2a49a3bc27c37f7397693b8a031c8d8ba4",
            "smtplib raises when no recipient was accepted, with each refusal's code in the "
            "exception's recipients",
            "RFC 5321 4.2.1; Python's smtplib documentation",
            "SMTPRecipientsRefused carrying 451: greylisting's transient refusal",
        ),
        Exercise(
            "06-2",
            "58fb7be2ae85ca7832acf68792dd12c7c6f01040bc2bd40211d66cdde3aa0caa",
            "each command of the group gets its own reply, in the order sent; one of the "
            "recipients does not exist",
            "RFC 2920 3.1",
            "MAIL, RCPT, RCPT, DATA answered in order; DATA ends the group because its 354 decides"
            " what the client sends next",
        ),
        Exercise(
            "07-1",
            "5c5cfd822ff659cfb634223c734ead8965074653cb72084024cdeeeddd2cb1dd",
            "BDAT commands are rows whose verb is BDAT and kind is command: find their session and"
            " count them",
            "RFC 3030 2",
            "one session sent it in three chunks, the last one marked LAST",
        ),
        Exercise(
            "07-2",
            "26c71772a32899841c2ce7620ab1b8121e7c98ae961bd1287b5aa4df1e797bc6",
            "the log's command rows of that session, in order; a client says EHLO again after "
            "STARTTLS",
            "RFC 3207 4.2",
            "Postfix counted the whole session, the part after STARTTLS too, which the capture "
            "could not read",
        ),
        Exercise(
            "08-1",
            "af73fc206b97c6179a730ca24accd3950ee4d1c4ed290580ab80b301d3eb4bea",
            "divide the 4xx count by the sum of all classes, times 100",
            "RFC 5321 4.2.1",
            "transient failures are a small share of replies, as greylisting and full mailboxes "
            "make them",
        ),
        Exercise(
            "08-2",
            "6e46bfba6930de150ad0e6dd38273191015ffdaf7bff454c70593a66a59e6796",
            "group the RCPT steps with a 5xx reply by their argument; the enhanced code says why",
            "RFC 3463 3.8; RFC 5321 3.6.2",
            "an address in someone else's domain: relaying denied, 5.7.1",
        ),
        Exercise(
            "08-3",
            "280a0e1a542d5beeb70bcd599e497b6d46732c69ac39ba35a058f6e653559b65",
            "in that session every RCPT was refused: what may a server answer DATA with no valid "
            "recipient?",
            "RFC 5321 4.1.1.4",
            "554 5.5.1, no valid recipients: the client sent DATA although every RCPT was refused",
        ),
        Exercise(
            "09-1",
            "4777eac7fe8c4b99985ee04665980a3f5cdb1a072d9a08c2d49d1cb96eb07877",
            "count lab.messages; the refusal's enhanced code is in its reply",
            "RFC 3463 3.7; RFC 5321 2.3.8",
            "nothing stored; 5.6.0, other or undefined media error: the content broke the line "
            "rules",
        ),
        Exercise(
            "09-2",
            "7be01986335982f024f6a544dd0b9d48503f8224e1f4be9223e845b13a53babd",
            "the failed probes are the false ends it took: report.table's status column; Python's "
            "line reader splits lines at LF only",
            "RFC 5321 4.1.1.4, 4.5.2",
            "the three variants with a bare LF; a bare CR never ends a line for Python's reader, "
            "so the CR variants stayed content",
        ),
        Exercise(
            "09-3",
            "57181dd22c5dec2d35dd25890c44ca369481307c8f9459005194457e84bad32b",
            "results['normalize'] holds the lab and the replies to the attack",
            "RFC 5321 4.1.1.4",
            "one reply, one message: normalize makes a bare LF a line end, never the end of data",
        ),
        Exercise(
            "10-3",
            "b1833824fc397f57b0a8877437a79ac8290f77701a15ccd59aee7925559ef5af",
            "the report's table has a status column; a warning is what the RFC allows but is worth"
            " knowing",
            "RFC 5321 2.3.8, 4.1.2",
            "a bare LF taken as a line end, and MAIL FROM without angle brackets accepted: "
            "lenient, and allowed",
        ),
        Exercise(
            "11-2",
            "746e0228d650d624bd34aef529cc8627a8cbbdb55677994a2fd53a843067c5ac",
            "read one whole reply per command of the group; review lists only mistakes",
            "RFC 2920 3.1",
            "four replies, in order, and nothing to complain about: grouping after the EHLO reply "
            "offered PIPELINING is allowed",
        ),
        Exercise(
            "11-3",
            "70955f87c3f0a52c6fc0064e0194a361494ca81dec1c2d1d3b0fbbe3a546bf48",
            "with no valid recipient there is nothing to send the message to: which codes may DATA"
            " get then?",
            "RFC 5321 4.1.1.4",
            "554 5.5.1, no valid recipients",
        ),
        Exercise(
            "12-1",
            "f707be55a343f44705d2264f861587de7b180788165da1dd7b58e94b67f8b436",
            "count the reply rows whose verb is RCPT and whose code is 500 or more, then "
            ".compute()",
            "RFC 5321 4.2.1",
            "the same count pandas gives from the whole dataset",
        ),
        Exercise(
            "13-1",
            "dd95d4fc4f670453f43e3d56f4507de99b6af2b119f219895cf4108389cfd324",
            "type the steps of notebook 1 with nc -C, one reply per line you end with Enter "
            "(the message's lines get one between them all), and list every code your screen "
            "shows",
            "RFC 5321 3.3, 4.1.1.4",
            "a greeting, one reply per command, one for the whole message, and the closing 221",
        ),
        Exercise(
            "13-2",
            "5423b54a394ca43502208e294ebbb4426cf5a853761819b587febbd33e5adb4f",
            "a capture sees only what crossed the wire in clear: look at the rows after the "
            "tls row",
            "RFC 3207 4",
            "after the handshake every command travels encrypted: the capture cannot say, the "
            "server's transcript can",
        ),
        Exercise(
            "13-3",
            "1678c32c61a51780a39f3e0778dff68b46c348a09ba955285ee35a740a239f2d",
            "some capital letters at the start of a line are commands to s_client itself: "
            "find them in its manual, or leave out -quiet and watch the server's transcript",
            "openssl-s_client(1), CONNECTED COMMANDS; RFC 5321 2.4",
            "Q ends the connection and R renegotiates, so those two lines are never sent; "
            "lower-case quit and rcpt to: would be, as SMTP verbs are case-insensitive",
        ),
    ]
}
