"""The TCP server on real loopback sockets, driven by real clients: smtplib, raw sockets, swaks."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from smtplab import Fault, Faults, Mailboxes
from smtplab.transport.tcp_server import ServerThread, TcpServer

MESSAGE = (
    b"Subject: over TCP\r\nFrom: alice@example.net\r\nTo: bob@example.org\r\n\r\n"
    b"Hello over a real socket.\r\n.leading dot\r\n"
)


@pytest.fixture
def server() -> Iterator[TcpServer]:
    with ServerThread(TcpServer(idle_timeout=5)) as running:
        yield running


def replies_of(server: TcpServer) -> list[str]:
    rows = server.transcript().query("kind == 'reply'")
    return [
        f"{c} {e}" if isinstance(e, str) else str(c)
        for c, e in zip(rows["code"], rows["enhanced"], strict=True)
    ]


class Raw:
    """A plain socket client: send bytes, read what the server answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""

    def read_replies(self, count: int) -> list[bytes]:
        replies: list[bytes] = []
        while len(replies) < count:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return replies
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            if line[3:4] != b"-":
                replies.append(line[:3])
        return replies

    def talk(self, data: bytes, count: int = 1) -> list[bytes]:
        self.sock.sendall(data)
        return self.read_replies(count)

    def close(self) -> None:
        self.sock.close()


class ServerThreadStopper:
    """Stops a server thread in the background, so the test can keep talking meanwhile."""

    def __init__(self, thread: ServerThread) -> None:
        self._worker = threading.Thread(target=thread.stop)
        self._worker.start()
        time.sleep(0.2)

    def join(self) -> None:
        self._worker.join(10)
        assert not self._worker.is_alive()


def test_smtplib_sends_a_message_that_arrives_byte_for_byte(server: TcpServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.port, local_hostname="client.example.net") as client:
        refused = client.sendmail("alice@example.net", ["bob@example.org"], MESSAGE)
    assert refused == {}
    (stored,) = server.messages
    assert (stored.mail_from, stored.recipients) == ("alice@example.net", ("bob@example.org",))
    assert stored.content.endswith(MESSAGE)  # smtplib stuffed the dot, the server unstuffed it
    frame = server.transcript()
    assert set(frame["source"]) == {"tcp"}
    assert frame["client"].iloc[0].startswith("127.0.0.1:")
    assert frame["server"].iloc[0] == f"127.0.0.1:{server.port}"
    assert replies_of(server)[-3:] == ["354", "250 2.0.0", "221 2.0.0"]


def test_smtplib_sees_refused_recipients_and_policy_faults(server: TcpServer) -> None:
    with smtplib.SMTP("127.0.0.1", server.port) as client:
        refused = client.sendmail(
            "alice@example.net", ["bob@example.org", "nobody@example.org"], MESSAGE
        )
    assert refused["nobody@example.org"][0] == 550
    assert len(server.messages) == 1


