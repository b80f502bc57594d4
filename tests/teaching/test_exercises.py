"""Exercise feedback: explanations in words, graded tasks, a student's own socket client."""

from __future__ import annotations

import socket
import socketserver
import threading

import pytest

import smtplab
from smtplab.teaching.exercises import (
    check_answer,
    check_delivery,
    check_server,
    latest_session,
    review,
)


def test_review_explains_each_mistake_with_its_rfc_section() -> None:
    lab = smtplab.Lab()
    session = lab.connect()
    session.ehlo()
    session.send("RCPT TO:<bob@example.org>")  # before MAIL
    session.send("MAIL FROM:<alice@example.net>")
    session.send("RCPT TO:<nobody@example.org>")  # unknown user
    session.send("DATA")  # no accepted recipient
    session.close()  # and no QUIT
    messages = [finding.message for finding in review(lab.transcript()).findings]
    assert messages == [
        "RCPT sent with no mail transaction open: the server answered 503 5.5.1 — RCPT needs "
        "an accepted MAIL first (RFC 5321 3.3)",
        'RCPT was refused: 550 5.1.1 "<nobody@example.org>: Recipient address rejected: User '
        'unknown in local recipient table" (permanent) — Bad destination mailbox address '
        "(RFC 3463 3.2)",
        'DATA was refused: 554 5.5.1 "No valid recipients" (permanent) — Invalid command '
        "(RFC 3463 3.6)",
        "the session ended without QUIT (RFC 5321 4.1.1.10: a client MUST NOT close the channel "
        "before it has sent QUIT)",
    ]


def test_review_of_a_clean_session_says_so() -> None:
    lab = smtplab.Lab()
    lab.send("alice@example.net", "bob@example.org")
    result = review(lab.transcript())
    assert result.clean
    assert str(result).startswith("Nothing to report")


def test_review_of_greylisting_says_try_again_later() -> None:
    run = smtplab.run_scenario("greylisting")
    first = [f.message for f in review(run.transcript).findings if f.session == "greylisting-1"]
    assert first and "(try again later)" in first[0] and "451 4.7.1" in first[0]


def test_check_delivery() -> None:
    lab = smtplab.Lab()
    lab.send("alice@example.net", ["bob@example.org", "nobody@example.org"])
    assert check_delivery(lab.transcript(), "bob@example.org").ok
    missed = check_delivery(lab.transcript(), ["bob@example.org", "nobody@example.org"])
    assert not missed.ok
    # bob got it: the verdict says so, and names what kept nobody out
    assert missed.message.startswith("delivered to bob@example.org, but not to nobody@example.org.")
    assert "nobody@example.org: no RCPT TO:<nobody@example.org> was accepted" in missed.message
    assert "550 5.1.1" in missed.message
    with pytest.raises(AssertionError, match=r"550 5\.1\.1"):
        missed.require()
    assert not check_delivery(lab.transcript(), "bob@example.org", sender="eve@example.net").ok
    assert str(check_delivery(lab.transcript().iloc[:0], "bob@example.org")).startswith("✘")


def test_a_client_that_forgets_a_recipient_is_told_which_and_only_about_its_own_session() -> None:
    """Notebook 11's exercise: an earlier naive session is in the same server transcript."""
    lab = smtplab.Lab()
    naive = lab.connect()
    naive.ehlo()
    naive.send("RCPT TO:<bob@example.org>")  # the notebook's naive client: 503
    naive.close()
    lab.send("alice@example.net", ["carol@example.org"])  # the student's: forgot bob
    feedback = check_delivery(
        latest_session(lab.transcript()), ["bob@example.org", "carol@example.org"]
    )
    assert not feedback.ok
    assert feedback.message.splitlines() == [
        "delivered to carol@example.org, but not to bob@example.org.",
        "bob@example.org: no RCPT TO:<bob@example.org> was sent",
    ]  # nothing of the naive session's 503
    both = lab.send("alice@example.net", ["bob@example.org"])
    assert both.accepted == ["bob@example.org"]
    split = check_delivery(lab.transcript(), ["bob@example.org", "carol@example.org"])
    assert split.message.startswith(
        "bob@example.org, carol@example.org each got a message, but no one message reached them"
    )


