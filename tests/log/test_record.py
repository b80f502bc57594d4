"""Recorder.record: one protocol event in, one transcript row out, whoever the driver is."""

from __future__ import annotations

import pytest

from smtplab.log.recorder import Recorder
from smtplab.protocol import MailFrom, MessageReceived, Reply, ReplyReceived, Step
from smtplab.protocol.events import NEED_DATA, Auth, AuthResponse, Bdat


def test_each_event_makes_the_row_of_its_unit_paired_with_its_reply() -> None:
    recorder = Recorder("s1")
    recorder.connect(0.0)
    recorder.record(Reply(220, "mx.example.org ESMTP"), 0.5)
    recorder.record(MailFrom("MAIL", "FROM:<a@example.net>", address="a@example.net"), 1.0)
    recorder.record(Reply(250, "OK", "2.1.0"), 1.25)
    recorder.record(MessageReceived(b"Subject: hi\r\n\r\nhello\r\n", 22, 3, None), 2.0)
    recorder.record(ReplyReceived(Step.DATA_END, Reply(250, "queued", "2.0.0")), 2.5)
    kinds = [(r.kind, r.verb, r.code, r.reply_to, r.latency) for r in recorder.rows]
    assert kinds == [
        ("connect", "CONNECT", None, None, None),
        ("reply", "CONNECT", 220, 0, 0.5),
        ("command", "MAIL", None, None, None),
        ("reply", "MAIL", 250, 2, 0.25),
        ("data", "DATA-END", None, None, None),
        ("reply", "DATA-END", 250, 4, 0.5),
    ]
    data = recorder.rows[4]
    assert (data.size, data.lines, data.text) == (22, 3, "Subject: hi\n\nhello")


def test_credentials_never_reach_a_row() -> None:
    """RFC 4954 4: an AUTH line keeps its mechanism; an exchange line is ``***`` whole."""
    recorder = Recorder("s1")
    recorder.record(Auth("AUTH", "PLAIN dGVzdAB0ZXN0AHRlc3Q=", mechanism="PLAIN"), 1.0)
    recorder.record(AuthResponse("dGVzdA==", None), 2.0)
    assert [(r.verb, r.argument) for r in recorder.rows] == [
        ("AUTH", "PLAIN ***"),
        ("AUTH", "***"),
    ]


def test_a_bdat_chunk_is_one_row_with_its_size() -> None:
    recorder = Recorder("s1")
    recorder.record(Bdat("BDAT", "5 LAST", size=5, last=True, chunk=b"hi\r\n!"), 1.0)
    (row,) = recorder.rows
    assert (row.kind, row.verb, row.argument, row.size, row.lines) == (
        "command", "BDAT", "5 LAST", 5, 1
    )  # fmt: skip


def test_what_is_no_protocol_unit_is_refused_clearly() -> None:
    with pytest.raises(TypeError, match="no transcript row"):
        Recorder("s1").record(NEED_DATA, 1.0)
