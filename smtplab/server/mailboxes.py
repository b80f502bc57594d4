"""The lab's default server, configured by data: domains, mailboxes, aliases, lists, forwarding.

Every common server behaviour is a keyword argument, so a notebook changes what the server does
without writing a policy class::

    Mailboxes(
        forwards={"dave": "dave@elsewhere.example"},     # RCPT: 251 User not local; will forward
        moved={"erin": "erin@new.example"},              # RCPT: 551 User not local; please try
        lists={"staff": ["alice", "bob"]},              # EXPN staff: 250, one member per line
        greylist=300,                                    # first try 451 4.7.1, after 5 min 250
        quotas={"carol": 2000},                          # 452 4.2.2 when full, 552 5.2.2 at the dot
    )

Names without ``@`` mean that local part in every local domain; matching ignores case, as
deployed servers do. "Postmaster" with or without a domain always exists (RFC 5321 4.5.1).
Replies use Postfix's wording where Postfix has one, so lab transcripts read like real ones.

A recipient is checked in Postfix's order: relaying first (a domain that is not local),
then moved and forwarded users, then whether the mailbox exists, then room in it, then
greylisting - so an unknown user gets 550 at once, never a greylisting 451 first.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Iterable, Mapping, Sequence

from smtplab.protocol.auth import Credentials
from smtplab.protocol.commands import printable
from smtplab.protocol.events import Expand, MessageReceived, RcptTo, Reply, Verify
from smtplab.server.greylist import Greylist
from smtplab.server.policy import QUEUE_ID, Context, Decision, Policy
from smtplab.server.store import StoredMessage

DEFAULT_DOMAIN = "example.org"
DEFAULT_MAILBOXES = ("alice", "bob", "carol", "postmaster")


class Mailboxes(Policy):
    """Accept mail for the local domains' mailboxes, aliases and lists; refuse the rest."""

    def __init__(
        self,
        domains: Iterable[str] = (DEFAULT_DOMAIN,),
        mailboxes: Iterable[str] = DEFAULT_MAILBOXES,
        hostname: str | None = None,
        *,
        aliases: Mapping[str, str] | None = None,
        lists: Mapping[str, Sequence[str]] | None = None,
        forwards: Mapping[str, str] | None = None,
        moved: Mapping[str, str] | None = None,
        relay_domains: Iterable[str] = (),
        relay_code: int = 550,
        greylist: float | None = None,
        full: Iterable[str] = (),
        quotas: Mapping[str, int] | None = None,
        users: Mapping[str, str] | None = None,
    ) -> None:
        """
        ``aliases`` name -> mailbox it delivers to; ``lists`` name -> members (EXPN shows
        them); ``forwards`` name -> address the server forwards to (251); ``moved`` name ->
        address the client should try instead (551); ``relay_domains`` remote domains this
        server relays for; ``relay_code`` for the others: 550, as RFC 5321 3.6.2 asks of a
        server that declines to relay for policy reasons, or 554, Postfix's default;
        ``greylist`` seconds a new (client, sender, recipient) must wait before its retry is
        accepted; ``full`` mailboxes that answer 452 4.2.2; ``quotas`` octets each mailbox can
        still take (552 5.2.2 for a message that does not fit); ``users`` name -> password
        for AUTH (a lab's accounts: plain text, never for real secrets).
        """
        if relay_code not in (550, 554):
            raise ValueError("relay_code must be 550 or 554 (RFC 5321 3.6.2)")
        self.domains = {d.lower() for d in domains}
        if not self.domains:
            raise ValueError("give at least one local domain")
        self.primary_domain = sorted(self.domains)[0]
        self.hostname = hostname or f"mx.{self.primary_domain}"
        self.mailboxes = {_key(m) for m in mailboxes} | {"postmaster"}
        self.aliases = {_key(k): _key(v) for k, v in (aliases or {}).items()}
        self.lists = {_key(k): [_key(m) for m in v] for k, v in (lists or {}).items()}
        self.forwards = {_key(k): v for k, v in (forwards or {}).items()}
        self.moved = {_key(k): v for k, v in (moved or {}).items()}
        self.relay_domains = {d.lower() for d in relay_domains}
        self.relay_code = relay_code
        self.greylist = Greylist(greylist) if greylist else None
        self.users = dict(users or {})
        self.full = {self._mailbox_key(m) for m in full}
        self.quotas = {self._mailbox_key(k): v for k, v in (quotas or {}).items()}

    def _mailbox_key(self, name: str) -> str:
        key = self.mailbox_of(name if "@" in name else f"{name}@{self.primary_domain}")
        if key is None:
            raise ValueError(f"{name!r} is not one of the mailboxes: {sorted(self.mailboxes)}")
        return key

    def _find(self, table: Collection[str], address: str) -> str | None:
        """The key of ``table`` that ``address`` matches: the whole address, or its local
        part when the domain is local."""
        if not table:
            return None
        address = address.lower()
        if address in table:
            return address
        local, _, domain = address.rpartition("@")
        if (domain in self.domains or address == "postmaster") and (local or address) in table:
            return local or address
        return None

    def lookup(self, address: str) -> str:
        """What ``address`` is here: ``mailbox``, ``alias``, ``list``, ``forward``, ``moved``,
        ``unknown`` (local domain, no such name), ``relay`` (a domain relayed for) or
        ``remote``."""
        domain = address.rpartition("@")[2].lower()
        if address.lower() != "postmaster" and domain not in self.domains:
            return "relay" if domain in self.relay_domains else "remote"
        for kind, table in (
            ("moved", self.moved),
            ("forward", self.forwards),
            ("list", self.lists),
            ("alias", self.aliases),
            ("mailbox", self.mailboxes),
        ):
            if table and self._find(table, address) is not None:  # most tables are empty
                return kind
        return "unknown"

    def mailbox_of(self, address: str) -> str | None:
        """The local mailbox (its key) ``address`` delivers to, through an alias, if any."""
        alias = self._find(self.aliases, address) if self.aliases else None
        target = self.aliases[alias] if alias is not None else address
        return self._find(self.mailboxes, target)

    def _target(self, table: Mapping[str, str], address: str) -> str:
        key = self._find(table, address)
        assert key is not None
        return table[key]

    # -- hooks ------------------------------------------------------------------------------

    def on_rcpt(self, ctx: Context, event: RcptTo) -> Reply:
        address = event.address
        kind = self.lookup(address)
        if kind == "remote":
            return Reply(self.relay_code, f"<{address}>: Relay access denied", "5.7.1")
        if kind == "unknown":
            return Reply(
                550,
                f"<{address}>: Recipient address rejected: User unknown in local recipient table",
                "5.1.1",
            )
        if kind == "moved":
            # RFC 5321 3.4: the server refuses and tells the client where to send instead.
            target = self._target(self.moved, address)
            return Reply(551, f"User not local; please try <{target}>", "5.1.6")
        mailbox = self.mailbox_of(address)
        if mailbox is not None and self._no_room(mailbox, ctx.envelope.mail_params.get("SIZE")):
            return Reply(452, f"<{address}>: Recipient address rejected: Mailbox full", "4.2.2")
        if self.greylist is not None:
            wait = self.greylist.check(ctx.client, ctx.envelope.mail_from or "", address, ctx.now)
            if wait > 0:
                return Reply(
                    451,
                    f"<{address}>: Recipient address rejected: Greylisted, "
                    f"try again in {wait:.0f} seconds",
                    "4.7.1",
                )
        if kind == "forward":
            # RFC 5321 3.4: accepted, and the server takes care of forwarding it.
            target = self._target(self.forwards, address)
            return Reply(251, f"User not local; will forward to <{target}>", "2.1.5")
        return Reply(250, f"Recipient <{address}> OK", "2.1.5")

    def _no_room(self, mailbox: str, declared_size: str | None) -> bool:
        """Full, or without room for the size MAIL declared (SIZE=, RFC 1870)."""
        if mailbox in self.full:
            return True
        if mailbox not in self.quotas:
            return False
        needed = int(declared_size) if declared_size and declared_size.isdigit() else 1
        return self.quotas[mailbox] < needed

    def _charged(self, recipients: Iterable[str]) -> list[str]:
        """The distinct mailboxes with a quota that these recipients deliver to."""
        if not self.quotas:  # the usual case: nothing to look up
            return []
        mailboxes = (self.mailbox_of(r) for r in recipients)
        return list(dict.fromkeys(m for m in mailboxes if m in self.quotas))

    def on_message(self, ctx: Context, event: MessageReceived) -> Reply:
        """552 5.2.2 when the message does not fit a recipient mailbox's remaining quota.

        One reply answers the message for all its recipients (RFC 5321 4.1.1.4), so one full
        mailbox refuses it for everyone; real servers accept and bounce for that mailbox
        later, and LMTP (RFC 2033) answers per recipient. A client that declares ``SIZE=``
        in MAIL is told at RCPT instead (452 4.2.2), for that recipient alone.
        """
        for mailbox in self._charged(ctx.envelope.recipients):
            if event.size > self.quotas[mailbox]:
                return Reply(
                    552,
                    f"<{mailbox}>: Mailbox full: the message needs {event.size} octets, "
                    f"{self.quotas[mailbox]} are left",
                    "5.2.2",
                )
        return Reply(250, f"OK: queued as {QUEUE_ID}", "2.0.0")

    def on_delivered(self, ctx: Context, event: MessageReceived, stored: StoredMessage) -> None:
        """Charge each quota once per message (its size as received), once it is stored."""
        for mailbox in self._charged(stored.recipients):
            self.quotas[mailbox] -= event.size

    def on_auth(self, ctx: Context, credentials: Credentials) -> Reply:
        """235 for a known user and password; 535 5.7.8 otherwise (RFC 4954 6)."""
        expected = self.users.get(credentials.username)
        if expected is not None and hmac.compare_digest(expected, credentials.password):
            return Reply(235, "Authentication successful", "2.7.0")
        return Reply(535, "Authentication credentials invalid", "5.7.8")

    def on_vrfy(self, ctx: Context, event: Verify) -> Reply:
        """RFC 5321 3.5: 250 a mailbox, 251/551 not local, 252 cannot say, 550 unknown."""
        target = printable(event.argument.strip().strip("<>"))
        if "@" not in target and target.lower() != "postmaster":
            target = f"{target}@{self.primary_domain}"
        kind = self.lookup(target)
        if kind == "mailbox":
            return Reply(250, f"<{target}>", "2.1.5")
        if kind == "alias":
            mailbox = self.mailbox_of(target) or target
            shown = mailbox if "@" in mailbox else f"{mailbox}@{self.primary_domain}"
            return Reply(250, f"<{shown}>", "2.1.5")
        if kind == "forward":
            forward = self._target(self.forwards, target)
            return Reply(251, f"User not local; will forward to <{forward}>", "2.1.5")
        if kind == "moved":
            moved = self._target(self.moved, target)
            return Reply(551, f"User not local; please try <{moved}>", "5.1.6")
        if kind == "list":
            return Reply(252, f"<{target}> is a mailing list; EXPN shows its members", "2.0.0")
        if kind == "unknown":
            return Reply(550, f"<{target}>: User unknown", "5.1.1")
        return Reply(252, f"<{target}> is not local; cannot verify", "2.0.0")

    def on_expn(self, ctx: Context, event: Expand) -> Decision:
        """RFC 5321 3.5.2: a list's members, one per line of a multi-line 250.

        A server without lists does not offer EXPN at all (502, as Postfix answers).
        """
        if not self.lists:
            return super().on_expn(ctx, event)
        target = printable(event.argument.strip().strip("<>"))
        if "@" not in target:
            target = f"{target}@{self.primary_domain}"
        key = self._find(self.lists, target)
        if key is not None:
            members = [m if "@" in m else f"{m}@{self.primary_domain}" for m in self.lists[key]]
            if not members:
                return Reply(250, f"<{target}> has no members", "2.1.5")
            return Reply(250, "\n".join(f"<{m}>" for m in members), "2.1.5")
        if self.lookup(target) == "unknown":
            return Reply(550, f"<{target}>: No such mailing list", "5.1.1")
        return Reply(550, f"<{target}> is not a mailing list", "5.1.0")


def _key(name: str) -> str:
    """A setting's name as a lookup key: ``"Bob"`` -> ``"bob"``, ``"<a@B>"`` -> ``"a@b"``."""
    return name.strip().strip("<>").lower()
