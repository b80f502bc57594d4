"""Every text field of a transcript row is bounded, whatever a peer or a capture sends.

A message block's ``text`` is a preview of its first lines (at most PREVIEW_CHARS characters),
its true size in ``size`` and ``lines``; command arguments, reply texts and notes are cut at
MAX_ARGUMENT and MAX_TEXT characters, ending in CUT. Checked on each path that makes rows: the
in-process server (DATA and BDAT), smtplab's TCP client against a real server and against a
hostile one on 127.0.0.1, the capture reader and the Postfix log reader.
"""

from __future__ import annotations

import socket
import threading

import smtplab
from smtplab.ingest.packets import CaptureProblems
from smtplab.ingest.postfix import PostfixReader
from smtplab.log.frame import to_frame
from smtplab.log.limits import CUT, MAX_ARGUMENT, MAX_TEXT, PREVIEW_CHARS, clip, preview
from smtplab.log.recorder import Recorder
from smtplab.protocol.events import Reply
from smtplab.transport.tcp_server import ServerThread, TcpServer
from tests.ingest.test_reassembly import CLIENT, SERVER, Conversation, pcap_of

BIG = 2_000_000  # octets of a first line with no line end: far beyond any bound


def data_rows(frame):
    """The data rows and BDAT command rows (a chunk's row) of ``frame``."""
    chunks = (frame["verb"] == "BDAT") & (frame["kind"] == "command")
    return frame[(frame["kind"] == "data") | chunks]


# -- the preview itself --------------------------------------------------------------------


def test_a_usual_message_previews_its_first_three_lines_as_before() -> None:
    content = b"Subject: hi\r\nFrom: a@example.net\r\n\r\nbody\r\n"
    assert preview(content) == "Subject: hi\nFrom: a@example.net"
    assert preview(b"one line\r\n") == "one line"
    assert preview(b"") == ""


def test_a_huge_first_line_gives_a_short_preview_marked_as_cut() -> None:
    text = preview(b"x" * BIG)
    assert len(text) == PREVIEW_CHARS and text.endswith(CUT)
    assert preview("é".encode() * BIG)[:3] == "ééé"  # characters, not octets
    assert len(preview("é".encode() * BIG)) == PREVIEW_CHARS
    three_long_lines = b"".join(b"y" * 200 + b"\r\n" for _ in range(3))
    assert len(preview(three_long_lines)) == PREVIEW_CHARS


def test_clip_keeps_short_texts_and_marks_long_ones() -> None:
    assert clip("short", 10) == "short"
    assert clip("x" * 11, 10) == "x" * 9 + CUT


# -- the in-process server -------------------------------------------------------------------


def test_the_server_previews_a_huge_bdat_chunk_with_its_true_size() -> None:
    lab = smtplab.Lab()
    session = lab.connect()
    session.ehlo()
    session.mail("alice@example.net")
    session.rcpt("bob@example.org")
    session.bdat(b"z" * BIG, last=True)  # refused (a line over 1000 octets), but recorded
    rows = data_rows(lab.transcript())
    (row,) = rows.itertuples()
    assert row.size == BIG and row.lines == 0
    assert len(row.text) == PREVIEW_CHARS and row.text.endswith(CUT)


def test_the_server_previews_a_huge_data_line_with_its_true_size() -> None:
    # Lines as long as the client likes: the message is accepted, and its row stays small.
    lab = smtplab.Lab(config=smtplab.ServerConfig(max_text_line=BIG + 10))
    session = lab.connect()
    session.ehlo()
    session.mail("alice@example.net")
    session.rcpt("bob@example.org")
    session.data()
    assert session.message(b"w" * BIG + b"\r\nsecond\r\n").code == 250
    (row,) = data_rows(lab.transcript()).itertuples()
    assert row.size == BIG + 10 and row.lines == 2
    assert len(row.text) == PREVIEW_CHARS and row.text.endswith(CUT)


def test_a_policy_error_with_a_huge_message_makes_a_bounded_note() -> None:
    class Loud(smtplab.Mailboxes):
        def on_mail(self, ctx, command):
            raise RuntimeError("boom " * BIG)

    lab = smtplab.Lab(Loud())
    session = lab.connect()
    session.ehlo()
    assert session.mail("alice@example.net").code == 451
    notes = lab.transcript().query("kind == 'note'")["text"]
    assert notes.str.len().max() == MAX_TEXT and notes.iloc[0].startswith("policy error")


# -- smtplab's client over TCP -----------------------------------------------------------------


def test_the_client_previews_a_huge_chunk_and_bounds_an_overlong_command() -> None:
    with ServerThread(TcpServer(port=0)) as server:
        session = smtplab.connect("127.0.0.1", server.port)
        session.ehlo()
        (refused,) = session.send_raw(b"NOOP " + b"a" * BIG + b"\r\n")
        assert (refused.code, refused.enhanced) == (500, "5.5.2")
        session.mail("alice@example.net")
        session.rcpt("bob@example.org")
        session.bdat(b"q" * BIG, last=True)
        session.quit()
    rows = session.transcript
    (chunk,) = data_rows(rows).itertuples()
    assert chunk.size == BIG and len(chunk.text) == PREVIEW_CHARS
    noop = rows[rows["verb"] == "NOOP"].query("kind == 'command'")
    assert noop["argument"].str.len().tolist() == [MAX_ARGUMENT]
    assert rows["text"].str.len().max() <= MAX_TEXT
    # The server's own transcript of the same session: bounded too.
    served = server.transcript()
    assert served["argument"].str.len().max() <= MAX_ARGUMENT
    assert served["text"].str.len().max() <= MAX_TEXT


