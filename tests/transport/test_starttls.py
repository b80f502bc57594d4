"""STARTTLS (RFC 3207) on the TCP server: smtplib and swaks upgrade, the session starts over."""

from __future__ import annotations

import shutil
import smtplib
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from smtplab.transport.certs import lab_certificate
from smtplab.transport.tcp_server import ServerThread, TcpServer

MESSAGE = b"Subject: secret\r\n\r\nsent under TLS\r\n"


@pytest.fixture(autouse=True)
def certificate_cache(tmp_path_factory, monkeypatch) -> Path:
    cache = tmp_path_factory.getbasetemp() / "smtplab-cache"  # made once for the whole run
    monkeypatch.setenv("SMTPLAB_CACHE", str(cache))
    return cache


def client_context() -> ssl.SSLContext:
    cert, _ = lab_certificate()
    return ssl.create_default_context(cafile=str(cert))  # verifies the lab certificate


def test_smtplib_starttls_then_sends_under_tls() -> None:
    with (
        ServerThread(TcpServer(tls=True)) as server,
        smtplib.SMTP("127.0.0.1", server.port) as client,
    ):
        client.ehlo("client.example.net")
        assert client.has_extn("starttls")
        code, text = client.starttls(context=client_context())
        assert (code, text) == (220, b"2.0.0 Ready to start TLS")
        client.ehlo("client.example.net")
        assert not client.has_extn("starttls"), "not offered again under TLS"
        client.sendmail("alice@example.net", ["bob@example.org"], MESSAGE)
    (stored,) = server.messages
    assert stored.content.endswith(MESSAGE)
    frame = server.transcript()
    tls_row = frame.query("kind == 'tls'").iloc[0]
    assert tls_row["text"].startswith("TLSv1.")
    after = frame[frame["seq"] > tls_row["seq"]]
    assert after["tls"].all() and not frame[frame["seq"] < tls_row["seq"]]["tls"].any()
    commands = frame.query("kind == 'command'")["verb"].tolist()
    assert commands[:3] == ["EHLO", "STARTTLS", "EHLO"]


