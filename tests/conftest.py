"""Shared helpers: drive a server with bytes, read back its replies; a private Postfix."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from smtplab.log.recorder import Recorder
from smtplab.private_postfix import PrivatePostfix, unavailable
from smtplab.protocol import Reply, ServerConfig
from smtplab.protocol.replies import ReplyParser
from smtplab.server import Mailboxes, MemoryStore, ServerSession
from smtplab.transport import VirtualClock


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """smtplab's cache (the lab's TLS certificate, the course site's widget renderer) in a
    folder of this run's own, for the tests and the programs they start: never the home's."""
    before = os.environ.get("SMTPLAB_CACHE")
    os.environ["SMTPLAB_CACHE"] = str(tmp_path_factory.mktemp("smtplab-cache"))
    yield
    if before is None:
        del os.environ["SMTPLAB_CACHE"]
    else:
        os.environ["SMTPLAB_CACHE"] = before


class Harness:
    """A server session (default lab policy) fed raw bytes; replies are parsed back."""

    def __init__(self, config: ServerConfig | None = None, policy=None) -> None:
        self.clock = VirtualClock()
        self.store = MemoryStore()
        self.recorder = Recorder("t-1")
        self.server = ServerSession(
            policy=policy or Mailboxes(),
            store=self.store,
            recorder=self.recorder,
            clock=self.clock,
            config=config,
            client="192.0.2.1:1025",
        )
        self._parser = ReplyParser()
        self.server.start()

    def feed(self, *chunks: bytes) -> list[Reply]:
        """Send each chunk in turn; return the replies they produced (after the greeting)."""
        for chunk in chunks:
            self.server.receive(chunk)
        return self.replies()

    def replies(self) -> list[Reply]:
        self._parser.feed(self.server.data_to_send())
        out = []
        while (reply := self._parser.next_reply()) is not None:
            out.append(reply)
        return out


def codes(replies: list[Reply]) -> list[str]:
    """``["250", "550 5.1.1"]``: code and enhanced code of each reply."""
    return [f"{r.code} {r.enhanced}" if r.enhanced else str(r.code) for r in replies]


@pytest.fixture
def harness() -> Harness:
    h = Harness()
    assert codes(h.replies()) == ["220"]
    return h


EHLO = b"EHLO client.example.net\r\n"
TRANSACTION = b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"


@pytest.fixture(scope="session")
def postfix() -> Iterator[PrivatePostfix]:
    """A Postfix of the test session's own: its config, queue, mail spool and log in a
    temporary directory, listening on 127.0.0.1 on a free port; stopped and removed at the
    end. Any Postfix of the machine's own is never used, asked or changed.

    Skipped, saying why, without root or without Postfix installed; a Postfix that is
    installed but does not start is an error, not a skip.
    """
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"no private Postfix: {reason}")
    with PrivatePostfix() as instance:
        yield instance