def hostile_server(script: list[bytes]) -> tuple[socket.socket, threading.Thread]:
    """A server on 127.0.0.1 that answers each line it reads with the next of ``script``
    (the first one unprompted, as a greeting)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with connection, connection.makefile("rb") as lines:
            connection.sendall(script[0])
            for answer in script[1:]:
                if not lines.readline():
                    return
                connection.sendall(answer)
            lines.readline()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_a_huge_reply_from_a_hostile_server_is_kept_bounded() -> None:
    long_line = b"x" * 8000  # under the parser's limits (8192 a line, 64 KB a reply): read
    ehlo = b"".join(b"250-" + long_line + b"\r\n" for _ in range(7)) + b"250 OK\r\n"
    listener, thread = hostile_server([b"220 " + long_line + b"\r\n", ehlo, b"221 bye\r\n"])
    with listener:
        session = smtplab.connect("127.0.0.1", listener.getsockname()[1])
        assert session.greeting.code == 220
        assert session.ehlo().code == 250
        session.quit()
        thread.join(timeout=30)
    replies = session.transcript.query("kind == 'reply'")
    assert replies["code"].tolist() == [220, 250, 221]
    assert replies["text"].str.len().tolist()[:2] == [MAX_TEXT, MAX_TEXT]
    assert replies["text"].iloc[1].endswith(CUT)


def test_the_recorder_bounds_every_text_it_is_given() -> None:
    recorder = Recorder("r-1")
    recorder.connect(0.0)
    recorder.reply(0.0, Reply(220, "h" * BIG))
    recorder.command(0.0, "X" * BIG, "")  # a line with no space: all of it is the verb
    recorder.command(0.0, "MAIL", "FROM:<" + "m" * BIG + ">")
    recorder.note(0.0, "n" * BIG)
    recorder.tls_started(0.0, "t" * BIG)
    recorder.close(0.0, "server", "c" * BIG)
    for row in recorder.rows:
        for field in (row.verb, row.argument, row.text):
            assert field is None or len(field) <= MAX_TEXT


# -- captures and logs -----------------------------------------------------------------------


def test_the_capture_reader_previews_a_huge_chunk_with_its_true_size(tmp_path) -> None:
    talk = Conversation()
    talk.send(SERVER, b"220 mx.example.org ESMTP\r\n")
    talk.send(CLIENT, b"EHLO c.example.net\r\n")
    talk.send(SERVER, b"250-mx.example.org\r\n250 CHUNKING\r\n")
    talk.send(CLIENT, b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\n")
    talk.send(SERVER, b"250 OK\r\n250 OK\r\n")
    talk.send(CLIENT, f"BDAT {BIG} LAST\r\n".encode())
    for start in range(0, BIG, 60_000):  # one segment fits in an IP packet
        talk.send(CLIENT, b"p" * min(60_000, BIG - start))
    talk.send(SERVER, b"250 2.0.0 queued\r\n")
    talk.send(CLIENT, b"QUIT " + b"v" * 50_000)  # and a command line of 100 KB
    talk.send(CLIENT, b"v" * 50_000 + b"\r\n")
    talk.send(SERVER, b"221 bye\r\n")
    frame = smtplab.read(pcap_of(tmp_path / "big.pcap", talk.segments))
    (chunk,) = data_rows(frame).itertuples()
    assert chunk.size == BIG and len(chunk.text) == PREVIEW_CHARS
    quit_row = frame.query("kind == 'command' and verb == 'QUIT'")
    assert quit_row["argument"].str.len().tolist() == [MAX_ARGUMENT]
    assert frame.query("kind == 'reply'")["code"].tolist() == [220, 250, 250, 250, 250, 221]


def test_the_postfix_reader_bounds_a_huge_reply_text() -> None:
    line = (
        "Nov 29 01:57:55 mx postfix/smtpd[7]: connect from c.example.net[192.0.2.10]\n"
        "Nov 29 01:57:56 mx postfix/smtpd[7]: NOQUEUE: reject: RCPT from "
        f"c.example.net[192.0.2.10]: 550 5.1.1 {'r' * 100_000}; from=<a@example.net> "
        "to=<b@example.org> proto=ESMTP helo=<c>\n"
        "Nov 29 01:57:57 mx postfix/smtpd[7]: lost connection after RCPT from "
        f"{'l' * 100_000}\n"
    )
    rows = PostfixReader("log", "log", CaptureProblems(), 2026).read(line.splitlines(True))
    texts = to_frame(rows)["text"].dropna()
    assert texts.str.len().max() == MAX_TEXT
    assert texts.str.endswith(CUT).sum() == 2