def greeted_and_ehlo(port: int):  # type: ignore[no-untyped-def]
    """A raw socket that has read the greeting and the whole EHLO reply; and its reader."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    reader = raw.makefile("rb")
    reader.readline()
    raw.sendall(b"EHLO x.example\r\n")
    while not reader.readline().startswith(b"250 "):
        pass
    return raw, reader


def test_commands_pipelined_after_starttls_are_discarded() -> None:
    # CVE-2011-0411: plaintext sent after STARTTLS must never run as a command under TLS.
    with ServerThread(TcpServer(tls=True)) as server:
        raw, reader = greeted_and_ehlo(server.port)
        raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.net>\r\n")
        assert reader.readline().startswith(b"220 2.0.0")
        tls = client_context().wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"MAIL FROM:<a@example.net>\r\n")
        # Before EHLO again: 503, and no trace of the injected MAIL.
        assert tls.recv(1024).startswith(b"503")
        tls.sendall(b"QUIT\r\n")
        tls.recv(1024)
        tls.close()
    commands = server.transcript().query("kind == 'command'")["argument"].tolist()
    assert not any("injected" in (a or "") for a in commands)


def test_starttls_is_not_offered_without_tls_and_refused_twice() -> None:
    with ServerThread(TcpServer()) as plain, smtplib.SMTP("127.0.0.1", plain.port) as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        assert client.docmd("STARTTLS")[0] == 502
    with (
        ServerThread(TcpServer(tls=True)) as server,
        smtplib.SMTP("127.0.0.1", server.port) as client,
    ):
        client.starttls(context=client_context())
        client.ehlo()
        assert client.docmd("STARTTLS")[0] == 503


SWAKS = shutil.which("swaks")


@pytest.mark.skipif(SWAKS is None, reason="swaks is not installed (Debian: apt install swaks)")
def test_swaks_tls_delivers() -> None:
    with ServerThread(TcpServer(tls=True)) as server:
        done = subprocess.run(
            [SWAKS or "swaks", "--server", f"127.0.0.1:{server.port}", "--tls",
             "--from", "alice@example.net", "--to", "bob@example.org",
             "--header", "Subject: swaks over tls"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (stored,) = server.messages
    assert stored.message["Subject"] == "swaks over tls"
    assert server.transcript().query("kind == 'tls'").shape[0] == 1


def test_the_in_process_lab_refuses_starttls_clearly() -> None:
    import smtplab

    config = smtplab.ServerConfig(extensions=frozenset({"STARTTLS", "PIPELINING"}))
    with pytest.raises(ValueError, match="TcpServer"):
        smtplab.Lab(config=config)


def test_the_core_forgets_the_session_and_discards_plaintext_after_starttls() -> None:
    from smtplab.protocol import LocalProtocolError, Reply, ServerConfig
    from smtplab.protocol.config import DEFAULT_EXTENSIONS
    from smtplab.protocol.events import NEED_DATA, PAUSED, Hello, StartTls
    from smtplab.protocol.server import ServerConnection
    from smtplab.protocol.states import State

    conn = ServerConnection(ServerConfig(extensions=DEFAULT_EXTENSIONS | {"STARTTLS"}))
    conn.send(Reply(220, "ready"))
    conn.receive_data(b"EHLO x.example\r\n")
    assert isinstance(conn.next_event(), Hello)
    conn.send(Reply(250, "hi"))
    with pytest.raises(LocalProtocolError):
        conn.tls_started()  # no STARTTLS was answered 220
    conn.receive_data(b"STARTTLS\r\nMAIL FROM:<injected@example.net>\r\n")
    assert isinstance(conn.next_event(), StartTls)
    conn.send(Reply(220, "go ahead", "2.0.0"))
    assert (conn.state, conn.extended, conn.client_domain) == (State.CONNECTED, False, None)
    assert conn.next_event() is PAUSED  # until the transport runs TLS
    conn.tls_started()
    assert conn.next_event() is NEED_DATA  # the pipelined MAIL is gone


def test_smtplab_client_starttls_both_sides_record_tls() -> None:
    import smtplab

    with ServerThread(TcpServer(tls=True)) as server:
        session = smtplab.connect("127.0.0.1", server.port)
        session.ehlo()
        assert "STARTTLS" in session.extensions
        assert session.starttls(client_context()).code == 220
        assert session.extensions == {}, "forgotten: EHLO again"
        session.ehlo()
        assert "STARTTLS" not in session.extensions
        session.mail("alice@example.net")
        session.rcpt("bob@example.org")
        session.data()
        assert session.message(MESSAGE).code == 250
        session.quit()
    for frame in (session.transcript, server.transcript()):
        tls_seq = frame.query("kind == 'tls'")["seq"].iloc[0]
        assert frame[frame["seq"] > tls_seq]["tls"].all()
        assert not frame[frame["seq"] < tls_seq]["tls"].any()
    assert server.messages[0].content.endswith(MESSAGE)


def test_the_in_process_session_cannot_starttls() -> None:
    import smtplab

    session = smtplab.Lab().connect()
    session.ehlo()
    with pytest.raises(smtplab.LocalProtocolError, match="TLS"):
        session.starttls()


def test_a_failed_tls_handshake_is_recorded_as_a_close() -> None:
    import time

    with ServerThread(TcpServer(tls=True)) as running:
        raw, reader = greeted_and_ehlo(running.port)
        raw.sendall(b"STARTTLS\r\n")
        reader.readline()
        raw.sendall(b"this is not a TLS ClientHello\r\n" * 10)
        time.sleep(0.5)
        raw.close()
        deadline = time.monotonic() + 5
        while running._connections and time.monotonic() < deadline:
            time.sleep(0.05)
    frame = running.transcript()
    assert frame["kind"].iloc[-1] == "close"
    assert any("TLS handshake failed" in t for t in frame.query("kind == 'note'")["text"])
