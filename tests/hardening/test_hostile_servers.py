"""Clients against hostile servers: bounded memory, a deadline per reply, one clear error.

Every client - the reply parser, the blocking and asyncio sessions, the conformance
connection, ``smtplab send`` and ``smtplab check`` - meets real servers on 127.0.0.1 that send
what no SMTP server should (:mod:`tests.hostile_server`): a 10 MB line, endless ``250-``
lines, a code ``abc``, binary, a reply before the greeting, replies nobody asked for, and a
greeting dripped one octet at a time.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

import smtplab
from smtplab.conformance.connection import ProbeConnection
from smtplab.log.recorder import Recorder
from smtplab.log.wire import WireRecorder
from smtplab.protocol.errors import RemoteProtocolError
from smtplab.protocol.replies import (
    MAX_REPLY_LINE,
    MAX_REPLY_LINES,
    MAX_REPLY_SIZE,
    ReplyParser,
)
from smtplab.transport import tcp_client
from tests.hostile_server import READ, Drip, Flood, HostileServer, wait_until

ROOT = Path(__file__).resolve().parents[2]
MB = 1 << 20
ENDLESS = b"250-" + b"x" * 20 + b"\r\n"  # one line of an endless multi-line reply
GREETING = b"220 mx.example.org ESMTP\r\n"

#: Server scripts, each a way of breaking SMTP, and what the client's error must name.
HOSTILE = {
    "code-abc": ([b"abc hello\r\n"], "not an SMTP reply line"),
    "binary": ([bytes(range(256)) * 64], "not an SMTP reply line"),
    "reply-before-greeting": ([b"250 ok\r\n" + GREETING], "cannot answer CONNECT"),
    "unsolicited-reply": (
        [GREETING, READ, b"250 mx\r\n250 2.0.0 nobody asked\r\n"],
        "arrived when no command was waiting",
    ),
    "10-MB-line": ([b"220-" + b"x" * (10 * MB)], f"longer than {MAX_REPLY_LINE} octets"),
    "endless-250-lines": ([Flood(ENDLESS, 50 * MB)], f"more than {MAX_REPLY_LINES} lines"),
}


def _feed_all(parser: ReplyParser, data: bytes, piece: int = 65536) -> tuple[list, list, int]:
    """Feed ``data`` as reads of ``piece`` octets; (replies, errors, most octets held)."""
    replies, errors, held = [], [], 0
    for start in range(0, len(data), piece):
        parser.feed(data[start : start + piece])
        while True:
            try:
                reply = parser.next_reply()
            except RemoteProtocolError as error:
                errors.append(str(error))
                continue
            if reply is None:
                break
            replies.append(reply)
        held = max(held, parser.buffered)
    return replies, errors, held


# -- the reply parser: limits, and one error per bad reply ----------------------------------


@pytest.mark.parametrize(
    ("name", "wire", "error"),
    [
        ("endless 250- lines", ENDLESS * (2 * MB // len(ENDLESS)), "more than 1000 lines"),
        ("10 MB line", b"250-" + b"x" * (10 * MB), f"longer than {MAX_REPLY_LINE}"),
        ("binary", os.urandom(4 * MB).replace(b"250", b"xxx"), "not an SMTP reply line"),
        ("wide lines", (b"250-" + b"y" * 8000 + b"\r\n") * 200, f"longer than {MAX_REPLY_SIZE}"),
    ],
)
def test_a_bad_reply_is_one_error_and_memory_stays_bounded(name, wire, error) -> None:
    parser = ReplyParser()
    tracemalloc.start()
    try:
        replies, errors, held = _feed_all(parser, wire)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert errors and error in errors[0], errors[:3]
    assert len(errors) == 1, f"{len(errors)} errors for one bad reply: {errors[:3]}"
    assert replies == []
    assert held <= MAX_REPLY_SIZE + 65536  # one read, and at most one reply's lines
    assert peak < 2 * MB + len(wire) // 100, f"peak {peak} octets for {len(wire)} fed"
    # The bad reply ends with its last line (or at the next reply line); then all is well.
    parser.feed(b"\r\n250 end of the bad one\r\n220 next\r\n")
    more, errors, _ = _feed_all(parser, b"")
    while (reply := parser.next_reply()) is not None:
        more.append(reply)
    assert [r.code for r in more][-1:] == [220]


def test_garbage_before_a_reply_does_not_swallow_the_reply() -> None:
    parser = ReplyParser()
    replies, errors, _ = _feed_all(parser, b"abc\r\n\x00\x01\r\nnot smtp\n220 mx ready\r\n")
    assert len(errors) == 1 and "abc" in errors[0]
    assert [r.code for r in replies] == [220]


def test_a_reply_at_the_limits_is_still_a_reply() -> None:
    lines = b"250-" + b"z" * 40 + b"\r\n"
    last = b"250 " + b"z" * (MAX_REPLY_LINE - 6) + b"\r\n"  # the longest line: CRLF included
    wire = lines * (MAX_REPLY_LINES - 1) + last
    assert len(wire) <= MAX_REPLY_SIZE
    replies, errors, _ = _feed_all(ReplyParser(), wire, piece=1000)
    assert errors == []
    assert len(replies) == 1 and len(replies[0].lines) == MAX_REPLY_LINES
    _, errors, _ = _feed_all(ReplyParser(), last.replace(b"250 ", b"250 z"))
    assert errors == [f"reply line longer than {MAX_REPLY_LINE} octets"]


def test_the_wire_recorder_notes_a_bad_reply_once() -> None:
    # A note row per line was what grew `smtplab check` past 1 GB against endless 250- lines.
    recorder = Recorder("c-1", "tcp")
    wire = WireRecorder(recorder)
    wire.connected(0.0)
    stream = ENDLESS * (5 * MB // len(ENDLESS))
    for start in range(0, len(stream), 65536):
        wire.received(stream[start : start + 65536], 1.0)
    wire.received(b"250 end\r\n" + GREETING, 2.0)
    kinds = [row[4] for row in recorder.tuples]
    assert kinds.count("note") == 1
    assert kinds == ["connect", "note", "reply"]


# -- smtplab.connect, smtplab.aconnect, smtplab.send: the documented error ------------------


@pytest.mark.parametrize("case", list(HOSTILE))
def test_connect_raises_remote_protocol_error_and_hangs_up(case: str) -> None:
    script, said = HOSTILE[case]
    with HostileServer(script) as server:
        with pytest.raises(RemoteProtocolError, match=re.escape(said)):
            session = smtplab.connect("127.0.0.1", server.port, timeout=10)
            session.ehlo()  # the unsolicited reply comes with this one's
        # The client does not wait for the error's traceback to be dropped to hang up.
        assert wait_until(lambda: server.hangups == 1, 5)
        assert server.flooded < 20 * MB  # an endless reply is not read to its (absent) end


def test_after_a_protocol_error_the_session_is_closed_and_says_why() -> None:
    script, _ = HOSTILE["unsolicited-reply"]
    with HostileServer(script) as server:
        session = smtplab.connect("127.0.0.1", server.port, timeout=10)
        with pytest.raises(RemoteProtocolError):
            session.ehlo()
        assert session.closed
        assert session.state is smtplab.State.CLOSED
        with pytest.raises(smtplab.LocalProtocolError, match="closed"):
            session.noop()
    rows = session.transcript
    close = rows[rows["kind"] == "close"].iloc[-1]
    assert close["sender"] == "client"
    assert "arrived when no command was waiting" in close["text"]


@pytest.mark.parametrize("case", ["code-abc", "endless-250-lines", "unsolicited-reply"])
def test_aconnect_raises_remote_protocol_error_and_hangs_up(case: str) -> None:
    script, said = HOSTILE[case]

    async def main(port: int) -> None:
        session = await smtplab.aconnect("127.0.0.1", port, timeout=10)
        await session.ehlo()

    with HostileServer(script) as server:
        with pytest.raises(RemoteProtocolError, match=re.escape(said)):
            asyncio.run(main(server.port))
        assert wait_until(lambda: server.hangups == 1, 5)


def test_send_raises_remote_protocol_error() -> None:
    script, said = HOSTILE["reply-before-greeting"]
    with HostileServer(script) as server, pytest.raises(RemoteProtocolError, match=re.escape(said)):
        tcp_client.send(server.address, "a@example.net", "b@example.org")


# -- a deadline per reply, not per read ------------------------------------------------------

DRIPPED = Drip(GREETING, 0.25)  # 26 octets: 6.5 s for the whole greeting


def test_a_dripping_server_cannot_hold_connect_past_its_timeout() -> None:
    with HostileServer([DRIPPED]) as server:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"within 1\.5 s"):
            smtplab.connect("127.0.0.1", server.port, timeout=1.5)
        waited = time.monotonic() - started
        assert wait_until(lambda: server.hangups == 1, 5)
    assert waited < 4.5  # the deadline (1.5 s), with room to spare; the drip takes 6.5 s


def test_a_dripping_server_cannot_hold_aconnect_past_its_timeout() -> None:
    with HostileServer([DRIPPED]) as server:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"within 1\.5 s"):
            asyncio.run(smtplab.aconnect("127.0.0.1", server.port, timeout=1.5))
        waited = time.monotonic() - started
    assert waited < 4.5


def test_each_reply_of_a_group_has_its_own_deadline() -> None:
    # Two pipelined replies, each dripped over 1.2 s with a timeout of 2 s: both come in
    # time, though the two together take longer than the timeout.
    dripped_reply = Drip(b"250 ok\r\n", 0.15)
    script = [GREETING, READ, b"250-mx\r\n250 PIPELINING\r\n", READ, dripped_reply, dripped_reply]
    with HostileServer(script) as server:
        session = smtplab.connect("127.0.0.1", server.port, timeout=2)
        session.ehlo()
        replies = session.pipeline().mail("a@example.net").rcpt("b@example.org").send()
    assert [r.code for r in replies] == [250, 250]


def test_the_probe_connection_watches_for_late_replies_only_so_long() -> None:
    # After the reply it expects, a probe watches `quiet` seconds for replies that should not
    # come; octets dripping in must not keep it watching for ever.
    script = [GREETING, Drip(b"250 unasked\r\n" * 4, 0.2)]  # 52 octets: 10 s of drip
    with HostileServer(script) as server:
        connection = ProbeConnection("127.0.0.1", server.port, "drip-1", timeout=5, quiet=1.0)
        started = time.monotonic()
        replies = connection.read(1)
        waited = time.monotonic() - started
        connection.close()
    assert replies[0].code == 220
    assert waited < 4.0  # about 1 s of watching, not the 10 s of drip


def test_the_probe_connection_stays_bounded_against_endless_lines() -> None:
    with HostileServer([GREETING, Flood(ENDLESS, 40 * MB)]) as server:
        tracemalloc.start()
        try:
            connection = ProbeConnection("127.0.0.1", server.port, "flood-1", timeout=3, quiet=3)
            connection.read(1)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            connection.close()
        flooded = server.flooded
    notes = [row for row in connection.recorder.tuples if row[4] == "note"]
    assert flooded > 2 * MB  # it did stream while the connection watched
    assert len(notes) == 1 and len(connection.garbage) == 1
    assert len(connection.recorder.tuples) <= 5
    assert peak < 8 * MB, f"peak {peak} octets while {flooded} streamed"


# -- the command line: exit 2 and one line on stderr ----------------------------------------


def _smtplab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smtplab", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip


@pytest.mark.parametrize("case", list(HOSTILE))
def test_smtplab_send_exits_2_with_one_line(case: str) -> None:
    script, said = HOSTILE[case]
    with HostileServer(script) as server:
        done = _smtplab(
            "send", "--server", server.address, "--from", "a@example.net",
            "--to", "b@example.org", "--timeout", "10",
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith(f"smtplab send: {server.address} broke the SMTP protocol: ")
    assert said in lines[0]
    assert len(lines[0]) <= 400


def test_smtplab_send_timeout_is_a_deadline_per_reply() -> None:
    with HostileServer([Drip(GREETING, 0.5)]) as server:  # 13 s for the greeting
        started = time.monotonic()
        done = _smtplab(
            "send", "--server", server.address, "--from", "a@example.net",
            "--to", "b@example.org", "--timeout", "1.5",
        )  # fmt: skip
        waited = time.monotonic() - started
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"smtplab send: no reply from 127.0.0.1:{server.port} within 1.5 s"
    ]
    assert waited < 10  # 1.5 s and the interpreter's start-up; the drip takes 13 s


@pytest.mark.parametrize("case", ["code-abc", "10-MB-line", "endless-250-lines", "binary"])
def test_smtplab_check_exits_2_with_one_line(case: str) -> None:
    script, said = HOSTILE[case]
    with HostileServer(script) as server:
        done = _smtplab("check", server.address, "--timeout", "2", "--quiet-time", "0.2")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith(f"smtplab check: {server.address} does not speak SMTP")
    assert said in lines[0]