def test_a_message_line_sent_as_a_command_is_shown_as_it_was_written() -> None:
    """After a refused DATA the message's lines arrive as commands: the verb of a line that is
    no SMTP command keeps its case (known verbs are upper-cased: they are case-insensitive)."""
    lab = smtplab.Lab()
    session = lab.connect()
    session.send("ehlo student.example")
    session.send("DATA")  # 503: no transaction
    session.send("Subject: hello")
    session.send("Hello Bob.")
    frame = lab.transcript()
    commands = frame[frame["kind"] == "command"]
    assert commands["verb"].tolist() == ["EHLO", "DATA", "Subject:", "Hello"]
    said = str(review(frame))
    assert 'the line "Subject: hello" is no command' in said
    assert 'the line "Hello Bob." is no command' in said


def test_check_answer() -> None:
    assert check_answer(" 503 ", "503", "bad sequence").ok
    wrong = check_answer(550, 503, "RCPT before MAIL is a sequence error")
    assert not wrong.ok and wrong.message == "550 is not it: RCPT before MAIL is a sequence error"


def _reply(sock: socket.socket) -> bytes:
    """Read one whole reply: lines until one whose fourth character is a space."""
    data = b""
    while not any(line[3:4] == b" " for line in data.split(b"\r\n")):
        data += sock.recv(4096)
    return data


def test_a_students_socket_client_is_graded_from_the_server_transcript() -> None:
    with smtplab.ServerThread(smtplab.TcpServer(host="127.0.0.1", port=0)) as server:
        host, port = server.address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            _reply(sock)
            for line in [
                b"EHLO student.example",
                b"MAIL FROM:<alice@example.net>",
                b"RCPT TO:<bob@example.org>",
                b"DATA",
            ]:
                sock.sendall(line + b"\r\n")
                _reply(sock)
            sock.sendall(b"Subject: my own client\r\n\r\nIt works.\r\n.\r\n")
            _reply(sock)
            sock.sendall(b"QUIT\r\n")
            _reply(sock)
        transcript = server.transcript()
    assert check_delivery(transcript, "bob@example.org", sender="alice@example.net").ok
    assert review(transcript).clean


class _Toy(socketserver.StreamRequestHandler):
    """Notebook 10's toy: 250 to everything, a message read up to a line that is a dot."""

    careful_with_data = True  # False: the mistake of a first fix, 250 to DATA itself
    keeps_sequence = False

    def handle(self) -> None:
        self.wfile.write(b"220 toy.example ESMTP\r\n")
        mail = rcpt = False
        for line in self.rfile:
            verb = line.split(b" ")[0].strip().upper()
            if verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            if self.keeps_sequence:
                if verb in (b"EHLO", b"HELO", b"RSET"):
                    mail = rcpt = False
                elif verb == b"MAIL":
                    mail = True
                elif (verb == b"RCPT" and not mail) or (verb == b"DATA" and not rcpt):
                    self.wfile.write(b"503 5.5.1 bad sequence of commands\r\n")
                    continue
            if verb == b"RCPT":
                rcpt = True
            if verb == b"DATA" and self.careful_with_data:
                self.wfile.write(b"354 go ahead\r\n")
                for text in self.rfile:
                    if text.strip() == b".":
                        break
                mail = rcpt = False
                self.wfile.write(b"250 queued\r\n")
                continue
            self.wfile.write(b"250 ok\r\n")


def _serve(handler: type[socketserver.StreamRequestHandler]) -> socketserver.TCPServer:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_servers_fix_is_graded_by_every_probe_against_what_passed_before() -> None:
    """Notebook 10, exercise 1: the sequence probes must pass and nothing that passed may fail;
    a fix that answers DATA with 250 (and reads the message as commands) is caught."""
    sequence = ["rset", "rcpt-before-mail", "data-before-rcpt", "ehlo-resets"]
    fixed = type("Fixed", (_Toy,), {"keeps_sequence": True})
    hasty = type("Hasty", (_Toy,), {"keeps_sequence": True, "careful_with_data": False})
    servers = [_serve(handler) for handler in (_Toy, fixed, hasty)]
    try:
        toy, good, bad = (f"127.0.0.1:{s.server_address[1]}" for s in servers)
        baseline = smtplab.check(toy, quiet=0.2).table
        assert not check_server(toy, sequence, baseline=baseline).ok  # the exercise's probes
        assert check_server(good, sequence, baseline=baseline).ok
        hasty_feedback = check_server(bad, sequence, baseline=baseline)
        assert not hasty_feedback.ok
        assert "transaction (RFC 5321 3.3): fail" in hasty_feedback.message
        assert "(it passed before your change)" in hasty_feedback.message
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
