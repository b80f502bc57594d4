"""DSN parameters (RFC 3461): checked, accepted after EHLO, and kept with the envelope."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

import smtplab
from smtplab.protocol.dsn import decode_xtext, is_xtext
from smtplab.transport.tcp_server import ServerThread, TcpServer
from tests.conftest import codes


@pytest.mark.parametrize(
    ("mail", "rcpt", "expected"),
    [
        (
            "RET=HDRS ENVID=QQ314159",
            "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.org",
            ["250 2.1.0", "250 2.1.5"],
        ),
        ("RET=full", "NOTIFY=never", ["250 2.1.0", "250 2.1.5"]),  # case does not matter
        ("RET=SOME", "", ["501 5.5.4", "503 5.5.1"]),  # 4.3: FULL or HDRS
        ("ENVID=" + "x" * 101, "", ["501 5.5.4", "503 5.5.1"]),  # 4.4: at most 100
        ("ENVID=a=b", "", ["501 5.5.4", "503 5.5.1"]),  # "=" is not xtext... nor valid here
        ("", "NOTIFY=NEVER,SUCCESS", ["250 2.1.0", "501 5.5.4"]),  # 4.1: NEVER alone
        ("", "NOTIFY=SOMETIMES", ["250 2.1.0", "501 5.5.4"]),
        ("", "ORCPT=bob@example.org", ["250 2.1.0", "501 5.5.4"]),  # 4.2: addr-type;xtext
        ("", "ORCPT=rfc822;bob+2B1@example.org", ["250 2.1.0", "250 2.1.5"]),  # "+2B" is "+"
        ("RET=FULL RET=HDRS", "", ["501 5.5.4", "503 5.5.1"]),  # 4: at most once each
    ],
)
def test_dsn_parameters_are_checked(mail: str, rcpt: str, expected: list[str]) -> None:
    session = smtplab.Lab().connect()
    session.ehlo()
    replies = [
        session.send(f"MAIL FROM:<alice@example.net> {mail}".rstrip()),
        session.send(f"RCPT TO:<bob@example.org> {rcpt}".rstrip()),
    ]
    assert codes(replies) == expected


def test_dsn_parameters_need_ehlo_and_the_extension() -> None:
    helo = smtplab.Lab().connect()
    helo.helo()
    assert codes([helo.send("MAIL FROM:<a@example.net> RET=HDRS")]) == ["555"]
    config = smtplab.ServerConfig(extensions=frozenset({"PIPELINING", "ENHANCEDSTATUSCODES"}))
    plain = smtplab.Lab(config=config).connect()
    plain.ehlo()
    assert codes([plain.send("MAIL FROM:<a@example.net> RET=HDRS")]) == ["555 5.5.4"]


@pytest.mark.parametrize("store", ["memory", "maildir"])
def test_dsn_parameters_are_kept_with_the_envelope(store: str, tmp_path: Path) -> None:
    kept = smtplab.MemoryStore() if store == "memory" else smtplab.MaildirStore(tmp_path / "M")
    lab = smtplab.Lab(store=kept)
    session = lab.connect()
    session.ehlo()
    session.mail("alice@example.net", RET="HDRS", ENVID="QQ314159")
    session.rcpt("bob@example.org", NOTIFY="SUCCESS,DELAY", ORCPT="rfc822;bob@example.org")
    session.rcpt("carol@example.org")
    session.data()
    assert session.message("Subject: dsn\r\n\r\nhi\r\n").code == 250
    (message,) = kept.messages
    assert message.mail_params == {"RET": "HDRS", "ENVID": "QQ314159"}
    assert message.rcpt_params == {
        "bob@example.org": {"NOTIFY": "SUCCESS,DELAY", "ORCPT": "rfc822;bob@example.org"}
    }
    assert message.recipients == ("bob@example.org", "carol@example.org")


def test_smtplib_sends_dsn_options_over_tcp() -> None:
    with ServerThread(TcpServer()) as server, smtplib.SMTP("127.0.0.1", server.port) as client:
        client.ehlo()
        assert client.has_extn("dsn")
        client.sendmail(
            "alice@example.net",
            ["bob@example.org"],
            b"Subject: dsn\r\n\r\nhi\r\n",
            mail_options=["RET=HDRS", "ENVID=run42"],
            rcpt_options=["NOTIFY=FAILURE"],
        )
    (message,) = server.messages
    assert message.mail_params["RET"] == "HDRS"
    assert message.rcpt_params["bob@example.org"] == {"NOTIFY": "FAILURE"}


def test_xtext() -> None:
    assert is_xtext("rfc822+3Bx") and not is_xtext("a b") and not is_xtext("a+2b")
    assert decode_xtext("bob+2B1@example.org") == "bob+1@example.org"
