"""Lines that may be SASL responses never reach a row in clear (RFC 4954), whatever the reply
to the AUTH was: the in-process lab, the TCP server (raw socket), and the wire recorder that
reads captures and swaks/smtplib transcripts."""

from __future__ import annotations

import base64
import socket

import pytest

import smtplab
from smtplab import Mailboxes, ServerConfig
from smtplab.log.frame import to_frame
from smtplab.log.recorder import Recorder
from smtplab.log.wire import WireRecorder
from smtplab.protocol.config import DEFAULT_EXTENSIONS
from smtplab.teaching.exercises import review
from smtplab.transport.tcp_server import ServerThread, TcpServer

USER, PASSWORD = "alice", "Sup3rSecret"
B64_USER = base64.b64encode(USER.encode()).decode()  # YWxpY2U=
B64_PASSWORD = base64.b64encode(PASSWORD.encode()).decode()
B64_PLAIN = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
B64_WRONG = base64.b64encode(f"\0{USER}\0wrong".encode()).decode()
SECRETS = [PASSWORD, B64_USER, B64_PASSWORD, B64_PLAIN]
AFTER = b"MAIL FROM:<alice@example.net>\r\n"  # a real command ends the rule

# Each: server settings, what the client pipelines in one write, the AUTH reply it meets.
CASES = {
    "538 encryption required": (
        dict(auth_without_tls=False),
        f"AUTH LOGIN\r\n{B64_USER}\r\n{B64_PASSWORD}\r\n",
        "538",
    ),
    "538 with an initial response": (
        dict(auth_without_tls=False),
        f"AUTH PLAIN {B64_PLAIN}\r\n{B64_PASSWORD}\r\n",
        "538",
    ),
    "504 unknown mechanism": (
        dict(auth_without_tls=True),
        f"AUTH CRAM-MD5\r\n{B64_USER}\r\n{B64_PASSWORD}\r\n",
        "504",
    ),
    "535 wrong password, then more": (
        dict(auth_without_tls=True),
        f"AUTH PLAIN {B64_WRONG}\r\n{B64_PASSWORD}\r\n",
        "535",
    ),
    "501 cancelled with *": (
        dict(auth_without_tls=True),
        f"AUTH LOGIN\r\n{B64_USER}\r\n*\r\n{B64_PASSWORD}\r\n",
        "501",
    ),
    "503 second AUTH": (
        dict(auth_without_tls=True),
        f"AUTH PLAIN {B64_PLAIN}\r\nAUTH LOGIN\r\n{B64_USER}\r\n{B64_PASSWORD}\r\n",
        "503",
    ),
    "501 bare LF in the response line": (
        dict(auth_without_tls=True),
        f"AUTH LOGIN\r\n{B64_USER}\n{B64_PASSWORD}\r\n",
        "501",
    ),
    "502 AUTH not offered": (None, f"AUTH LOGIN\r\n{B64_USER}\r\n{B64_PASSWORD}\r\n", "502"),
}


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text and secret.upper() not in text


def lab_for(settings: dict | None) -> smtplab.Lab:
    if settings is None:
        return smtplab.Lab(Mailboxes(users={USER: PASSWORD}))
    config = ServerConfig(extensions=DEFAULT_EXTENSIONS | {"AUTH"}, **settings)
    return smtplab.Lab(Mailboxes(users={USER: PASSWORD}), config)


@pytest.mark.parametrize("case", sorted(CASES))
def test_lines_after_any_auth_are_recorded_as_stars_in_the_lab(case: str) -> None:
    settings, burst, expected = CASES[case]
    lab = lab_for(settings)
    session = lab.connect()
    session.ehlo()
    replies = session.send_raw(burst.encode() + AFTER)
    assert expected in [str(reply.code) for reply in replies]
    assert replies[-1].code == 250  # the MAIL after it is read and answered as a command
    frame = lab.transcript()
    assert_no_secret(frame.astype(str).to_csv())
    assert_no_secret(str(review(frame)))
    commands = frame.query("kind == 'command'")
    assert list(commands["verb"])[-1] == "MAIL"  # recorded in clear: the rule ended
    assert set(commands["verb"][1:-1]) == {"AUTH"}
    assert "***" in set(commands["argument"][2:-1]) <= {"***", "LOGIN"}  # a second AUTH


def test_the_rule_ends_at_the_first_known_command() -> None:
    lab = lab_for(dict(auth_without_tls=False))
    session = lab.connect()
    session.ehlo()
    session.send_raw(f"AUTH LOGIN\r\n{B64_USER}\r\nNOOP\r\nXYZZY plugh\r\n".encode())
    commands = lab.transcript().query("kind == 'command'")
    assert list(commands["verb"]) == ["EHLO", "AUTH", "AUTH", "NOOP", "XYZZY"]
    assert list(commands["argument"])[1:3] == ["LOGIN", "***"]


def test_pipelined_credentials_after_a_538_over_a_real_socket() -> None:
    thread = ServerThread(TcpServer(Mailboxes(users={USER: PASSWORD}), auth=True))
    with thread as running, socket.create_connection(("127.0.0.1", running.port), 10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220")
        sock.sendall(b"EHLO client.example.net\r\n")
        while reader.readline()[3:4] == b"-":
            pass
        sock.sendall(f"AUTH LOGIN\r\n{B64_USER}\r\n{B64_PASSWORD}\r\nQUIT\r\n".encode())
        answers = [reader.readline()[:3] for _ in range(4)]
    assert answers == [b"538", b"500", b"500", b"221"]
    frame = running.transcript()
    assert_no_secret(frame.astype(str).to_csv())
    assert list(frame.query("kind == 'command'")["argument"])[1:4] == ["LOGIN", "***", "***"]


@pytest.mark.parametrize("reply_first", [False, True])
def test_the_wire_recorder_hides_lines_after_a_refused_auth(reply_first: bool) -> None:
    """A capture (or a swaks transcript) of AUTH LOGIN refused with 538: whether the client
    pipelined its credentials or sent them after the refusal, no row holds them."""
    wire = WireRecorder(Recorder("c-1", "pcap"))
    wire.connected(0.0)
    wire.received(b"220 mx ESMTP\r\n", 0.1)
    wire.sent(b"AUTH LOGIN\r\n", 0.2)
    if reply_first:
        wire.received(b"538 5.7.11 Encryption required\r\n", 0.3)
    wire.sent(f"{B64_USER}\r\n{B64_PASSWORD}\r\n".encode(), 0.4)
    if not reply_first:
        wire.received(b"538 5.7.11 Encryption required\r\n", 0.5)
    wire.received(b"500 5.5.2 unrecognized\r\n500 5.5.2 unrecognized\r\n", 0.6)
    wire.sent(b"QUIT\r\n", 0.7)
    wire.received(b"221 2.0.0 bye\r\n", 0.8)
    frame = to_frame(wire.recorder.tuples)
    assert_no_secret(frame.astype(str).to_csv())
    commands = frame.query("kind == 'command'")
    assert list(commands["verb"]) == ["AUTH", "AUTH", "AUTH", "QUIT"]
    assert list(commands["argument"]) == ["LOGIN", "***", "***", ""]
