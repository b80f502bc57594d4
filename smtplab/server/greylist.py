"""Greylisting: refuse a new (client, sender, recipient) once, accept its retry after a delay.

Real spam engines often do not retry a 4xx; real MTAs do, from a queue, minutes later. A
greylisting server (postgrey, Postfix's postscreen) remembers the first attempt of each triplet
and answers 451 4.7.1 until ``delay`` seconds have passed since then (RFC 5321 4.5.4.1 asks a
client to retry after a transient failure, with at least 30 minutes between tries; greylisting
servers rely on that). Time is the caller's: virtual in-process, so a notebook can "wait" five
minutes in no time.
"""

from __future__ import annotations

#: Triplets remembered at most; beyond it the oldest first attempt is forgotten.
MAX_ENTRIES = 100_000


class Greylist:
    """Remembers first attempts; :meth:`check` says how long a triplet must still wait.

    The table is bounded: a client making up senders and recipients would otherwise grow it
    for the life of the server. Past ``max_entries`` triplets the oldest first attempt is
    forgotten (postgrey forgets by age instead); its next try is greylisted again, a 451,
    so forgetting never lets anything through and never loses mail.
    """

    def __init__(self, delay: float, max_entries: int = MAX_ENTRIES) -> None:
        if delay <= 0:
            raise ValueError("a greylisting delay must be positive (seconds)")
        if max_entries < 1:
            raise ValueError("a greylist must hold at least one triplet")
        self.delay = delay
        self.max_entries = max_entries
        self.first_seen: dict[tuple[str, str, str], float] = {}  # in order of first attempt

    def check(self, client: str, sender: str, recipient: str, now: float) -> float:
        """Seconds the triplet must still wait (0: accept). The first call starts the wait."""
        host = client.rsplit(":", 1)[0]  # the client's address, not its (changing) port
        triplet = (host, sender.lower(), recipient.lower())
        first = self.first_seen.get(triplet)
        if first is None:
            if len(self.first_seen) >= self.max_entries:
                del self.first_seen[next(iter(self.first_seen))]  # the oldest first attempt
            first = self.first_seen[triplet] = now
        return max(0.0, first + self.delay - now)
