"""Teaching scenarios: named server behaviours, each with a client script and an explanation.

A scenario is three things: server settings (what :class:`~smtplab.Lab` gets), a client script
(what a client does against that server), and a short explanation of what to look for. One
call runs it into a transcript::

    run = smtplab.run_scenario("greylisting")
    run.transcript                      # every command and reply of every session
    run.replies                         # ['220', '250', '250', '451 4.7.1', ...]
    smtplab.scenarios()                 # the list, one line each (also: smtplab scenarios)

Everything runs on the lab's virtual clock, so each run gives the same transcript.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from smtplab.protocol.config import ServerConfig
from smtplab.server.faults import Fault, Faults
from smtplab.server.mailboxes import Mailboxes
from smtplab.teaching.lab import Lab

SENDER = "alice@example.net"


@dataclass(frozen=True)
class Scenario:
    """A named server behaviour with a client script and an explanation."""

    name: str
    title: str  # one line, for listings
    explanation: str  # what happens and what to look for (Markdown)
    rfc: str  # where to read about it
    settings: Callable[[], dict[str, Any]]  # fresh keyword arguments for Lab
    client: Callable[[Lab], Any]  # the client script; returns what it wants to show

    def lab(self) -> Lab:
        """A new lab with this scenario's server (no session run yet)."""
        return Lab(**self.settings(), name=self.name)

    def run(self) -> ScenarioRun:
        """Run the client script against a new lab; return the lab and its transcript."""
        lab = self.lab()
        outcome = self.client(lab)
        return ScenarioRun(self, lab, outcome, lab.transcript())


@dataclass
class ScenarioRun:
    """The result of :meth:`Scenario.run`."""

    scenario: Scenario
    lab: Lab
    outcome: Any  # what the client script returned (often a SendResult)
    transcript: Any = field(repr=False)  # the transcript DataFrame

    @property
    def replies(self) -> list[str]:
        """Every reply in order, as ``"250"`` or ``"550 5.1.1"``."""
        rows = self.transcript[self.transcript["kind"] == "reply"]
        return [
            f"{code} {enhanced}" if isinstance(enhanced, str) else str(code)
            for code, enhanced in zip(rows["code"], rows["enhanced"], strict=True)
        ]

    def __repr__(self) -> str:
        stored = len(self.lab.messages)
        return (
            f"<ScenarioRun {self.scenario.name}: {', '.join(self.replies)}; "
            f"{stored} message{'s' if stored != 1 else ''} stored>"
        )

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # type: ignore[no-untyped-def]
        printer.text(repr(self))

    def _repr_markdown_(self) -> str:
        s = self.scenario
        replies = " ".join(f"`{r}`" for r in self.replies)
        stored = len(self.lab.messages)
        return (
            f"**{s.name}** — {s.title}\n\n{s.explanation}\n\n"
            f"*Replies:* {replies}  \n*Stored:* {stored} message{'s' if stored != 1 else ''}"
            f"  \n*Read:* {s.rfc}"
        )


# -- client scripts ------------------------------------------------------------------------


