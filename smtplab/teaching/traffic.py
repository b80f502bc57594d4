"""A day at a small mail server: many sessions of mixed traffic, reproducible from a seed.

For looking at distributions without a capture at hand: clients on a handful of hosts send
to a server for example.org, mostly to real mailboxes, sometimes to a mistyped one (550
5.1.1), a full one (452 4.2.2), a moved one (551), a forwarded one (251), or to a domain the
server does not relay for (550 5.7.1). The server greylists new senders for five minutes
(451 4.7.1), and their queues retry, as real mail does; some clients pipeline, some chunk
with BDAT, some say HELO; the occasional client leaves without QUIT. Everything runs on the
lab's virtual clock, so a seed always gives the same transcript.
"""

from __future__ import annotations

import random

import pandas as pd

from smtplab.server.mailboxes import Mailboxes
from smtplab.teaching.lab import Lab

RECIPIENTS = (
    ("bob@example.org", 30),
    ("alice@example.org", 20),
    ("carol@example.org", 6),  # full: 452
    ("postmaster@example.org", 4),
    ("bbo@example.org", 5),  # mistyped: 550 5.1.1
    ("erin@example.org", 3),  # moved: 551
    ("dave@example.org", 3),  # forwarded: 251
    ("friend@elsewhere.example", 4),  # not relayed: 550 5.7.1
)
SENDERS = ("news@shop.example", "ann@partner.example", "billing@bank.example", "joe@home.example")


def simulate(sessions: int = 200, seed: int = 5321) -> pd.DataFrame:
    """A transcript of about ``sessions`` sessions of mixed traffic (retries add a few)."""
    rng = random.Random(seed)
    policy = Mailboxes(
        mailboxes=("alice", "bob", "carol", "dave"),
        full=("carol",),
        forwards={"dave": "dave@home.example"},
        moved={"erin": "erin@new.example"},
        greylist=300.0,
    )
    lab = Lab(policy, name="mx")
    addresses, weights = zip(*RECIPIENTS, strict=True)
    hosts = [f"198.51.100.{n}" for n in range(10, 22)]
    while len(lab.recorders) < sessions:
        lab.clock.advance(rng.expovariate(1 / 90))  # about one session every 90 s
        recipients = sorted(set(rng.choices(addresses, weights, k=rng.choice((1, 1, 1, 2, 3)))))
        host = rng.choice(hosts)
        style = rng.random()
        if style < 0.05:
            _vanish(lab, rng.choice(SENDERS), recipients[0], host)
            continue
        lab.send(
            rng.choice(SENDERS),
            recipients,
            subject="Hello",
            body="x" * rng.randint(20, 4000) + "\n",
            client_name=f"host{host.rsplit('.', 1)[1]}.example.net",
            client_address=host,
            ehlo=style > 0.1,
            pipelining=0.1 < style < 0.4,
            chunking=0.4 < style < 0.5,
            retries=1,
            retry_delay=400.0,
        )
    return lab.transcript()


def _vanish(lab: Lab, sender: str, recipient: str, host: str) -> None:
    """A client that gives up mid-transaction and drops the connection."""
    session = lab.connect(client_address=host)
    session.ehlo()
    session.mail(sender)
    session.rcpt(recipient)
    session.close()
