"""Segments a capture missed though their receiver got them (its ACK says so): skipped, said
(a note and the skipped-parts warning, with the packet that showed it), and the rest of the
session still paired reply by reply."""

from __future__ import annotations

import struct
from pathlib import Path

import pandas as pd
import pytest

import smtplab
from smtplab.ingest import IngestWarning
from tests.ingest.test_reassembly import (
    ACK,
    CLIENT,
    FIN,
    SERVER,
    SERVER_SAYS,
    Conversation,
    pcap_of,
)

# -- segments the capture missed, though their receiver got them ---------------------------------

ONE_BY_ONE = [  # a client that waits for each reply
    (b"EHLO client.example.net\r\n", b"250-mx.example.org\r\n250 SIZE 1000000\r\n"),
    (b"MAIL FROM:<a@example.net>\r\n", b"250 2.1.0 sender OK\r\n"),
    (b"RCPT TO:<b@example.org>\r\n", b"250 2.1.5 recipient OK\r\n"),
    (b"DATA\r\n", b"354 go ahead\r\n"),
    (b"Subject: lost and found\r\n\r\nbody\r\n.\r\n", b"250 2.0.0 queued\r\n"),
    (b"QUIT\r\n", b"221 2.0.0 bye\r\n"),
]


def without(segments: list, payload: bytes) -> list:
    """``segments`` less the one carrying ``payload`` (the capture missed it)."""
    return [segment for segment in segments if segment[5] != payload]


def one_by_one() -> list:
    conversation = Conversation()
    conversation.send(SERVER, SERVER_SAYS[0])
    for said, answer in ONE_BY_ONE:
        conversation.send(CLIENT, said)
        conversation.send(SERVER, answer)
    conversation.send(SERVER, b"", FIN | ACK)
    conversation.send(CLIENT, b"", FIN | ACK)
    return conversation.segments


def pairs(frame: pd.DataFrame) -> list[tuple[str, int]]:
    """Each reply's code with the verb of the row it answers (by ``reply_to``)."""
    verbs = dict(zip(frame["seq"], frame["verb"], strict=True))
    rows = frame[frame["kind"] == "reply"]
    answered = zip(rows["reply_to"], rows["code"], strict=True)
    return [(verbs.get(to, "?"), int(code)) for to, code in answered]


def read_lossy(path: Path, octets: int) -> pd.DataFrame:
    with pytest.warns(
        IngestWarning, match=rf"packet \d+: {octets} octets missing from the capture"
    ):
        frame = smtplab.read(path)
    (counts,) = [entry["counts"] for entry in frame.attrs["skipped"].values()]
    assert counts == {f"{octets} octets missing from the capture, skipped": 1}
    return frame


def test_a_lost_reply_is_skipped_and_later_replies_pair_with_their_commands(tmp_path) -> None:
    lost = ONE_BY_ONE[1][1]  # the 250 to MAIL: the client's RCPT acknowledges it
    frame = read_lossy(pcap_of(tmp_path / "a.pcap", without(one_by_one(), lost)), len(lost))
    assert pairs(frame) == [
        ("CONNECT", 220), ("EHLO", 250), ("RCPT", 250), ("DATA", 354), ("DATA-END", 250),
        ("QUIT", 221),
    ]  # fmt: skip
    (note,) = frame[frame["kind"] == "note"]["text"]
    assert f"{len(lost)} octets missing" in note and "the replies to MAIL" in note
    assert frame[frame["kind"] == "data"]["size"].tolist() == [
        len(b"Subject: lost and found\r\n\r\nbody\r\n")
    ]
    assert frame["kind"].iloc[-1] == "close"


def test_lost_replies_to_a_pipelined_group_and_its_354(tmp_path) -> None:
    lost = SERVER_SAYS[2]  # 250, 250, 354: the client's message acknowledges them
    frame = read_lossy(
        pcap_of(tmp_path / "a.pcap", without(Conversation().session().segments, lost)), len(lost)
    )
    assert pairs(frame) == [("CONNECT", 220), ("EHLO", 250), ("DATA-END", 250), ("QUIT", 221)]
    data = frame[frame["kind"] == "data"]  # the message is still told from commands
    assert data["size"].tolist() == [len(b"Subject: reassembled\r\n\r\n.dot\r\nbody\r\n")]
    assert "the replies to MAIL, RCPT, DATA" in " ".join(frame[frame["kind"] == "note"]["text"])