def _message(subject: str, size: int = 0) -> str:
    body = "Hello from smtplab.\n" + ("x" * 70 + "\n") * (size // 71)
    return f"Subject: {subject}\nFrom: Alice <{SENDER}>\n\n{body}"


def _send(*recipients: str, **options: Any) -> Callable[[Lab], Any]:
    def script(lab: Lab) -> Any:
        return lab.send(SENDER, list(recipients), **options)

    return script


def _mailbox_full(lab: Lab) -> Any:
    full = lab.send(SENDER, "carol@example.org", subject="to a full mailbox")
    too_big = lab.send(SENDER, "bob@example.org", message=_message("big", 3000))
    return [full, too_big]


def _too_large(lab: Lab) -> Any:
    announced = lab.connect()
    announced.ehlo()
    said_size = announced.mail(SENDER, SIZE="5000")  # RFC 1870: refused before any data
    announced.quit()
    unannounced = lab.send(SENDER, "bob@example.org", message=_message("big", 5000))
    return [said_size, unannounced]


def _smuggling(lab: Lab) -> Any:
    session = lab.connect()
    session.ehlo()
    session.mail(SENDER)
    session.rcpt("bob@example.org")
    session.data()
    # A second, forged message hidden behind <LF>.<LF> (CVE-2023-51764): only <CRLF>.<CRLF>
    # ends the data, so a strict server never sees the "second" MAIL as a command.
    replies = session.send_raw(
        b"Subject: hello\r\n\r\nfirst\n.\nMAIL FROM:<ceo@example.org>\r\n"
        b"RCPT TO:<bob@example.org>\r\nDATA\r\nSubject: forged\r\n\r\nsecond\r\n.\r\n"
    )
    if not session.closed:
        session.quit()
    return replies


def _vrfy_expn(lab: Lab) -> Any:
    session = lab.connect()
    session.ehlo()
    replies = [session.vrfy(who) for who in ("bob", "dave", "erin", "staff", "nobody")]
    replies.append(session.expn("staff"))
    session.quit()
    return replies


# -- the library ---------------------------------------------------------------------------

_SCENARIOS = [
    Scenario(
        "basic",
        "A complete transaction: EHLO, MAIL, RCPT, DATA, the message, QUIT",
        "Every reply is positive: 220 greeting, 250 to EHLO, MAIL and RCPT, 354 to DATA "
        "(go ahead), **one** 250 after the final dot (not one per line), 221 to QUIT.",
        "RFC 5321 3.3, 4.1.1",
        lambda: {},
        _send("bob@example.org"),
    ),
    Scenario(
        "unknown-recipient",
        "One of two recipients does not exist: 550 5.1.1 for it, delivery to the other",
        "`550` is permanent and `5.1.1` says *bad destination mailbox*. One refused recipient "
        "does not stop the transaction: the message goes to the accepted one.",
        "RFC 5321 4.2.2, RFC 3463 3.2",
        lambda: {},
        _send("bob@example.org", "nobody@example.org"),
    ),
    Scenario(
        "forwarding-251",
        "The server forwards a user's mail elsewhere: 251 User not local; will forward",
        "`251` is a **positive** reply: the server accepts the recipient and takes on the "
        "job of forwarding to the forward-path it names. The client has nothing more to do.",
        "RFC 5321 3.4, 4.2.2",
        lambda: {"policy": Mailboxes(forwards={"dave": "dave@elsewhere.example"})},
        _send("dave@example.org"),
    ),
    Scenario(
        "redirect-551",
        "A user has moved: 551 User not local; please try <address>, and the client retries",
        "`551` **refuses** the recipient but names where to send instead. The server does "
        "not forward; a client may try the new address itself, as this one does "
        "(`follow_redirects=True`). Here the second RCPT goes to the same server and is "
        "accepted because this server hosts `new.example` too; where the new address is "
        "elsewhere, the same server refuses it as relaying (`550 5.7.1`), and a client "
        "delivers to the new domain's MX instead (RFC 5321 5.1).",
        "RFC 5321 3.4, 4.2.2",
        lambda: {
            "policy": Mailboxes(
                domains=["example.org", "new.example"],
                mailboxes=["alice", "bob", "erin@new.example"],
                moved={"erin@example.org": "erin@new.example"},
            )
        },
        _send("erin@example.org", follow_redirects=True),
    ),
    Scenario(
        "relay-denied",
        "A recipient in someone else's domain: 550 5.7.1 Relay access denied",
        "A server accepts mail for its own domains only (or from clients it trusts); "
        "anything else would make it an *open relay*. RFC 5321 asks for `550` when a server "
        "declines to relay for policy reasons (Postfix says `554`: `relay_code=554`); "
        "`5.7.1`: delivery not authorized.",
        "RFC 5321 3.6.2, 7.1",
        lambda: {},
        _send("someone@elsewhere.example"),
    ),
    Scenario(
        "greylisting",
        "First try 451 4.7.1 Greylisted; the retry five minutes later is accepted",
        "`451` is **transient**: try again later. A real mail queue does, and the greylisting "
        "server accepts the retry once the delay has passed; much spam software never "
        "retries. The second session starts 300 s later on the lab's virtual clock.",
        "RFC 5321 4.2.1, 4.5.4.1",
        lambda: {"policy": Mailboxes(greylist=300)},
        _send("bob@example.org", retries=2, retry_delay=300),
    ),
    Scenario(
        "mailbox-full",
        "A full mailbox: 452 4.2.2 at RCPT, and 552 5.2.2 for a message over the quota",
        "`452`/`4.2.2` says the mailbox is full *right now* (transient). A message that does "
        "not fit what is left of a quota is refused after the dot with `552`/`5.2.2`, "
        "exceeded storage allocation.",
        "RFC 5321 4.2.2, RFC 3463 3.3",
        lambda: {"policy": Mailboxes(full=["carol"], quotas={"bob": 2000})},
        _mailbox_full,
    ),
    Scenario(
        "message-too-large",
        "Over the size limit: 552 5.3.4 at MAIL when SIZE says so, else after the dot",
        "The server advertises `SIZE 2000` in its EHLO reply. A client that declares a "
        "bigger size in `MAIL FROM:<...> SIZE=5000` is refused at once; one that does not "
        "declare it sends everything and is refused after the final dot.",
        "RFC 1870, RFC 5321 4.5.3.1.9",
        lambda: {"config": ServerConfig(max_message_size=2000)},
        _too_large,
    ),
    Scenario(
        "too-many-recipients",
        "More recipients than the server takes: 452 4.5.3, the rest sent in a second session",
        "A server must take at least 100 recipients per message (4.5.3.1.8); this one takes "
        "exactly 100. The client asks for 102: the last two get `452`/`4.5.3`, which RFC "
        "5321 asks clients to treat as *send these later*, so the client opens a second "
        "session for them.",
        "RFC 5321 4.5.3.1.8, 4.5.3.1.10",
        lambda: {
            "policy": Mailboxes(mailboxes=[f"user{n}" for n in range(1, 103)]),
            "config": ServerConfig(max_recipients=100),
        },
        _send(*(f"user{n}@example.org" for n in range(1, 103)), retries=1, retry_delay=0),
    ),
    Scenario(
        "server-shutdown",
        "The server shuts down mid-session: 421 4.3.2 and it closes; the client retries later",
        "`421` may answer any command when the server must close (3.8). Nothing was "
        "accepted, so nothing is stored; the client treats it as transient and the retry "
        "a minute later goes through.",
        "RFC 5321 3.8, 4.2.3",
        lambda: {"policy": Faults(Mailboxes(), [Fault.shutdown("RCPT", times=1)])},
        _send("bob@example.org", retries=1, retry_delay=60),
    ),
    Scenario(
        "dropped-connection",
        "The connection drops after the final dot, before the reply: retried, stored once",
        "No reply means no responsibility taken: the server did not store the message, and "
        "the client must send it again. Had the server stored it before the drop, the retry "
        "would make a duplicate - the reason 250 is sent only after the message is safe.",
        "RFC 5321 4.1.1.4, 6.1",
        lambda: {"policy": Faults(Mailboxes(), [Fault.drop("DATA-END", times=1)])},
        _send("bob@example.org", retries=1, retry_delay=60),
    ),
    Scenario(
        "bare-lf-smuggling",
        "An SMTP smuggling attempt with <LF>.<LF>: refused whole with 554 5.6.0",
        "The client hides a second, forged message behind `<LF>.<LF>`, which some servers "
        "took for the end of data (CVE-2023-51764). Only `<CRLF>.<CRLF>` ends the data, so "
        "this server reads one message to its real end and, under the default "
        "`line_endings='reject'`, refuses it for its bare LF. Try `normalize` and `keep`.",
        "RFC 5321 2.3.8, 4.1.1.4",
        lambda: {},
        _smuggling,
    ),
    Scenario(
        "vrfy-expn",
        "VRFY and EXPN: 250, 251, 551, 252 and 550, and a mailing list's members",
        "VRFY asks about one address: 250 (a mailbox), 251 (forwarded), 551 (moved), "
        "252 (cannot or will not say) or 550 (unknown). EXPN lists a mailing list's members, "
        "one per line of a multi-line 250.",
        "RFC 5321 3.5",
        lambda: {
            "policy": Mailboxes(
                lists={"staff": ["alice", "bob"]},
                forwards={"dave": "dave@elsewhere.example"},
                moved={"erin": "erin@new.example"},
            )
        },
        _vrfy_expn,
    ),
]

SCENARIOS: dict[str, Scenario] = {s.name: s for s in _SCENARIOS}


def scenario(name: str) -> Scenario:
    """The scenario called ``name``."""
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise KeyError(f"no scenario {name!r}; the scenarios are: {known}") from None


def run_scenario(name: str) -> ScenarioRun:
    """Run the scenario called ``name`` on a new lab."""
    return scenario(name).run()


def scenarios() -> Any:
    """The scenarios as a DataFrame: name, title, where to read."""
    import pandas as pd

    return pd.DataFrame(
        [(s.name, s.title, s.rfc) for s in _SCENARIOS], columns=["name", "title", "read"]
    )
