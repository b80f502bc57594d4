"""smtplab's client against a real Postfix: a private instance the test session starts.

The ``postfix`` fixture (tests/conftest.py) runs an instance of its own on a free port of
127.0.0.1, delivering into a mailbox file in its temporary directory; a Postfix of the
machine's own is never used. Skipped, with the reason, without root or Postfix.
"""

from __future__ import annotations

import socket
import uuid

import pytest

import smtplab
from smtplab.private_postfix import PrivatePostfix


def test_postfix_offers_what_smtplab_reads_from_its_ehlo_reply(postfix: PrivatePostfix) -> None:
    session = smtplab.connect("127.0.0.1", postfix.port)
    assert session.ehlo().code == 250
    # Postfix offers PIPELINING and CHUNKING, which aiosmtpd does not.
    assert {"PIPELINING", "CHUNKING", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN"} <= set(
        session.extensions
    )
    assert session.quit().code == 221


def test_a_message_from_smtplab_is_delivered_by_postfix(postfix: PrivatePostfix) -> None:
    token = uuid.uuid4().hex
    session = smtplab.connect("127.0.0.1", postfix.port)
    session.ehlo()
    assert session.mail("alice@example.net").code == 250
    assert session.rcpt("root@localhost").code == 250
    unknown = session.rcpt(f"no-such-user-{token[:8]}@localhost")
    assert (unknown.code, unknown.enhanced) == (550, "5.1.1")
    assert session.data().code == 354
    done = session.message(f"Subject: smtplab {token}\n\nHello Postfix.\n.a dot line\n")
    assert done.code == 250 and "queued as" in done.text
    session.quit()
    replies = session.transcript.query("kind == 'reply'")["code"].tolist()
    assert replies == [220, 250, 250, 250, 550, 354, 250, 221]
    text = _delivered(postfix, token)
    assert f"Subject: smtplab {token}" in text
    after = text.split(f"Subject: smtplab {token}", 1)[1]
    assert "\n.a dot line\n" in after  # the transparency dot was removed on the way


def test_postfix_takes_pipelined_chunks_from_smtplab(postfix: PrivatePostfix) -> None:
    from smtplab.transport.tcp_client import send

    token = uuid.uuid4().hex
    # A leading dot and a lone dot line: BDAT carries them as they are (RFC 3030 2).
    body = f"Subject: smtplab bdat {token}\r\n\r\n.a dot line\r\n.\r\nafter the dot\r\n"
    result = send(postfix.address, "alice@example.net", "root@localhost", message=body.encode(),
                  pipelining=True, chunking=True, chunk_size=16)  # fmt: skip
    assert result.pipelined and result.chunked and result.delivered, result
    replies = result.transcript.query("kind == 'reply'")
    assert set(replies.query("verb == 'BDAT'")["code"]) == {250}
    assert "queued as" in result.reply.text
    text = _delivered(postfix, token)
    after = text.split(f"Subject: smtplab bdat {token}", 1)[1]
    assert "\n.a dot line\n.\nafter the dot\n" in after


# Raw BDAT sequences sent to Postfix and to smtplab's server: the same reply codes where RFC
# 3030 decides. (Where it leaves the choice to the server they differ, on purpose: Postfix
# answers a BDAT with an unreadable size 521 and hangs up, smtplab 501 and reads on;
# chunks after a failed one get Postfix's 551 5.0.0, smtplab's 503 5.5.1.)
RAW_BDAT = {
    "chunks, then LAST": b"MAIL FROM:<a@example.net>\r\nRCPT TO:<root@localhost>\r\n"
    b"BDAT 5\r\nhelloBDAT 0 LAST\r\n",
    "BDAT before MAIL: refused, octets skipped": b"BDAT 6\r\nQUIT\r\nNOOP\r\n",
    "DATA after BDAT": b"MAIL FROM:<a@example.net>\r\nRCPT TO:<root@localhost>\r\n"
    b"BDAT 2\r\nabDATA\r\nRSET\r\n",
    "RCPT after BDAT": b"MAIL FROM:<a@example.net>\r\nRCPT TO:<root@localhost>\r\n"
    b"BDAT 2\r\nabRCPT TO:<root@localhost>\r\nRSET\r\n",
    "no valid recipient": b"MAIL FROM:<a@example.net>\r\nBDAT 4 LAST\r\nRSETNOOP\r\n",
}


@pytest.mark.parametrize("name", list(RAW_BDAT))
def test_postfix_and_smtplab_answer_bdat_alike(postfix: PrivatePostfix, name: str) -> None:
    from smtplab.transport.tcp_server import ServerThread, TcpServer

    data = b"EHLO client.example.net\r\n" + RAW_BDAT[name] + b"QUIT\r\n"
    with ServerThread(
        TcpServer(smtplab.Mailboxes(domains=["localhost"], mailboxes=["root"]))
    ) as server:
        ours = _codes_for("127.0.0.1", server.port, data)
    theirs = _codes_for("127.0.0.1", postfix.port, data)
    assert ours == theirs


def _codes_for(host: str, port: int, data: bytes) -> list[str]:
    """Send ``data`` in one write; the codes and enhanced codes of every reply."""
    from smtplab.protocol.replies import ReplyParser

    parser = ReplyParser()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        while chunk := sock.recv(65536):
            parser.feed(chunk)
    codes = []
    while (reply := parser.next_reply()) is not None:
        codes.append(f"{reply.code} {reply.enhanced or ''}".strip())
    return codes


def _delivered(postfix: PrivatePostfix, token: str) -> str:
    """root's mailbox in the private instance once the message holding ``token`` is in it."""
    text = postfix.delivered(token, "root", timeout=20)
    assert text is not None, (
        f"no message {token} in {postfix.mailbox('root')}: "
        + (postfix.log.read_text(errors="replace")[-2000:])
    )
    return text
