"""The private Postfix the tests use: its own files, port and log; the machine's left alone.

Skipped, with the reason, without root or without Postfix installed (the ``postfix``
fixture in tests/conftest.py and ``unavailable()`` say which).
"""

from __future__ import annotations

import hashlib
import socket
import socketserver
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import smtplab
from smtplab.private_postfix import PostfixError, PrivatePostfix, unavailable

SYSTEM_CONFIG = Path("/etc/postfix")


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` with the SHA-256 of its content (empty if absent)."""
    if not directory.exists():
        return {}
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def processes_of(config_directory: Path) -> list[int]:
    """Processes whose environment names ``config_directory`` as MAIL_CONFIG: the
    instance's master and every daemon it started (postfix -c sets it; they inherit it)."""
    wanted = f"MAIL_CONFIG={config_directory}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if wanted in environ and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def test_the_instance_has_its_own_files_port_and_banner(postfix: PrivatePostfix) -> None:
    assert postfix.root is not None
    for name in ("config_directory", "queue_directory", "data_directory", "mail_spool_directory"):
        assert Path(postfix.setting(name)).is_relative_to(postfix.root), name
    assert postfix.setting("inet_interfaces") == "127.0.0.1"
    assert postfix.setting("maillog_file") == str(postfix.log)
    assert postfix.port != 25
    session = smtplab.connect("127.0.0.1", postfix.port)
    greeting = str(session.greeting)
    assert postfix.name in greeting and "Postfix" in greeting, greeting
    session.quit()
    # Its daemons are its own: each was started with its configuration directory.
    assert postfix.master_pid in processes_of(postfix.config_directory)


def test_its_log_is_a_real_postfix_log_that_smtplab_reads(postfix: PrivatePostfix) -> None:
    unknown = f"no-such-{uuid.uuid4().hex[:8]}@localhost"
    session = smtplab.connect("127.0.0.1", postfix.port)
    session.ehlo()
    session.mail("alice@example.net")
    reply = session.rcpt(unknown)
    assert (reply.code, reply.enhanced) == (550, "5.1.1")
    session.quit()
    frame = None
    for _ in range(50):  # postlogd writes the lines a moment after smtpd sent them
        frame = smtplab.read(postfix.log, format="postfix")
        refused = frame[frame["text"].fillna("").str.contains(unknown, regex=False)]
        if not refused.empty:
            rows = frame[frame["session"] == refused["session"].iloc[0]]
            if rows["kind"].iloc[-1] == "close":  # its disconnect line is written too
                break
        time.sleep(0.1)
    assert frame is not None and not refused.empty, postfix.log.read_text()
    rows = frame[frame["session"] == refused["session"].iloc[0]]
    assert refused[["code", "enhanced"]].values.tolist() == [[550, "5.1.1"]]
    assert set(rows["source"]) == {"postfix"} and rows["kind"].iloc[-1] == "close"


def test_settings_change_the_instance_and_not_the_machine(postfix: PrivatePostfix) -> None:
    before = snapshot(SYSTEM_CONFIG)
    assert postfix.setting("smtpd_helo_required") == "no"
    try:
        postfix.configure(smtpd_helo_required="yes")
        assert postfix.setting("smtpd_helo_required") == "yes"
        session = smtplab.connect("127.0.0.1", postfix.port)
        refused = session.send("MAIL FROM:<alice@example.net>")
        session.quit()
    finally:
        postfix.configure(smtpd_helo_required="no")
    assert refused.code == 503  # "Error: send HELO/EHLO first", from the instance's setting
    assert postfix.setting("smtpd_helo_required") == "no"
    assert snapshot(SYSTEM_CONFIG) == before


def test_stop_leaves_nothing_behind() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"no private Postfix: {reason}")
    instance = PrivatePostfix().start()
    root, config, port = instance.root, instance.config_directory, instance.port
    assert root is not None and root.is_dir() and processes_of(config)
    instance.stop()
    assert not root.exists()
    assert processes_of(config) == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    instance.stop()  # a second stop does nothing


class _Impostor(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(b"220 mx.example ESMTP Postfix\r\n")


@pytest.fixture
def impostor() -> Iterator[int]:
    """A server that greets like Postfix, on a port of its own."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Impostor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_already_on_the_port_is_not_taken_for_the_instance(impostor: int) -> None:
    """Saying "Postfix" in a greeting does not make a server the instance (the old tests
    took any Postfix on port 25 for theirs); starting there fails and leaves nothing."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"no private Postfix: {reason}")
    instance = PrivatePostfix(port=impostor)
    with pytest.raises(PostfixError) as raised:
        instance.start(timeout=15)
    assert str(impostor) in str(raised.value)  # "bind 127.0.0.1 port N: Address already in use"
    assert instance.root is None and instance.master_pid is None
    leftovers = [
        p for p in Path(tempfile.gettempdir()).glob("smtplab-postfix-*")
        if (p / "etc" / "master.cf").exists()
        and f":{impostor} " in (p / "etc" / "master.cf").read_text()
    ]  # fmt: skip
    assert leftovers == []
