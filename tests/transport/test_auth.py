"""AUTH PLAIN and LOGIN (RFC 4954): offered under TLS, checked by the policy, never recorded."""

from __future__ import annotations

import base64
import shutil
import smtplib
import ssl
import subprocess

import pytest

import smtplab
from smtplab import Mailboxes, ServerConfig
from smtplab.protocol.config import DEFAULT_EXTENSIONS
from smtplab.transport.certs import lab_certificate
from smtplab.transport.tcp_server import ServerThread, TcpServer
from tests.conftest import codes

PASSWORD = "correct horse battery staple"
SECRETS = [PASSWORD, base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode(),
           base64.b64encode(PASSWORD.encode()).decode()]  # fmt: skip


@pytest.fixture(autouse=True)
def certificate_cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("SMTPLAB_CACHE", str(tmp_path_factory.getbasetemp() / "smtplab-cache"))


def server() -> ServerThread:
    return ServerThread(TcpServer(Mailboxes(users={"alice": PASSWORD}), tls=True, auth=True))


def assert_no_secret_in(frame) -> None:  # type: ignore[no-untyped-def]
    text = frame.astype(str).to_csv()
    for secret in SECRETS:
        assert secret not in text


def tls_client(port: int) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port)
    client.starttls(context=ssl.create_default_context(cafile=str(lab_certificate()[0])))
    client.ehlo()
    return client


def test_auth_plain_with_smtplib_after_starttls_and_nothing_secret_is_recorded() -> None:
    with server() as running:
        with smtplib.SMTP("127.0.0.1", running.port) as plain:
            plain.ehlo()
            assert not plain.has_extn("auth"), "not offered before TLS (RFC 4954 4)"
            assert plain.docmd("AUTH", "PLAIN")[0] == 538  # 5.7.11 encryption required
        client = tls_client(running.port)
        assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        assert client.login("alice", PASSWORD) == (235, b"2.7.0 Authentication successful")
        client.sendmail("alice@example.net", ["bob@example.org"], b"Subject: x\r\n\r\nhi\r\n")
        assert client.docmd("AUTH", "PLAIN")[0] == 503  # once per session
        client.quit()
    frame = running.transcript()
    assert_no_secret_in(frame)
    auth = frame.query("kind == 'command' and verb == 'AUTH'")["argument"].tolist()
    assert "PLAIN ***" in auth


def test_auth_login_goes_through_its_challenges_and_wrong_passwords_get_535() -> None:
    with server() as running:
        client = tls_client(running.port)
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth("LOGIN", lambda challenge=None: "alice", initial_response_ok=False)
        assert refused.value.smtp_code in (535, 501)
        client.user, client.password = "alice", PASSWORD
        code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        assert code == 235
        client.quit()
    frame = running.transcript()
    assert_no_secret_in(frame)
    replies = frame.query("kind == 'reply' and verb == 'AUTH'")["code"].tolist()
    assert replies[-3:] == [334, 334, 235]  # Username:, Password:, success


def test_auth_refusals_follow_rfc_4954() -> None:
    config = ServerConfig(extensions=DEFAULT_EXTENSIONS | {"AUTH"}, auth_without_tls=True)
    session = smtplab.Lab(Mailboxes(users={"alice": PASSWORD}), config).connect()
    session.ehlo()
    assert "AUTH" in session.extensions  # allowed without TLS here, by setting
    cancel = session.send_raw(b"AUTH LOGIN\r\n*\r\n")
    wrong = session.send("AUTH PLAIN " + base64.b64encode(b"\0alice\0nope").decode())
    assert codes([*cancel, wrong]) == ["334", "501 5.0.0", "535 5.7.8"]
    assert codes([session.send("AUTH CRAM-MD5")]) == ["504 5.5.4"]
    assert codes([session.send("AUTH PLAIN not-base64!")]) == ["501 5.5.2"]
    session.mail("a@example.net")
    assert codes([session.send("AUTH PLAIN =")]) == ["503 5.5.1"]  # not in a transaction
    assert_no_secret_in(session.transcript)


