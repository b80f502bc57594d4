"""The live server over time: bounded memory, Maildir delivery that never lists or reads back.

Items 4 and 6 of the hardening issue: a long-running ``smtplab serve`` keeps only a bounded ring
of finished sessions and messages in memory, streams its transcript to a file as sessions
finish, and delivers into a Maildir without scanning it and off the event loop.
"""

from __future__ import annotations

import mailbox
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

import smtplab
from smtplab.log.schema import COLUMNS
from smtplab.log.stream import read_transcript
from smtplab.server import MaildirStore, StoredMessage
from smtplab.transport.tcp_server import ServerThread, TcpServer

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
    for _ in range(5):
        for store in stores:  # same session name, same time: the names must still differ
            queue_id = store.new_id("s-1", 1.0)
            store.deliver(queue_id, "a@example.net", ["bob@example.org"], MESSAGE, 1.0, "s-1")
    names = os.listdir(tmp_path / "Maildir" / "new")
    assert len(names) == 15
    read_back = stores[0].messages
    assert len({m.id for m in read_back}) == 15
    assert {m.id for m in read_back} == {i for s in stores for i in s.recent_ids}


# -- delivery off the event loop ----------------------------------------------------------------


class HeldMaildir(MaildirStore):
    """A Maildir whose disk is slow: keeping a message waits until the test lets it go."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.release = threading.Event()

    def _keep(self, message: StoredMessage) -> None:
        self.entered.set()
        self.release.wait(10)  # bounded, so old code (keeping on the loop) fails, not hangs
        super()._keep(message)


def read_reply_lines(sock: socket.socket, count: int) -> list[bytes]:
    """``count`` final reply lines (multi-line replies counted once)."""
    buffer, lines = b"", []
    while len(lines) < count:
        while b"\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return lines
            buffer += chunk
        line, buffer = buffer.split(b"\r\n", 1)
        if line[3:4] != b"-":
            lines.append(line)
    return lines


def test_a_slow_store_stalls_no_other_client_and_pipelined_replies_keep_their_order(
    tmp_path: Path,
) -> None:
    store = HeldMaildir(tmp_path / "Maildir")
    with ServerThread(TcpServer(store=store, idle_timeout=30)) as server:
        sender = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        assert read_reply_lines(sender, 1)[0].startswith(b"220")
        sender.sendall(
            b"EHLO a.example\r\nMAIL FROM:<alice@example.net>\r\n"
            b"RCPT TO:<bob@example.org>\r\nDATA\r\n"
        )
        assert [r[:3] for r in read_reply_lines(sender, 4)] == [b"250", b"250", b"250", b"354"]
        # The message, and commands pipelined after its final dot (RFC 2920 3.1).
        sender.sendall(MESSAGE + b".\r\nNOOP\r\nQUIT\r\n")
        assert store.entered.wait(10)  # the store is at work, and stays so until released
        # Meanwhile another client is greeted and served: the event loop is not blocked.
        other = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        started = time.monotonic()
        assert read_reply_lines(other, 1)[0].startswith(b"220")
        other.sendall(b"NOOP\r\n")
        assert read_reply_lines(other, 1)[0].startswith(b"250")
        assert time.monotonic() - started < 5  # generous: the store holds for 10 s
        # Nothing after the dot was answered before the message's own reply.
        sender.setblocking(False)
        with pytest.raises(BlockingIOError):
            sender.recv(65536)
        assert os.listdir(store.path / "new") == []
        sender.setblocking(True)
        store.release.set()
        replies = read_reply_lines(sender, 3)
        assert [r[:3] for r in replies] == [b"250", b"250", b"221"]
        assert len(os.listdir(store.path / "new")) == 1  # the 250 came after it was on disk
        other.close()
        sender.close()
    assert store.delivered == 1
    assert store.recent_ids[0].encode() in replies[0]


def test_a_failing_store_over_tcp_answers_451_and_the_session_goes_on(tmp_path: Path) -> None:
    class Broken(MaildirStore):
        def _keep(self, message: StoredMessage) -> None:
            raise OSError(28, "No space left on device")

    with ServerThread(TcpServer(store=Broken(tmp_path / "M"))) as server:
        client = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("alice@example.net", ["bob@example.org"], MESSAGE)
        assert refused.value.smtp_code == 451
        assert client.noop()[0] == 250
        client.quit()
    notes = server.transcript().query("kind == 'note'")["text"].tolist()
    assert any("No space left on device" in note for note in notes)


# -- bounded memory over time -------------------------------------------------------------------


def test_a_connect_close_flood_keeps_a_bounded_ring_of_sessions() -> None:
    with ServerThread(TcpServer(keep_sessions=50, idle_timeout=30)) as server:
        for _ in range(3000):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5):
                pass
        deadline = time.monotonic() + 30
        while (server.sessions < 3000 or server._live) and time.monotonic() < deadline:
            # the last connections being accepted, and their closes noticed
            time.sleep(0.05)
        assert server.sessions == 3000
        assert len(server.recorders) == 50
        frame = server.transcript()
    assert frame["session"].nunique() == 50
    # The last ones to finish (closes are noticed in about the order they were made).
    numbers = {int(name.split("-")[1]) for name in frame["session"].astype(str)}
    assert min(numbers) > 2800 and 3000 in numbers


def test_the_memory_store_of_a_tcp_server_keeps_the_last_messages() -> None:
    with ServerThread(TcpServer(keep_messages=3)) as server:
        client = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
        for number in range(8):
            message = f"Subject: m{number}\r\n\r\nhi\r\n".encode()
            client.sendmail("alice@example.net", ["bob@example.org"], message)
        client.quit()
    assert [m.message["Subject"] for m in server.messages] == ["m5", "m6", "m7"]
    assert server.store.delivered == 8


# -- smtplab serve ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_serve(*arguments: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "smtplab", "serve", "--port", str(port), *arguments],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert "listening on 127.0.0.1:" in process.stdout.readline()
    return process, port


def send_one(port: int, number: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        message = f"Subject: m{number}\r\n\r\nhi\r\n".encode()
        client.sendmail("alice@example.net", ["bob@example.org"], message)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_serve_streams_the_transcript_and_sigterm_flushes_the_rest(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"served{suffix}"
    process, port = start_serve(
        "--transcript", str(path), "--transcript-batch", "40", "--keep-sessions", "3"
    )
    try:
        for number in range(10):
            send_one(port, number)
        if suffix == ".csv":  # batches are on disk while the server runs
            deadline = time.monotonic() + 10
            while len(path.read_text().splitlines()) < 41 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(path.read_text().splitlines()) >= 41  # the header and a batch or more
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)  # open at SIGTERM
        assert idle.recv(1024).startswith(b"220")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert idle.recv(1024).startswith(b"421")  # told the server is stopping, then closed
    idle.close()
    assert "11 sessions, 10 messages stored" in out
    frame = read_transcript(path)
    # Every session, though the server kept only 3 in memory; and with the schema's dtypes.
    assert frame["session"].nunique() == 11
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == COLUMNS
    assert (frame.query("verb == 'DATA-END' and kind == 'reply'")["code"] == 250).sum() == 10
    assert frame.groupby("session", observed=True)["kind"].last().eq("close").all()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        assert pq.ParquetFile(path).num_row_groups >= 2  # written in batches, not at once
        same = pd.read_parquet(path)  # pandas alone restores the dtypes
        assert {name: str(dtype) for name, dtype in same.dtypes.items()} == COLUMNS


def test_serve_reports_only_the_messages_of_this_run(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True)
    for number in range(2000):  # named as an earlier version of smtplab named them
        old = maildir / "cur" / f"1700000000.M{number:06d}Q{number:010X}.smtplab:2,S"
        old.write_bytes(b"Return-Path: <old@example.net>\r\n\r\nold\r\n")
    process, port = start_serve("--maildir", str(maildir))
    try:
        for number in range(2):
            send_one(port, number)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    report = next(line for line in out.splitlines() if "messages stored" in line)
    assert report.startswith("smtplab: 2 sessions, 2 messages stored: ")
    stored = [mailbox.Maildir(maildir, create=False).get_file(key).read() for key in
              [name.split(":")[0] for name in os.listdir(maildir / "new")]]  # fmt: skip
    assert len(stored) == 2
    for content in stored:  # the ids reported are those of the two new files
        (queue_id,) = re.findall(rb"with ESMTP id ([0-9A-F]+)", content)
        assert queue_id.decode() in report


# -- other state that outlives a connection -----------------------------------------------------


def test_the_greylist_forgets_its_oldest_triplets_beyond_its_bound() -> None:
    from smtplab.server.greylist import Greylist

    greylist = Greylist(300, max_entries=100)
    for number in range(1000):  # a client making up recipients
        assert greylist.check("192.0.2.9:1000", "a@example.net", f"r{number}@example.org", 0.0)
    assert len(greylist.first_seen) == 100
    # The newest are remembered and pass after the delay; a forgotten one is greylisted anew.
    assert greylist.check("192.0.2.9:2000", "a@example.net", "r999@example.org", 300.0) == 0.0
    assert greylist.check("192.0.2.9:2000", "a@example.net", "r0@example.org", 300.0) == 300.0


def test_fired_faults_are_remembered_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from smtplab.server import faults

    monkeypatch.setattr(faults, "FIRED_KEPT", 5)
    policy = smtplab.Faults(smtplab.Mailboxes(), [smtplab.Fault.reply("NOOP", 250, "Busy")])
    lab = smtplab.Lab(policy)
    session = lab.connect()
    for _ in range(20):
        session.noop()
    assert len(policy.fired) == 5
    assert len(lab.transcript().query("kind == 'note'")) == 20  # each still noted in its row


def test_a_client_gone_before_the_250_leaves_the_message_stored(tmp_path: Path) -> None:
    store = HeldMaildir(tmp_path / "Maildir")
    ended: list[list[tuple]] = []
    server = TcpServer(store=store, on_session_end=lambda recorder: ended.append(recorder.tuples))
    with ServerThread(server):
        client = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        client.sendall(
            b"EHLO a.example\r\nMAIL FROM:<alice@example.net>\r\n"
            b"RCPT TO:<bob@example.org>\r\nDATA\r\n"
        )
        assert len(read_reply_lines(client, 5)) == 5  # greeting, EHLO, MAIL, RCPT, 354
        client.sendall(MESSAGE + b".\r\n")
        assert store.entered.wait(10)
        client.close()  # gone while the store is at work
        time.sleep(0.2)
        assert ended == []  # the session is not over until the store has answered
        store.release.set()
        deadline = time.monotonic() + 10
        while not ended and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(os.listdir(store.path / "new")) == 1  # stored: it was accepted, never lost
    (rows,) = ended
    # Reading waited while the store worked, so the server learnt of the close only after
    # its 250 had gone out (into the void: the race RFC 1047 describes); the row says so.
    kinds_codes = [(row[4], row[7]) for row in rows]
    assert kinds_codes[-2:] == [("reply", 250), ("close", None)]


def test_stopping_while_a_message_is_stored_says_250_before_421(tmp_path: Path) -> None:
    store = HeldMaildir(tmp_path / "Maildir")
    thread = ServerThread(TcpServer(store=store), grace=10)
    server = thread.start()
    client = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    client.sendall(
        b"EHLO a.example\r\nMAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
    )
    assert len(read_reply_lines(client, 5)) == 5
    client.sendall(MESSAGE + b".\r\n")
    assert store.entered.wait(10)
    stopper = threading.Thread(target=thread.stop)
    stopper.start()  # the server stops while the store is at work...
    time.sleep(0.3)
    store.release.set()  # ...and the message's reply still comes first: a 421 alone would
    replies = read_reply_lines(client, 2)  # make the client send it again (a duplicate)
    stopper.join(15)
    assert not stopper.is_alive()
    assert [r[:9] for r in replies] == [b"250 2.0.0", b"421 4.3.2"]
    assert len(os.listdir(store.path / "new")) == 1
    client.close()