def test_a_lost_command_is_noted_and_its_reply_pairs_with_the_note(tmp_path) -> None:
    lost = ONE_BY_ONE[2][0]  # RCPT: the server's 250 acknowledges it
    frame = read_lossy(pcap_of(tmp_path / "a.pcap", without(one_by_one(), lost)), len(lost))
    assert pairs(frame) == [
        ("CONNECT", 220), ("EHLO", 250), ("MAIL", 250), ("LOST", 250), ("DATA", 354),
        ("DATA-END", 250), ("QUIT", 221),
    ]  # fmt: skip
    assert frame[frame["kind"] == "command"]["verb"].tolist() == ["EHLO", "MAIL", "DATA", "QUIT"]
    note = frame[frame["verb"] == "LOST"].iloc[0]
    assert note["kind"] == "note" and note["sender"] == "client"
    assert f"{len(lost)} octets missing" in note["text"]


def test_a_lost_last_reply_before_the_close(tmp_path) -> None:
    lost = ONE_BY_ONE[-1][1]  # the 221: only the server's FIN and the client's ACK show it
    frame = read_lossy(pcap_of(tmp_path / "a.pcap", without(one_by_one(), lost)), len(lost))
    assert pairs(frame)[-1] == ("DATA-END", 250)
    assert "the replies to QUIT" in " ".join(frame[frame["kind"] == "note"]["text"])
    assert frame["kind"].iloc[-1] == "close"


@pytest.mark.parametrize("first", [True, False])
def test_a_lost_line_start_leaves_no_half_command(first: bool, tmp_path) -> None:
    conversation = Conversation()
    conversation.send(SERVER, SERVER_SAYS[0])
    if not first:
        conversation.send(CLIENT, b"NOOP\r\n")
        conversation.send(SERVER, b"250 OK\r\n")
    conversation.send(CLIENT, b"EHLO client.exa")  # this half is lost
    conversation.send(CLIENT, b"mple.net\r\n")
    conversation.send(SERVER, b"250 mx.example.org\r\n")
    conversation.send(CLIENT, b"QUIT\r\n")
    conversation.send(SERVER, b"221 bye\r\n")
    segments = without(conversation.segments, b"EHLO client.exa")
    # When the client's first octets are lost: still SMTP, though what follows is no verb.
    frame = read_lossy(pcap_of(tmp_path / "a.pcap", segments), len(b"EHLO client.exa"))
    said = frame[frame["kind"] == "command"]["verb"].tolist()
    assert said == (["QUIT"] if first else ["NOOP", "QUIT"])
    earlier = [] if first else [("NOOP", 250)]
    assert pairs(frame) == [("CONNECT", 220), *earlier, ("LOST", 250), ("QUIT", 221)]


def test_a_lost_pipelined_group_takes_all_its_replies(tmp_path) -> None:
    lost = b"MAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
    segments = without(Conversation().session().segments, lost)
    frame = read_lossy(pcap_of(tmp_path / "a.pcap", segments), len(lost))
    # The three replies answer what was lost; the 354 among them says a message follows.
    assert pairs(frame) == [
        ("CONNECT", 220), ("EHLO", 250), ("LOST", 250), ("LOST", 250), ("LOST", 354),
        ("DATA-END", 250), ("QUIT", 221),
    ]  # fmt: skip
    assert frame[frame["kind"] == "command"]["verb"].tolist() == ["EHLO", "QUIT"]
    assert len(frame[frame["kind"] == "data"]) == 1


def test_a_lost_data_command_still_reads_the_message(tmp_path) -> None:
    frame = read_lossy(pcap_of(tmp_path / "a.pcap", without(one_by_one(), b"DATA\r\n")), 6)
    assert pairs(frame)[4:] == [("LOST", 354), ("DATA-END", 250), ("QUIT", 221)]
    data = frame[frame["kind"] == "data"].iloc[0]
    assert data["size"] == len(b"Subject: lost and found\r\n\r\nbody\r\n")


def test_a_packet_dropped_from_a_real_capture(tmp_path) -> None:
    # The committed capture of swaks talking to Postfix, less the packet of the 250 to MAIL.
    data = (Path(__file__).parents[1] / "fixtures" / "smtp.pcap").read_bytes()
    header, rest, records = data[:24], data[24:], []
    while rest:
        size = 16 + struct.unpack("<I", rest[8:12])[0]
        records.append(rest[:size])
        rest = rest[size:]
    lost = next(n for n, record in enumerate(records) if b"250 2.1.0 Ok" in record)
    dropped = tmp_path / "dropped.pcap"
    dropped.write_bytes(header + b"".join(records[:lost] + records[lost + 1 :]))
    frame = read_lossy(dropped, len(b"250 2.1.0 Ok\r\n"))
    first = frame[frame["session"] == frame["session"].iloc[0]]
    assert pairs(first) == [
        ("CONNECT", 220), ("EHLO", 250), ("RCPT", 250), ("RCPT", 550), ("DATA", 354),
        ("DATA-END", 250), ("QUIT", 221),
    ]  # fmt: skip
    assert frame["session"].nunique() == 9  # the other sessions untouched