def test_the_client_transcript_hides_auth_responses_too() -> None:
    with server() as running:
        session = smtplab.connect("127.0.0.1", running.port)
        session.ehlo()
        session.starttls(ssl.create_default_context(cafile=str(lab_certificate()[0])))
        session.ehlo()
        replies = session.send_raw(
            b"AUTH LOGIN\r\n"
            + base64.b64encode(b"alice")
            + b"\r\n"
            + base64.b64encode(PASSWORD.encode())
            + b"\r\n"
        )
        assert [r.code for r in replies] == [334, 334, 235]
        session.quit()
    assert_no_secret_in(session.transcript)


SWAKS = shutil.which("swaks")


@pytest.mark.skipif(SWAKS is None, reason="swaks is not installed (Debian: apt install swaks)")
def test_swaks_tls_auth_delivers() -> None:
    with server() as running:
        done = subprocess.run(
            [SWAKS or "swaks", "--server", f"127.0.0.1:{running.port}", "--tls",
             "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", PASSWORD,
             "--from", "alice@example.net", "--to", "bob@example.org"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(running.messages) == 1
    assert_no_secret_in(running.transcript())


def lab_with_auth() -> smtplab.Lab:
    config = ServerConfig(extensions=DEFAULT_EXTENSIONS | {"AUTH"}, auth_without_tls=True)
    return smtplab.Lab(Mailboxes(users={"alice": PASSWORD}), config)


def test_credentials_stay_hidden_whatever_the_spacing_or_pipelining() -> None:
    blob = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
    session = lab_with_auth().connect()
    session.ehlo()
    session.send("AUTH\tPLAIN\t" + blob)  # no space: the whole line is one word
    assert [r.code for r in session.send_raw(f"AUTH PLAIN\r\n{blob}\r\n".encode())] == [334, 235]
    frame = session.transcript
    assert_no_secret_in(frame)
    assert blob.upper() not in frame.astype(str).to_csv()
    with server() as running:  # the client's wire recording, with the response pipelined
        client = smtplab.connect("127.0.0.1", running.port)
        client.ehlo()
        client.starttls(ssl.create_default_context(cafile=str(lab_certificate()[0])))
        client.ehlo()
        assert [r.code for r in client.send_raw(f"AUTH PLAIN\r\n{blob}\r\n".encode())] == [
            334,
            235,
        ]
        client.quit()
    assert_no_secret_in(client.transcript)
    assert_no_secret_in(running.transcript())


def test_an_overlong_sasl_line_is_500_5_5_6_and_empty_challenges_keep_their_space() -> None:
    session = lab_with_auth().connect()
    session.ehlo()
    replies = session.send_raw(b"AUTH PLAIN\r\n" + b"A" * 600 + b"\r\n")
    assert codes(replies) == ["334", "500 5.5.6"]  # RFC 4954 6
    raw = session.transcript.query("kind == 'reply' and code == 334")
    assert len(raw) == 1
    assert smtplab.Reply(334).to_bytes() == b"334 \r\n"  # continue-req = "334" SP [base64]


def test_smtplab_send_with_starttls_and_auth_and_a_wrong_password(tmp_path) -> None:
    import sys

    def send(credentials: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smtplab", "send", "--server", f"127.0.0.1:{running.port}",
             "--starttls", "--auth", credentials,
             "--from", "alice@example.net", "--to", "bob@example.org"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    with server() as running:
        good = send(f"alice:{PASSWORD}")
        bad = send("alice:wrong")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "C: STARTTLS" in good.stdout and "S: 235 2.7.0" in good.stdout
    assert "C: AUTH PLAIN ***" in good.stdout
    assert PASSWORD not in good.stdout
    assert bad.returncode == 1 and "535 5.7.8" in bad.stdout
    assert len(running.messages) == 1
    assert_no_secret_in(running.transcript())
