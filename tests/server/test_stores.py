"""Message stores: a 250 means stored (with a Received header); a broken session stores nothing."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

import smtplab
from smtplab.server import MaildirStore, MemoryStore, Store

MESSAGE = b"Subject: kept\r\nFrom: alice@example.net\r\n\r\nhello\r\n"


@pytest.fixture(params=["memory", "maildir"])
def store(request, tmp_path: Path) -> Store:
    return MemoryStore() if request.param == "memory" else MaildirStore(tmp_path / "Maildir")


def maildir_files(store: Store) -> list[str]:
    if not isinstance(store, MaildirStore):
        return []
    return sorted(p.name for sub in ("tmp", "new", "cur") for p in (store.path / sub).iterdir())


def test_every_250_message_is_stored_with_its_envelope_and_received_header(store: Store) -> None:
    lab = smtplab.Lab(store=store)
    results = [
        lab.send("alice@example.net", ["bob@example.org", "carol@example.org"], message=MESSAGE),
        lab.send("", "postmaster", message=MESSAGE),  # a bounce: null reverse-path
        lab.send("x@example.net", "nobody@example.org", message=MESSAGE),  # refused: 550
    ]
    acknowledged = [r for r in results if r.reply.code == 250]
    assert len(acknowledged) == 2
    stored = store.messages
    assert [m.recipients for m in stored] == [
        ("bob@example.org", "carol@example.org"),
        ("Postmaster",),  # RFC 5321 4.1.1.3: accepted without a domain, kept as sent
    ]
    assert [m.mail_from for m in stored] == ["alice@example.net", ""]
    for message, result in zip(stored, acknowledged, strict=True):
        # RFC 5321 4.4: the accepting server adds a Received line at the top.
        assert message.content.startswith(b"Received: from client.example.net ([192.0.2.10])")
        assert message.content.endswith(MESSAGE)
        assert message.id in result.reply.text  # "queued as <id>"
        assert message.message["Subject"] == "kept"
    table = store.frame()
    assert table.columns.tolist() == [
        "id",
        "session",
        "time",
        "mail_from",
        "recipients",
        "subject",
        "size",
    ]
    assert table["subject"].tolist() == ["kept", "kept"]


def test_a_session_killed_mid_data_stores_nothing(store: Store) -> None:
    lab = smtplab.Lab(store=store)
    session = lab.connect()
    session.ehlo()
    session.mail("alice@example.net")
    session.rcpt("bob@example.org")
    session.data()
    session.send_raw(b"Subject: lost\r\n\r\nhalf a messa")
    session.close()
    assert store.messages == []
    assert maildir_files(store) == []
    closing = lab.transcript().iloc[-1]
    assert "during DATA" in closing["text"]


def test_maildir_is_readable_by_the_standard_library_and_survives_reopening(
    tmp_path: Path,
) -> None:
    import mailbox

    path = tmp_path / "Maildir"
    first = smtplab.Lab(store=MaildirStore(path))
    first.send("alice@example.net", "bob@example.org", message=MESSAGE)
    (name,) = os.listdir(path / "new")
    # The Maildir specification's unique name: time, M microseconds, P pid, Q delivery count.
    assert re.fullmatch(rf"1767603600\.M012000P{os.getpid()}Q\d+\.smtplab", name)
    (only,) = mailbox.Maildir(path, create=False)
    assert only["Return-Path"] == "<alice@example.net>"
    assert only["Delivered-To"] == "bob@example.org"
    assert only["Subject"] == "kept"
    reopened = MaildirStore(path)
    second = smtplab.Lab(store=reopened, start=1767700000)
    second.send("carol@example.net", "alice@example.org", message=MESSAGE)
    assert [m.mail_from for m in reopened.messages] == ["alice@example.net", "carol@example.net"]
    assert len({m.id for m in reopened.messages}) == 2


def test_a_failing_disk_means_451_and_no_file_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MaildirStore(tmp_path / "Maildir")

    def disk_full(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    lab = smtplab.Lab(store=store)
    result = lab.send("alice@example.net", "bob@example.org", message=MESSAGE)
    assert (result.reply.code, result.reply.enhanced) == (451, "4.3.0")
    assert maildir_files(store) == []
    notes = lab.transcript().query("kind == 'note'")["text"].tolist()
    assert any("No space left on device" in note for note in notes)


def test_an_empty_store_given_to_a_lab_is_the_one_it_uses(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path / "Maildir")
    assert len(store) == 0  # empty, hence falsy: the lab must still use it
    lab = smtplab.Lab(store=store)
    assert lab.store is store


def test_message_headers_that_look_like_an_envelope_stay_in_the_message(tmp_path: Path) -> None:
    store = MaildirStore(tmp_path / "Maildir")
    content = b"Delivered-To: old@example.org\r\nReturn-Path: <evil@example.net>\r\n\r\nbody\r\n"
    store.deliver("ABC123", "alice@example.net", ["bob@example.org"], content, 1.0, "s-1")
    (message,) = store.messages
    assert (message.mail_from, message.recipients) == ("alice@example.net", ("bob@example.org",))
    assert message.content == content


def test_two_maildir_stores_on_one_directory_never_reuse_an_id(tmp_path: Path) -> None:
    first, second = MaildirStore(tmp_path / "Maildir"), MaildirStore(tmp_path / "Maildir")
    for store in (first, second):
        queue_id = store.new_id("s-1", 1.0)
        store.deliver(queue_id, "a@example.net", ["bob@example.org"], MESSAGE, 1.0, "s-1")
    assert len({m.id for m in first.messages}) == 2