@pytest.mark.parametrize(
    "smuggled",
    [b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r", b"\r\n.\n", b"\r.\r"],
    ids=["LF.LF", "LF.CRLF", "CR.CRLF", "CRLF.CR", "CRLF.LF", "CR.CR"],
)
def test_no_smuggling_variant_ends_the_message_over_tcp(server: TcpServer, smuggled: bytes) -> None:
    # RFC 5321 4.1.1.4: only <CRLF>.<CRLF> ends the data (CVE-2023-51764 and friends).
    raw = Raw(server.port)
    try:
        assert raw.read_replies(1) == [b"220"]
        hello = (
            b"EHLO attacker.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\n"
        )
        assert raw.talk(hello + b"DATA\r\n", 4) == [b"250", b"250", b"250", b"354"]
        forged = (
            b"Subject: first\r\n\r\nfirst" + smuggled + b"MAIL FROM:<ceo@example.org>\r\n"
            b"RCPT TO:<bob@example.org>\r\nDATA\r\nSubject: forged\r\n\r\nsecond\r\n.\r\n"
        )
        # One reply for one message: the server never read the forged commands as commands.
        assert raw.talk(forged, 1) == [b"554"]
        assert raw.talk(b"QUIT\r\n", 1) == [b"221"]
    finally:
        raw.close()
    assert server.messages == []
    commands = server.transcript().query("kind == 'command'")["verb"].tolist()
    assert commands == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


def test_an_idle_client_is_told_421_4_4_2_and_disconnected() -> None:
    with ServerThread(TcpServer(idle_timeout=0.3)) as server:
        raw = Raw(server.port)
        assert raw.read_replies(1) == [b"220"]
        assert raw.read_replies(1) == [b"421"]
        assert raw.sock.recv(10) == b""  # closed
        raw.close()
    assert replies_of(server) == ["220", "421"]  # before EHLO: no enhanced codes


def test_too_many_errors_close_the_session_with_421_4_7_0() -> None:
    with ServerThread(TcpServer(error_limit=3)) as server:
        raw = Raw(server.port)
        raw.read_replies(1)
        assert raw.talk(b"EHLO x.example\r\n", 1) == [b"250"]
        assert raw.talk(b"FOO\r\nBAR\r\nBAZ\r\n", 4) == [b"500", b"500", b"500", b"421"]
        raw.close()
    assert replies_of(server)[-1] == "421 4.7.0"


def test_connections_over_the_limit_get_421_and_are_recorded() -> None:
    with ServerThread(TcpServer(max_sessions=1)) as server:
        first = Raw(server.port)
        assert first.read_replies(1) == [b"220"]
        second = Raw(server.port)
        assert second.read_replies(1) == [b"421"]
        second.close()
        first.talk(b"QUIT\r\n", 1)
        first.close()
    assert "421 4.7.0" in replies_of(server)


def test_stop_says_421_to_idle_sessions_and_lets_a_transaction_finish() -> None:
    thread = ServerThread(TcpServer(), grace=5)
    server = thread.start()
    idle, busy = Raw(server.port), Raw(server.port)
    idle.read_replies(1)
    busy.read_replies(1)
    busy.talk(b"EHLO x.example\r\nMAIL FROM:<a@example.net>\r\n", 2)
    busy.talk(b"RCPT TO:<bob@example.org>\r\nDATA\r\n", 2)
    stopper = ServerThreadStopper(thread)
    assert idle.read_replies(1) == [b"421"]  # at once: it had no transaction
    busy.sock.sendall(b"Subject: x\r\n\r\nfinished in the grace period\r\n.\r\n")
    assert busy.read_replies(1) == [b"250"]
    busy.talk(b"QUIT\r\n", 1)
    stopper.join()
    idle.close()
    busy.close()
    assert len(server.messages) == 1


def test_delay_faults_wait_in_real_time_and_stay_in_order() -> None:
    policy = Faults(Mailboxes(), [Fault.delay("MAIL", 0.3)])
    with ServerThread(TcpServer(policy)) as server:
        raw = Raw(server.port)
        raw.read_replies(1)
        raw.talk(b"EHLO x.example\r\n", 1)
        started = time.monotonic()
        # PIPELINING: MAIL and RCPT together; RCPT's reply must still come after MAIL's.
        got = raw.talk(b"MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\n", 2)
        waited = time.monotonic() - started
        raw.close()
    assert got == [b"250", b"250"]
    assert waited >= 0.3
    mail = server.transcript().query("kind == 'reply' and verb == 'MAIL'").iloc[0]
    assert mail["latency"] >= 0.3


def test_a_server_can_run_in_an_already_running_event_loop() -> None:
    async def main() -> list[str]:
        server = TcpServer()
        await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        greeting = await reader.readline()
        writer.write(b"QUIT\r\n")
        bye = await reader.readline()
        writer.close()
        await server.stop()
        return [greeting[:3].decode(), bye[:3].decode()]

    assert asyncio.run(main()) == ["220", "221"]


def test_a_taken_port_is_reported_by_start() -> None:
    with ServerThread(TcpServer()) as first, pytest.raises(OSError):
        ServerThread(TcpServer(port=first.port)).start()


SWAKS = shutil.which("swaks")


@pytest.mark.skipif(SWAKS is None, reason="swaks is not installed (Debian: apt install swaks)")
@pytest.mark.parametrize("pipeline", [False, True], ids=["plain", "pipeline"])
def test_swaks_delivers_to_the_tcp_server(server: TcpServer, pipeline: bool) -> None:
    command = [
        SWAKS or "swaks",
        "--server", f"127.0.0.1:{server.port}",
        "--from", "alice@example.net",
        "--to", "bob@example.org,nobody@example.org",
        "--helo", "swaks.example",
        "--header", "Subject: from swaks",
        "--body", "Hello from swaks\n.dot line\n",
    ]  # fmt: skip
    if pipeline:
        command.append("--pipeline")
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    (stored,) = server.messages
    assert stored.recipients == ("bob@example.org",)
    assert stored.message["Subject"] == "from swaks"
    assert b"\r\n.dot line\r\n" in stored.content
    assert "550 5.1.1" in replies_of(server)


def test_vanished_clients_leave_no_task_or_file_descriptor_behind() -> None:
    import os

    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    with ServerThread(TcpServer()) as server:
        before = open_descriptors()
        for _ in range(20):
            raw = Raw(server.port)
            raw.read_replies(1)
            raw.talk(b"EHLO x.example\r\nMAIL FROM:<a@example.net>\r\n", 2)
            raw.talk(b"RCPT TO:<bob@example.org>\r\nDATA\r\n", 2)
            raw.sock.sendall(b"Subject: cut\r\n\r\nhalf a mess")
            raw.close()  # gone mid-DATA, without QUIT
        deadline = time.monotonic() + 5
        while server._connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server._connections, "every session task ended"
        assert open_descriptors() <= before, "every socket closed"
    assert server.messages == []
    closes = server.transcript().query("kind == 'close'")["text"].tolist()
    assert len(closes) == 20 and all("during DATA" in text for text in closes)


def test_smtplib_sends_smtputf8_addresses_and_they_arrive_intact() -> None:
    # RFC 6531: with SMTPUTF8 in MAIL, addresses may be UTF-8.
    message = "Subject: Grüße\r\nFrom: jörg@example.net\r\n\r\nHallo Bøb\r\n".encode()
    with (
        ServerThread(TcpServer(Mailboxes(mailboxes=["bøb"]))) as server,
        smtplib.SMTP("127.0.0.1", server.port) as client,
    ):
        client.ehlo()
        assert client.has_extn("smtputf8")
        refused = client.sendmail(
            "jörg@example.net", ["bøb@example.org"], message, mail_options=["SMTPUTF8"]
        )
    assert refused == {}
    (stored,) = server.messages
    assert (stored.mail_from, stored.recipients) == ("jörg@example.net", ("bøb@example.org",))
    assert stored.content.endswith(message)
    assert b"with UTF8SMTP" in stored.content  # RFC 6531 4.3: the Received protocol


def test_aiosmtplib_sends_to_a_server_in_the_same_event_loop() -> None:
    aiosmtplib = pytest.importorskip("aiosmtplib")
    from email.message import EmailMessage

    async def main() -> TcpServer:
        server = TcpServer()
        await server.start()
        email = EmailMessage()
        email["From"], email["To"], email["Subject"] = "alice@example.net", "bob@example.org", "aio"
        email.set_content("sent by aiosmtplib\n.a leading dot\n")
        errors, _ = await aiosmtplib.send(email, hostname="127.0.0.1", port=server.port)
        assert errors == {}
        await server.stop()
        return server

    server = asyncio.run(main())
    (stored,) = server.messages
    assert stored.message["Subject"] == "aio"
    assert b"\r\n.a leading dot\r\n" in stored.content


def small_buffers(server: TcpServer, raw: Raw):  # type: ignore[no-untyped-def]
    """Small kernel buffers both ways, so "the client does not read" fills them after a few
    thousand replies; the raw socket stops blocking. Returns the server's connection."""
    (connection,) = server._connections
    server_socket = connection.transport.get_extra_info("socket")
    server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.sock.setblocking(False)
    return connection


def test_a_client_that_never_reads_cannot_make_the_server_buffer_without_bound() -> None:
    with ServerThread(TcpServer(junk_limit=None, error_limit=None, command_limit=None)) as server:
        raw = Raw(server.port)
        raw.read_replies(1)
        connection = small_buffers(server, raw)
        noops, blocked_since = b"NOOP\r\n" * 1000, None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                raw.sock.send(noops)
                blocked_since = None
            except BlockingIOError:  # the server is not reading what we send
                blocked_since = blocked_since or time.monotonic()
                if time.monotonic() - blocked_since > 1:
                    break
                time.sleep(0.05)
        assert blocked_since is not None, "the server kept reading a client that never reads"
        assert connection.transport.get_write_buffer_size() < 1_000_000
        assert len(server.recorders[0].tuples) < 200_000
        raw.close()


def test_a_client_that_never_reads_its_last_replies_is_cut_off(monkeypatch) -> None:
    import smtplab.transport.tcp_server as tcp

    monkeypatch.setattr(tcp, "LINGER", 0.5)
    with ServerThread(TcpServer(idle_timeout=0.3, junk_limit=None)) as server:
        raw = Raw(server.port)
        raw.read_replies(1)
        small_buffers(server, raw)
        for _ in range(100):  # fill every buffer with replies nobody reads
            try:
                raw.sock.send(b"NOOP\r\n" * 1000)
            except BlockingIOError:
                break
        # Idle now: the server says 421 into full buffers, closes, and cuts off after LINGER.
        deadline = time.monotonic() + 10
        while server._connections and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not server._connections, "the slot is free again"
        raw.close()


def test_the_idle_timer_survives_a_delayed_reply() -> None:
    policy = Faults(Mailboxes(), [Fault.delay("EHLO", 0.6)])
    with ServerThread(TcpServer(policy, idle_timeout=0.4)) as server:
        raw = Raw(server.port)
        raw.read_replies(1)
        started = time.monotonic()
        assert raw.talk(b"EHLO x.example\r\n", 1) == [b"250"]
        assert raw.read_replies(1) == [b"421"]  # idle after the delayed reply, not during it
        assert time.monotonic() - started >= 0.6 + 0.4 - 0.05
        raw.close()


def test_a_broken_decision_gets_451_not_a_dead_connection() -> None:
    from smtplab import Reply
    from smtplab.server import Answer, Policy

    class Nested(Policy):
        def on_noop(self, ctx, event):
            return Answer(Answer(Reply(250, "OK", "2.0.0"), 0.1), 0.1)  # type: ignore[arg-type]

        def on_rset(self, ctx, event):
            return Answer("not a reply")  # type: ignore[arg-type]

    with ServerThread(TcpServer(Nested())) as server:
        raw = Raw(server.port)
        raw.read_replies(1)
        assert raw.talk(b"EHLO x.example\r\nNOOP\r\nRSET\r\nQUIT\r\n", 4) == [
            b"250", b"250", b"451", b"221",
        ]  # fmt: skip
        raw.close()
    noop = server.transcript().query("kind == 'reply' and verb == 'NOOP'").iloc[0]
    assert noop["latency"] >= 0.2  # both delays


def test_stop_says_421_as_soon_as_a_transaction_ends() -> None:
    thread = ServerThread(TcpServer(), grace=10)
    server = thread.start()
    busy = Raw(server.port)
    busy.read_replies(1)
    busy.talk(b"EHLO x.example\r\nMAIL FROM:<a@example.net>\r\n", 2)
    busy.talk(b"RCPT TO:<bob@example.org>\r\nDATA\r\n", 2)
    stopper = ServerThreadStopper(thread)
    started = time.monotonic()
    assert busy.talk(b"Subject: x\r\n\r\nlast one\r\n.\r\n", 2) == [b"250", b"421"]
    assert time.monotonic() - started < 5, "not the whole grace period"
    stopper.join()
    busy.close()


def test_junk_commands_beyond_the_limit_count_as_errors() -> None:
    with ServerThread(TcpServer(junk_limit=3, error_limit=2)) as server:
        raw = Raw(server.port)
        raw.read_replies(1)
        got = raw.talk(b"NOOP\r\n" * 6, 6)
        raw.close()
    assert got == [b"250", b"250", b"250", b"250", b"250", b"421"]


def test_one_close_row_per_session_whoever_ends_it(server: TcpServer) -> None:
    raw = Raw(server.port)
    raw.read_replies(1)
    assert raw.talk(b"QUIT\r\n", 1) == [b"221"]
    raw.sock.sendall(b"NOOP\r\n")  # after QUIT: ignored
    raw.close()
    time.sleep(0.3)
    closes = server.transcript().query("kind == 'close'")
    assert closes["sender"].tolist() == ["server"]
