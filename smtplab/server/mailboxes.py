"""The lab's default server: one local domain with a few mailboxes.

Recipients in a local domain must exist (550 5.1.1 otherwise, in Postfix's words, so lab
transcripts look like real ones); other domains are not relayed (554 5.7.1, as Postfix's
``reject_unauth_destination`` answers). Local parts are matched without regard to case, as
deployed servers do; "Postmaster" with or without a domain always exists (RFC 5321 4.5.1).
"""

from __future__ import annotations

from collections.abc import Iterable

from smtplab.protocol.commands import printable
from smtplab.protocol.events import RcptTo, Reply, Verify
from smtplab.server.policy import Context, Policy

DEFAULT_DOMAIN = "example.org"
DEFAULT_MAILBOXES = ("alice", "bob", "carol", "postmaster")


class Mailboxes(Policy):
    """Accept mail for known mailboxes of the local domains; refuse everything else."""

    def __init__(
        self,
        domains: Iterable[str] = (DEFAULT_DOMAIN,),
        mailboxes: Iterable[str] = DEFAULT_MAILBOXES,
        hostname: str | None = None,
    ) -> None:
        self.domains = {d.lower() for d in domains}
        self.mailboxes = {m.lower() for m in mailboxes} | {"postmaster"}
        self.hostname = hostname or f"mx.{next(iter(sorted(self.domains)), DEFAULT_DOMAIN)}"

    def lookup(self, address: str) -> str:
        """``"local"``, ``"unknown"`` (local domain, no such mailbox) or ``"remote"``."""
        if address.lower() == "postmaster":
            return "local"
        local, _, domain = address.rpartition("@")
        if domain.lower() not in self.domains:
            return "remote"
        return "local" if local.lower() in self.mailboxes else "unknown"

    def on_rcpt(self, ctx: Context, event: RcptTo) -> Reply:
        where = self.lookup(event.address)
        if where == "local":
            return Reply(250, f"Recipient <{event.address}> OK", "2.1.5")
        if where == "unknown":
            return Reply(
                550,
                f"<{event.address}>: Recipient address rejected: "
                "User unknown in local recipient table",
                "5.1.1",
            )
        return Reply(554, f"<{event.address}>: Relay access denied", "5.7.1")

    def on_vrfy(self, ctx: Context, event: Verify) -> Reply:
        target = printable(event.argument.strip().strip("<>"))
        if "@" not in target and target.lower() != "postmaster":
            target = f"{target}@{sorted(self.domains)[0]}"
        where = self.lookup(target)
        if where == "local":
            return Reply(250, f"<{target}>", "2.1.5")
        if where == "unknown":
            return Reply(550, f"<{target}>: User unknown", "5.1.1")
        return Reply(252, f"<{target}> is not local; cannot verify", "2.5.2")
