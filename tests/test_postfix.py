"""smtplab's client against a real Postfix on loopback (.ci/run installs and starts one).

Skipped, with the reason, where no Postfix listens on 127.0.0.1:25.
"""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest

import smtplab

MAILBOX = Path("/var/mail/root")


def postfix_greeting() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 25), timeout=3) as sock:
            sock.settimeout(3)
            return sock.recv(512).decode("ascii", "replace")
    except OSError:
        return None


GREETING = postfix_greeting()
pytestmark = pytest.mark.skipif(
    GREETING is None or "Postfix" not in GREETING,
    reason="no Postfix on 127.0.0.1:25 (.ci/run installs and starts one: apt install postfix)",
)


def test_postfix_offers_what_smtplab_reads_from_its_ehlo_reply() -> None:
    session = smtplab.connect("127.0.0.1", 25)
    assert session.ehlo().code == 250
    # Postfix offers PIPELINING and CHUNKING, which aiosmtpd does not.
    assert {"PIPELINING", "CHUNKING", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN"} <= set(
        session.extensions
    )
    assert session.quit().code == 221


def test_a_message_from_smtplab_is_delivered_by_postfix() -> None:
    token = uuid.uuid4().hex
    session = smtplab.connect("127.0.0.1", 25)
    session.ehlo()
    assert session.mail("alice@example.net").code == 250
    assert session.rcpt("root@localhost").code == 250
    unknown = session.rcpt(f"no-such-user-{token[:8]}@localhost")
    assert (unknown.code, unknown.enhanced) == (550, "5.1.1")
    assert session.data().code == 354
    done = session.message(f"Subject: smtplab {token}\n\nHello Postfix.\n.a dot line\n")
    assert done.code == 250 and "queued as" in done.text
    session.quit()
    replies = session.transcript.query("kind == 'reply'")["code"].tolist()
    assert replies == [220, 250, 250, 250, 550, 354, 250, 221]
    if not MAILBOX.parent.exists():
        pytest.skip("Postfix accepted the message; no /var/mail to check its delivery")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if MAILBOX.exists() and token in MAILBOX.read_text(errors="replace"):
            break
        time.sleep(0.2)
    else:  # queued (checked above), but this machine's local delivery goes elsewhere
        pytest.skip(f"Postfix queued the message ({done.text}) but it did not reach {MAILBOX}")
    text = MAILBOX.read_text(errors="replace")
    assert f"Subject: smtplab {token}" in text
    after = text.split(f"Subject: smtplab {token}", 1)[1]
    assert "\n.a dot line\n" in after  # the transparency dot was removed on the way
