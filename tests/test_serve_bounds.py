"""The live server over time: bounded memory, Maildir delivery that never lists or reads back.

Items 4 and 6 of the hardening issue: a long-running ``smtplab serve`` keeps only a bounded ring
of finished sessions and messages in memory, streams its transcript to a file as sessions
finish, and delivers into a Maildir without scanning it and off the event loop.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

import smtplab
from smtplab.server import MaildirStore

MESSAGE = b"Subject: bounded\r\n\r\nhello\r\n"


def fill_maildir(path: Path, count: int) -> None:
    """A Maildir holding ``count`` messages already (named as other programs name them)."""
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    for number in range(count):
        (path / "cur" / f"1700000000.M{number:06d}P1Q{number}.elsewhere:2,S").write_bytes(
            b"Subject: old\r\n\r\nold\r\n"
        )


class Listings:
    """Counts directory listings (os.scandir, os.listdir), the way glob and mailbox list."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        real_scandir, real_listdir = os.scandir, os.listdir

        def scandir(path: object = ".") -> object:
            self.calls.append(f"scandir {path}")
            return real_scandir(path)  # type: ignore[arg-type]

        def listdir(path: object = ".") -> list[str]:
            self.calls.append(f"listdir {path}")
            return real_listdir(path)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "scandir", scandir)
        monkeypatch.setattr(os, "listdir", listdir)


def test_delivering_into_a_big_maildir_never_lists_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "Maildir"
    fill_maildir(path, 20_000)
    listings = Listings(monkeypatch)
    store = MaildirStore(path)
    lab = smtplab.Lab(store=store)
    results = [lab.send("alice@example.net", "bob@example.org", message=MESSAGE) for _ in range(3)]
    assert [r.reply.code for r in results] == [250, 250, 250]
    assert listings.calls == []  # neither opening the store nor delivering lists the directory
    monkeypatch.undo()
    assert len(os.listdir(path / "new")) == 3
    assert store.delivered == 3
    assert list(store.recent_ids) == [r.reply.text.rsplit(" ", 1)[1] for r in results]


def test_maildir_ids_and_names_are_unique_across_stores_on_one_directory(tmp_path: Path) -> None:
    stores = [MaildirStore(tmp_path / "Maildir") for _ in range(3)]
    for round_ in range(5):
        for store in stores:  # same session name, same time: the names must still differ
            queue_id = store.new_id("s-1", 1.0)
            store.deliver(queue_id, "a@example.net", ["bob@example.org"], MESSAGE, 1.0, "s-1")
    names = os.listdir(tmp_path / "Maildir" / "new")
    assert len(names) == 15
    read_back = stores[0].messages
    assert len({m.id for m in read_back}) == 15
    assert {m.id for m in read_back} == {i for s in stores for i in s.recent_ids}
