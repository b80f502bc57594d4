"""The TCP server against hostile clients, on real loopback sockets.

Pipelining floods that never read their replies, slowloris clients that drip bytes, and many
sessions from one address: each is bounded (sizes, counts, replies), and a well-behaved client
connecting meanwhile is still served. Deadlines are configured in fractions of a second here;
wall-clock bounds are generous and only say "does not hang".
"""

from __future__ import annotations

import asyncio
import re
import select
import smtplib
import socket
import threading
import time

import pytest

from smtplab.transport import tcp_server
from smtplab.transport.tcp_server import ServerThread, TcpServer

REPLY_START = re.compile(rb"\d{3}( [245]\.\d{1,3}\.\d{1,3}(?= |$))?")
MESSAGE = b"Subject: hi\r\nFrom: alice@example.net\r\nTo: bob@example.org\r\n\r\nHello.\r\n"


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A client socket to the server, from ``source`` (any 127.x.y.z is loopback)."""
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def read_replies(sock: socket.socket, count: int) -> list[bytes]:
    """The first lines (code and enhanced code) of the next ``count`` replies."""
    replies: list[bytes] = []
    buffer = b""
    while len(replies) < count:
        while b"\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                return replies
            buffer += chunk
        line, buffer = buffer.split(b"\r\n", 1)
        if line[3:4] != b"-":
            replies.append(REPLY_START.match(line).group(0))  # type: ignore[union-attr]
    return replies


def well_behaved(port: int, source: str = "127.0.0.1") -> tuple[int, bytes]:
    """One whole transaction with smtplib; returns the reply to the final dot."""
    with smtplib.SMTP(timeout=10, source_address=(source, 0)) as client:
        code, text = client.connect("127.0.0.1", port)
        if code != 220:
            raise smtplib.SMTPConnectError(code, text)
        client.ehlo("good.example")
        client.mail("alice@example.net")
        client.rcpt("bob@example.org")
        return client.data(MESSAGE)


def session_rows(server: TcpServer, number: int):  # type: ignore[no-untyped-def]
    frame = server.transcript()
    return frame[frame["session"] == f"{server.name}-{number}"]


def connection_of(server: TcpServer, number: int):  # type: ignore[no-untyped-def]
    for connection in list(server._connections):
        if connection.session.recorder.session == f"{server.name}-{number}":
            return connection
    raise AssertionError(f"session {number} is not open")


def on_loop(server_thread: ServerThread, coroutine) -> asyncio.Future:  # type: ignore[no-untyped-def]
    assert server_thread._loop is not None
    return asyncio.run_coroutine_threadsafe(coroutine, server_thread._loop)  # type: ignore[return-value]


# -- item 3: pipelining floods ---------------------------------------------------------------


def flood(sock: socket.socket, line: bytes, total: int, stop: threading.Event) -> int:
    """Send ``total`` octets of ``line`` repeated, never reading; returns what was sent."""
    block = line * (65536 // len(line))
    sock.setblocking(False)
    sent = 0
    while sent < total and not stop.is_set():
        try:
            sent += sock.send(block)
        except BlockingIOError:
            select.select([], [sock], [], 0.05)
        except OSError:  # the server closed on us
            break
    return sent


def test_a_flood_that_never_reads_stops_being_parsed_and_others_are_served() -> None:
    """20 MB of pipelined NOOP/RSET/EHLO, no limits on junk or errors, replies never read:
    parsing stops once the replies pile up, reading pauses, every buffer stays bounded."""
    with ServerThread(TcpServer(junk_limit=None, error_limit=None, command_limit=None)) as server:
        hostile = connect(server.port)
        assert read_replies(hostile, 1) == [b"220"]
        hostile.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        connection = connection_of(server, 1)
        stop = threading.Event()
        sent: list[int] = []
        flooder = threading.Thread(
            target=lambda: sent.append(
                flood(hostile, b"NOOP\r\nRSET\r\nEHLO x.example\r\n", 20_000_000, stop)
            )
        )
        flooder.start()
        largest_inbox = largest_unsent = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the server stops taking input
            before = connection.session.inputs
            time.sleep(0.5)
            largest_inbox = max(largest_inbox, len(connection.inbox))
            largest_unsent = max(largest_unsent, connection.transport.get_write_buffer_size())
            if connection.session.inputs == before:
                break
        assert connection.session.inputs == before, "the server kept parsing"
        assert not connection.reading
        # Meanwhile a well-behaved client gets its greeting and its message through.
        assert well_behaved(server.port, "127.0.0.2")[0] == 250
        stop.set()
        flooder.join()
        assert sent[0] < 20_000_000  # the flood was held back, not swallowed
        assert largest_inbox <= tcp_server.MAX_UNPARSED + 256 * 1024
        assert largest_unsent < 1_000_000
        assert connection.session.inputs < 100_000
        hostile.close()
    assert len(server.messages) == 1


def test_one_huge_pipelined_burst_is_answered_a_bounded_slice_per_loop_turn() -> None:
    """However much input waits, one turn of the event loop hands at most a slice or two of
    it to the session, so other clients are not kept waiting behind it."""
    thread = ServerThread(TcpServer(junk_limit=None, error_limit=None, command_limit=None))
    server = thread.start()
    try:
        client = connect(server.port)
        assert read_replies(client, 1) == [b"220"]
        connection = connection_of(server, 1)
        steps: list[int] = []
        watching, finished = threading.Event(), threading.Event()

        async def watch() -> None:  # runs between the server's callbacks
            last = connection.session.inputs
            watching.set()
            while not finished.is_set():
                await asyncio.sleep(0)
                steps.append(connection.session.inputs - last)
                last = connection.session.inputs

        watcher = on_loop(thread, watch())
        assert watching.wait(10)  # the burst goes only once the watcher has taken its first look
        burst = b"NOOP\r\n" * 100_000  # 600 kB, sent in one go; its replies are read
        reader = threading.Thread(target=lambda: read_replies(client, 100_000))
        reader.start()
        client.sendall(burst)
        reader.join(60)
        finished.set()
        watcher.result(10)
        # One slice is FEED octets of 6-octet commands; a turn may see two (a read and a slice).
        assert max(steps) <= 2 * (tcp_server.FEED // 6 + 1)
        assert sum(steps) >= 100_000
        client.close()
    finally:
        thread.stop()


def test_a_flood_of_junk_with_the_default_limits_ends_with_421_4_7_0() -> None:
    with ServerThread(TcpServer()) as server:
        hostile = connect(server.port)
        assert read_replies(hostile, 1) == [b"220"]
        stop = threading.Event()
        flooder = threading.Thread(
            target=flood, args=(hostile, b"EHLO x.example\r\nNOOP\r\n", 20_000_000, stop)
        )
        flooder.start()
        assert well_behaved(server.port)[0] == 250
        flooder.join(30)
        assert not flooder.is_alive(), "the server kept reading the flood"
        hostile.close()
    rows = session_rows(server, 1)
    replies = rows[rows["kind"] == "reply"]
    # 100 junk commands are free, then each counts as an error; the 20th error ends it.
    assert len(replies) == 1 + 100 + 20 + 1
    last = replies.iloc[-1]
    assert (last["code"], last["enhanced"]) == (421, "4.7.0")
    assert len(server.messages) == 1


def test_repeated_ehlo_and_helo_count_as_junk_commands() -> None:
    with ServerThread(TcpServer(junk_limit=3, error_limit=2)) as server:
        client = connect(server.port)
        read_replies(client, 1)
        client.sendall(b"EHLO a.example\r\nHELO b.example\r\n" * 3)
        got = read_replies(client, 6)
        client.close()
    # The 4th and 5th are beyond the junk limit: two errors, and the session is over.
    assert [reply[:3] for reply in got] == [b"250"] * 5 + [b"421"]
    assert got[-1] == b"421 4.7.0"


def test_a_delivered_message_forgives_earlier_errors_and_junk_as_in_postfix() -> None:
    with ServerThread(TcpServer(junk_limit=2, error_limit=2)) as server:
        client = connect(server.port)
        read_replies(client, 1)
        transaction = (
            b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
            + MESSAGE
            + b".\r\n"
        )
        # EHLO and two NOOPs are junk 1-3: the third is beyond the limit, one error.
        client.sendall(b"EHLO a.example\r\nNOOP\r\nNOOP\r\n" + transaction)
        assert [r[:3] for r in read_replies(client, 7)] == [b"250"] * 5 + [b"354", b"250"]
        # Without the pardon, the second NOOP here would be the second error: 421.
        client.sendall(b"NOOP\r\nNOOP\r\nNOOP\r\nQUIT\r\n")
        assert [r[:3] for r in read_replies(client, 4)] == [b"250"] * 3 + [b"221"]
        client.close()


# -- item 5: slowloris, deadlines and sessions per address --------------------------------------


def drip(sock: socket.socket, data: bytes, every: float, for_at_most: float) -> bytes:
    """Send ``data`` one byte at a time until the server answers; returns its answer."""
    ends = time.monotonic() + for_at_most
    for byte in data:
        if time.monotonic() > ends:
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
        readable, _, _ = select.select([sock], [], [], every)
        if readable:
            return sock.recv(4096)
    return b""


def test_a_command_dripped_byte_by_byte_gets_421_4_4_2_at_the_command_deadline() -> None:
    with ServerThread(TcpServer(idle_timeout=0.5)) as server:
        client = connect(server.port)
        assert read_replies(client, 1) == [b"220"]
        client.sendall(b"EHLO a.example\r\n")
        assert read_replies(client, 1)[0][:3] == b"250"
        started = time.monotonic()
        line = b"MAIL FROM:<" + b"x" * 400 + b"@example.net>\r\n"
        answer = drip(client, line, every=0.05, for_at_most=10)
        assert answer.startswith(b"421 4.4.2"), answer  # bytes did not reset the deadline
        assert time.monotonic() - started < 5
        client.close()
    notes = session_rows(server, 1).query("kind == 'note'")["text"].tolist()
    assert any("no complete command" in note for note in notes)


def test_a_message_dripped_line_by_line_gets_421_4_4_2_at_the_data_deadline() -> None:
    with ServerThread(TcpServer(idle_timeout=5, data_timeout=0.6)) as server:
        client = connect(server.port)
        read_replies(client, 1)
        client.sendall(
            b"EHLO a.example\r\nMAIL FROM:<alice@example.net>\r\n"
            b"RCPT TO:<bob@example.org>\r\nDATA\r\n"
        )
        assert [r[:3] for r in read_replies(client, 4)] == [b"250", b"250", b"250", b"354"]
        started, answer = time.monotonic(), b""
        while not answer and time.monotonic() - started < 10:  # whole lines, slowly
            answer = drip(client, b"line\r\n", every=0.02, for_at_most=1)
        assert answer.startswith(b"421 4.4.2"), answer
        client.close()
    assert server.messages == []


def test_a_slow_message_within_the_data_deadline_is_accepted() -> None:
    """The body has its own deadline: slower than the command deadline is fine."""
    with ServerThread(TcpServer(idle_timeout=0.4, data_timeout=5)) as server:
        client = connect(server.port)
        read_replies(client, 1)
        client.sendall(
            b"EHLO a.example\r\nMAIL FROM:<alice@example.net>\r\n"
            b"RCPT TO:<bob@example.org>\r\nDATA\r\n"
        )
        read_replies(client, 4)
        for line in MESSAGE.split(b"\r\n")[:-1]:  # over a second in all
            client.sendall(line + b"\r\n")
            time.sleep(0.25)
        client.sendall(b".\r\n")
        assert read_replies(client, 1)[0][:3] == b"250"
        client.close()
    assert len(server.messages) == 1


def test_drippers_holding_every_slot_are_cut_off_and_a_good_client_gets_in() -> None:
    server_ = TcpServer(idle_timeout=0.5, max_sessions=5, max_sessions_per_client=None)
    with ServerThread(server_) as server:
        drippers = [connect(server.port, f"127.0.0.{10 + n}") for n in range(5)]
        for sock in drippers:
            assert read_replies(sock, 1) == [b"220"]
        stop = threading.Event()

        def keep_dripping(sock: socket.socket) -> None:
            while not stop.is_set():
                try:
                    sock.sendall(b"x")
                except OSError:
                    return
                time.sleep(0.05)

        threads = [threading.Thread(target=keep_dripping, args=(s,)) for s in drippers]
        for thread in threads:
            thread.start()
        served, ends = None, time.monotonic() + 20
        while served is None and time.monotonic() < ends:
            try:
                served = well_behaved(server.port, "127.0.0.2")
            except smtplib.SMTPConnectError:  # 421: every slot is taken, for now
                time.sleep(0.1)
        stop.set()
        for thread in threads:
            thread.join()
        assert served is not None and served[0] == 250
        for sock in drippers:
            sock.close()
    notes = server.transcript().query("kind == 'note'")["text"]
    assert notes.str.startswith("no complete command").sum() == 5  # each dripper, cut off


def test_sessions_beyond_the_limit_per_client_address_get_421_4_7_0() -> None:
    with ServerThread(TcpServer(max_sessions_per_client=3)) as server:
        first = [connect(server.port) for _ in range(3)]
        for sock in first:
            assert read_replies(sock, 1) == [b"220"]
        extra = connect(server.port)
        assert read_replies(extra, 1) == [b"421 4.7.0"]
        assert extra.recv(10) == b""  # closed
        extra.close()
        other = connect(server.port, "127.0.0.2")  # another address is not affected
        assert read_replies(other, 1) == [b"220"]
        # A session that ends frees its place for the address.
        first[0].sendall(b"QUIT\r\n")
        assert read_replies(first[0], 1)[0][:3] == b"221"
        first[0].close()
        time.sleep(0.2)
        again = connect(server.port)
        assert read_replies(again, 1) == [b"220"]
        for sock in [*first[1:], other, again]:
            sock.close()
    refused = session_rows(server, 4)
    assert refused["kind"].tolist() == ["connect", "reply", "close"]
    assert refused["code"].iloc[1] == 421 and refused["enhanced"].iloc[1] == "4.7.0"
    assert "from 127.0.0.1" in refused["text"].iloc[2]
    assert server._per_client == {}  # every session gone: nothing left in the table


def test_the_per_client_table_empties_when_clients_vanish() -> None:
    with ServerThread(TcpServer(max_sessions_per_client=2)) as server:
        for _ in range(3):  # a place not given back would get a 421 in the next round
            socks = [connect(server.port, f"127.0.1.{n}") for n in (1, 1, 2, 2, 3, 3)]
            for sock in socks:
                assert read_replies(sock, 1) == [b"220"]
            for sock in socks:
                sock.close()  # gone without QUIT
            deadline = time.monotonic() + 10
            while server._per_client and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server._per_client == {}


@pytest.mark.parametrize(
    "options",
    [
        {"idle_timeout": 0},
        {"data_timeout": -1},
        {"max_sessions_per_client": 0},
    ],
)
def test_limits_that_make_no_sense_are_refused_clearly(options: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        TcpServer(**options)


def test_a_bdat_chunk_dripped_gets_421_4_4_2_at_the_data_deadline() -> None:
    with ServerThread(TcpServer(idle_timeout=5, data_timeout=0.6)) as server:
        client = connect(server.port)
        read_replies(client, 1)
        client.sendall(
            b"EHLO a.example\r\nMAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\n"
        )
        assert [r[:3] for r in read_replies(client, 3)] == [b"250"] * 3
        client.sendall(b"BDAT 100000 LAST\r\n")
        answer = drip(client, b"x" * 1000, every=0.02, for_at_most=10)
        assert answer.startswith(b"421 4.4.2"), answer
        client.close()
    assert server.messages == []


def test_plaintext_beyond_one_slice_after_starttls_is_still_discarded(
    tmp_path_factory, monkeypatch
) -> None:
    """CVE-2011-0411 with more pipelined plaintext than one slice: what waits unparsed when
    the 220 goes out is dropped with the rest, never read as if it had come over TLS."""
    import ssl

    from smtplab.transport.certs import lab_certificate

    monkeypatch.setenv("SMTPLAB_CACHE", str(tmp_path_factory.getbasetemp() / "smtplab-cache"))
    with ServerThread(TcpServer(tls=True)) as server:
        client = connect(server.port)
        read_replies(client, 1)
        client.sendall(b"EHLO x.example\r\n")
        read_replies(client, 1)
        padding = b"NOOP\r\n" * (3 * tcp_server.FEED // 6)
        client.sendall(b"STARTTLS\r\n" + padding + b"MAIL FROM:<injected@example.net>\r\n")
        assert read_replies(client, 1) == [b"220 2.0.0"]
        cert, _ = lab_certificate()
        context = ssl.create_default_context(cafile=str(cert))
        tls = context.wrap_socket(client, server_hostname="localhost")
        tls.sendall(b"EHLO x.example\r\nQUIT\r\n")
        assert [r[:3] for r in read_replies(tls, 2)] == [b"250", b"221"]
        tls.close()
    commands = server.transcript().query("kind == 'command'")["verb"].tolist()
    assert commands == ["EHLO", "STARTTLS", "EHLO", "QUIT"]


def test_smtplab_serve_takes_the_new_limits(capsys) -> None:
    from smtplab.cli import build_parser
    from smtplab.cli.serve import build_server, main

    parser = build_parser()
    args = parser.parse_args(
        ["serve", "--data-timeout", "30", "--max-sessions-per-client", "0", "--idle-timeout", "9"]
    )
    server = build_server(
        args.host,
        args.port,
        idle_timeout=args.idle_timeout,
        data_timeout=args.data_timeout,
        max_sessions_per_client=args.max_sessions_per_client,
    )
    assert (server.idle_timeout, server.data_timeout) == (9, 30)
    assert server.max_sessions_per_client is None  # 0: no limit
    assert parser.parse_args(["serve"]).max_sessions_per_client == 20
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--max-sessions-per-client", "-1"])
    assert "0 (no limit) or more" in capsys.readouterr().err
    assert main(parser.parse_args(["serve", "--data-timeout", "0"])) == 2
    assert "data_timeout must be a positive number" in capsys.readouterr().err


def test_input_waiting_in_slices_is_all_answered_when_the_client_half_closes() -> None:
    """The end of the input is handed over after the input before it, not ahead of it."""
    with ServerThread(TcpServer(junk_limit=None, command_limit=None)) as server:
        client = connect(server.port)
        read_replies(client, 1)
        count = 4 * tcp_server.FEED // 6
        received: list[list[bytes]] = []
        reader = threading.Thread(target=lambda: received.append(read_replies(client, count + 1)))
        reader.start()
        client.sendall(b"NOOP\r\n" * count + b"QUIT\r\n")
        client.shutdown(socket.SHUT_WR)
        reader.join(30)
        client.close()
    assert [r[:3] for r in received[0]] == [b"250"] * count + [b"221"]


def test_an_endless_session_of_valid_transactions_is_cut_at_the_command_limit() -> None:
    """Valid transactions reset the error and junk counts, so only ``command_limit`` bounds a
    session's rows: past it, 421 4.7.0 between transactions (the client reconnects)."""
    transaction = (
        b"MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
        + MESSAGE
        + b".\r\n"
    )
    with ServerThread(TcpServer(port=0, command_limit=40)) as server:
        with connect(server.port) as sock:
            sock.sendall(b"EHLO good.example\r\n")
            for _ in range(20):  # EHLO + 3 commands a transaction: the 40th is the 13th DATA
                try:
                    sock.sendall(transaction)
                except OSError:  # closed by the server: what the test waits for
                    break
                time.sleep(0.05)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        rows = server.transcript()
        stored = len(server.messages)
    replies = [REPLY_START.match(line).group(0) for line in received.split(b"\r\n")[:-1]]  # type: ignore[union-attr]
    assert replies[-1] == b"421 4.7.0", replies[-6:]
    assert replies[-2] == b"250 2.0.0"  # the 13th message was let finish, then the 421
    assert replies.count(b"250 2.0.0") == stored == 13
    assert len(rows.query("kind == 'command'")) == 40
    assert "40 commands: closing" in set(rows.query("kind == 'note'")["text"])
