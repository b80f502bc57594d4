"""Reading captured traffic: the committed fixtures (recorded by tests/fixtures/record.py from
swaks, smtplib and smtplab talking to Postfix and aiosmtpd on loopback)."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
import struct
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import smtplab
from smtplab.ingest import IngestError, IngestWarning, detect

FIXTURES = Path(__file__).parents[1] / "fixtures"
POSTFIX_PORT, AIOSMTPD_PORT = 25, 8025


def replies(frame: pd.DataFrame, session: str) -> list[int]:
    rows = frame[(frame["session"] == session) & (frame["kind"] == "reply")]
    return [int(code) for code in rows["code"]]


def commands(frame: pd.DataFrame, session: str) -> list[str]:
    rows = frame[(frame["session"] == session) & (frame["kind"] == "command")]
    return rows["verb"].astype(str).tolist()


@pytest.fixture(scope="module")
def capture() -> pd.DataFrame:
    return smtplab.read(FIXTURES / "smtp.pcapng")


def sessions_to(frame: pd.DataFrame, port: int) -> list[str]:
    firsts = frame.groupby("session", observed=True)["server"].first()
    return [s for s, server in firsts.items() if str(server).endswith(f":{port}")]


# -- the capture --------------------------------------------------------------------------------


def test_pcap_and_pcapng_of_the_same_traffic_give_the_same_rows(capture) -> None:
    classic = smtplab.read(FIXTURES / "smtp.pcap")
    assert capture["session"].nunique() == 9
    columns = [c for c in capture.columns if c not in ("session", "time", "latency")]
    pd.testing.assert_frame_equal(capture[columns], classic[columns], check_categorical=False)
    # dumpcap stamps packets in nanoseconds; the classic pcap copy keeps microseconds.
    assert (capture["time"] - classic["time"]).abs().max() <= pd.Timedelta(microseconds=1)
    assert (capture["latency"] - classic["latency"]).abs().max() <= 2e-6


def test_a_captured_session_reads_like_a_live_one(capture) -> None:
    first = sessions_to(capture, POSTFIX_PORT)[0]  # swaks, one recipient refused
    assert replies(capture, first) == [220, 250, 250, 250, 550, 354, 250, 221]
    rows = capture[capture["session"] == first]
    assert set(rows["source"]) == {"pcap"} and rows["client"].iloc[0].startswith("127.0.0.1:")
    refused = rows[rows["code"] == 550].iloc[0]
    assert refused["enhanced"] == "5.1.1" and "User unknown" in refused["text"]
    assert rows.loc[rows["seq"] == refused["reply_to"], "argument"].item() == (
        "TO:<no-such-user@localhost>"
    )
    data = rows[rows["kind"] == "data"].iloc[0]
    assert data["size"] > 200 and rows["kind"].iloc[-1] == "close"
    assert (rows["latency"].dropna() >= 0).all()


def test_pipelined_commands_are_paired_with_their_replies(capture) -> None:
    piped = sessions_to(capture, POSTFIX_PORT)[1]  # swaks --pipeline
    rows = capture[capture["session"] == piped].reset_index(drop=True)
    kinds = rows["kind"].tolist()
    group = kinds.index("command", kinds.index("command") + 1)  # after EHLO: MAIL, RCPT x2, DATA
    assert rows["verb"].iloc[group : group + 4].tolist() == ["MAIL", "RCPT", "RCPT", "DATA"]
    assert rows["kind"].iloc[group : group + 4].eq("command").all()
    answered = rows.iloc[group + 4 : group + 8]
    assert answered["code"].tolist() == [250, 250, 550, 354]
    assert answered["reply_to"].tolist() == rows["seq"].iloc[group : group + 4].tolist()


def test_after_starttls_nothing_is_decoded(capture) -> None:
    tls_sessions = [s for s in capture["session"].unique() if "STARTTLS" in commands(capture, s)]
    assert len(tls_sessions) == 2  # swaks -tls and smtplib starttls, both to Postfix
    for session in tls_sessions:
        rows = capture[capture["session"] == session]
        assert rows["kind"].tolist()[-2:] == ["tls", "close"]
        assert "not decoded" in rows[rows["kind"] == "tls"]["text"].item()
        assert replies(capture, session) == [220, 250, 220]


def test_bdat_chunks_in_a_capture(capture) -> None:
    chunked = [s for s in capture["session"].unique() if "BDAT" in commands(capture, s)]
    assert len(chunked) == 1
    rows = capture[(capture["session"] == chunked[0]) & (capture["verb"] == "BDAT")]
    sent = rows[rows["kind"] == "command"]
    assert sent["argument"].iloc[-1].endswith("LAST") and (sent["size"] <= 64).all()
    assert rows[rows["kind"] == "reply"]["code"].tolist() == [250] * len(sent)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_the_capture_reader_agrees_with_tsharks_smtp_dissector(capture) -> None:
    fields = subprocess.run(
        ["tshark", "-r", str(FIXTURES / "smtp.pcapng"), "-d", f"tcp.port=={AIOSMTPD_PORT},smtp",
         "-Y", "smtp", "-T", "fields", "-E", "separator=|", "-e", "tcp.stream",
         "-e", "smtp.req.command", "-e", "smtp.response.code"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    theirs: dict[int, tuple[list[str], list[int]]] = {}
    for line in fields.splitlines():
        stream, command, code = line.split("|")
        said, answered = theirs.setdefault(int(stream), ([], []))
        said += [c.upper() for c in command.split(",") if c]
        answered += [int(c) for c in code.split(",") if c]
    ours = list(capture["session"].unique())  # in the order the connections opened
    assert len(ours) == len(theirs)
    for session, (said, answered) in zip(ours, theirs.values(), strict=True):
        # tshark reports a code per packet (a reply split over packets repeats it): compare
        # the codes with repeats folded; and commands as tshark names them (4 letters), except
        # in a pipelined BDAT group, which tshark's dissector does not take apart.
        assert _folded(replies(capture, session)) == _folded(answered), session
        if "BDAT" not in commands(capture, session):
            assert [verb[:4] for verb in commands(capture, session)] == said, session


def _folded(codes: list[int]) -> list[int]:
    return [c for i, c in enumerate(codes) if i == 0 or codes[i - 1] != c]


# -- the log and the transcripts, against the capture ---------------------------------------------


def test_the_postfix_log_matches_the_capture(capture) -> None:
    log = smtplab.read(FIXTURES / "postfix.log", year=2026)
    to_postfix = sessions_to(capture, POSTFIX_PORT)
    assert log["session"].nunique() == len(to_postfix) == 7
    assert set(log["source"]) == {"postfix"}
    # Every refusal Postfix logged, the capture saw: same codes, enhanced codes, texts.
    refused = ["code", "enhanced", "text"]
    in_log = log[log["kind"] == "reply"][refused].sort_values(refused)
    in_capture = capture[capture["session"].isin(to_postfix) & (capture["code"] >= 400)]
    pd.testing.assert_frame_equal(
        in_log.reset_index(drop=True),
        in_capture[refused].sort_values(refused).reset_index(drop=True),
        check_categorical=False,
    )
    # Command counts per session agree wherever the capture can read the whole session.
    for from_log, from_capture in zip(log["session"].unique(), to_postfix, strict=True):
        if "STARTTLS" in commands(capture, from_capture):
            continue  # the log counts the commands sent under TLS; the capture cannot read them
        assert sorted(commands(log, from_log)) == sorted(commands(capture, from_capture))


def test_the_postfix_log_keeps_what_it_knows_and_no_more() -> None:
    log = smtplab.read(FIXTURES / "postfix.log", year=2026)
    first = log[log["session"] == log["session"].iloc[0]]
    assert first["kind"].iloc[0] == "connect" and first["client"].iloc[0] == "127.0.0.1"
    assert first["time"].dt.year.eq(2026).all()
    reply = first[first["kind"] == "reply"].iloc[0]
    assert (reply["verb"], reply["code"], reply["enhanced"]) == ("RCPT", 550, "5.1.1")
    assert first.loc[first["seq"] == reply["reply_to"], "argument"].item() == (
        "TO:<no-such-user@localhost>"
    )
    # Accepted commands are known from the disconnect counts only: no reply rows invented.
    assert len(first[first["kind"] == "reply"]) == 1
    notes = " ".join(first[first["kind"] == "note"]["text"])
    assert "size=" in notes and "status=sent" in notes


def test_swaks_and_smtplib_transcripts_match_the_capture(capture) -> None:
    swaks = smtplab.read(FIXTURES / "swaks.txt")
    debug1 = smtplab.read(FIXTURES / "smtplib-debug1.txt")
    debug2 = smtplab.read(FIXTURES / "smtplib-debug2.txt")
    assert swaks["time"].isna().all() and debug2["time"].isna().all()
    assert debug2["latency"].notna().any()  # level 2 times of day still give latencies
    from_transcripts = [(swaks, s) for s in swaks["session"].unique()]
    from_transcripts += [(debug1, s) for s in debug1["session"].unique()]
    from_transcripts += [(debug2, s) for s in debug2["session"].unique()]
    captured = list(capture["session"].unique())[: len(from_transcripts)]
    for (frame, session), in_capture in zip(from_transcripts, captured, strict=True):
        theirs, ours = replies(frame, session), replies(capture, in_capture)
        # A transcript sees through TLS, the capture stops at it: compare what both saw.
        assert theirs[: len(ours)] == ours, (session, in_capture)
        assert (
            frame[frame["session"] == session]["server"].iloc[0]
            == (capture[capture["session"] == in_capture]["server"].iloc[0])
        )


def test_smtplib_level_2_with_a_day_gives_times() -> None:
    frame = smtplab.read(FIXTURES / "smtplib-debug2.txt", day=dt.date(2026, 11, 29))
    assert frame["time"].notna().all() and frame["time"].dt.day.eq(29).all()


# -- formats, files and bad input ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("smtp.pcapng", "pcap"),
        ("smtp.pcap", "pcap"),
        ("postfix.log", "postfix"),
        ("swaks.txt", "swaks"),
        ("smtplib-debug1.txt", "smtplib"),
        ("smtplib-debug2.txt", "smtplib"),
    ],
)
def test_the_format_is_told_from_the_content(name: str, expected: str, tmp_path) -> None:
    renamed = tmp_path / "whatever.dat"  # the name says nothing
    shutil.copy(FIXTURES / name, renamed)
    assert detect(renamed, renamed.read_bytes()[:4096]) == expected


def test_gzip_and_directories(tmp_path) -> None:
    with gzip.open(tmp_path / "log.gz", "wb") as packed:
        packed.write((FIXTURES / "postfix.log").read_bytes())
    shutil.copy(FIXTURES / "swaks.txt", tmp_path / "swaks.txt")
    frame = smtplab.read(tmp_path, year=2026)
    assert set(frame["source"]) == {"postfix", "swaks"}
    assert frame["session"].nunique() == 7 + 4


def test_a_truncated_capture_keeps_what_it_can(tmp_path) -> None:
    data = (FIXTURES / "smtp.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.warns(IngestWarning, match=r"cut\.pcap: skipped 1 .*packet \d+"):
        frame = smtplab.read(cut)
    assert 3 <= frame["session"].nunique() < 9
    assert "truncated" in " ".join(frame.attrs["skipped"][str(cut)]["examples"])


def test_a_corrupt_packet_is_skipped_and_the_rest_read(tmp_path) -> None:
    data = bytearray((FIXTURES / "smtp.pcap").read_bytes())
    # Packet 1 (after the 24-octet file header and its 16-octet record header) is an Ethernet
    # frame: give its TCP header a data offset of 2 words, less than a TCP header can be.
    linktype = struct.unpack("<I", data[20:24])[0]
    assert linktype == 1
    tcp = 24 + 16 + 14 + 20
    data[tcp + 12] = 0x20
    broken = tmp_path / "broken.pcap"
    broken.write_bytes(bytes(data))
    with pytest.warns(IngestWarning, match="packet 1"):
        frame = smtplab.read(broken)
    assert frame["session"].nunique() == 9


def test_garbled_log_lines_are_counted_with_their_line_numbers(tmp_path) -> None:
    lines = (FIXTURES / "postfix.log").read_text().splitlines(keepends=True)
    lines.insert(3, "\x07garbage that is no log line\n")
    garbled = tmp_path / "maillog"
    garbled.write_text("".join(lines))
    with pytest.warns(IngestWarning, match="maillog line 4"):
        frame = smtplab.read(garbled, year=2026)
    assert frame["session"].nunique() == 7


def test_files_that_cannot_be_read_get_one_clear_error(tmp_path) -> None:
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(IngestError, match=r"photo\.jpg: a binary file"):
        smtplab.read(binary)
    prose = tmp_path / "notes.txt"
    prose.write_text("Dear diary,\ntoday I read RFC 5321.\n")
    with pytest.raises(IngestError, match=r"notes\.txt: cannot tell its format"):
        smtplab.read(prose)
    with pytest.raises(IngestError, match=r"missing\.pcap: no such file"):
        smtplab.read(tmp_path / "missing.pcap")
    not_really = tmp_path / "fake.pcapng"
    not_really.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\0" * 8)
    with pytest.raises(IngestError, match=r"fake\.pcapng: pcapng section header"):
        smtplab.read(not_really)


def test_cli_ingest_writes_one_table_and_reports_what_it_skipped(tmp_path) -> None:
    import sys

    shutil.copy(FIXTURES / "swaks.txt", tmp_path / "swaks.txt")
    (tmp_path / "README").write_text("not a transcript\n")
    out = tmp_path / "all.csv"
    done = subprocess.run(
        [sys.executable, "-m", "smtplab", "ingest", str(FIXTURES / "smtp.pcapng"),
         str(tmp_path), "-o", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "13 sessions (9 pcap, 4 swaks)" in done.stdout
    assert "README: cannot tell its format" in done.stderr
    table = pd.read_csv(out)
    assert set(table["source"]) == {"pcap", "swaks"}
    failed = subprocess.run(
        [sys.executable, "-m", "smtplab", "ingest", str(tmp_path / "README"), "-o", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert failed.returncode == 2 and "README: cannot tell its format" in failed.stderr


def test_a_hostile_helo_name_in_a_reject_line_is_read_at_once(tmp_path) -> None:
    # The client picks its HELO name and Postfix logs it: no pattern may backtrack over it.
    helo = "x " + " ".join(f"a{i}=<b>" for i in range(40)) + " y"
    log = tmp_path / "maillog"
    log.write_text(
        "Nov 29 01:57:55 vm postfix/smtpd[100]: connect from unknown[192.0.2.9]\n"
        "Nov 29 01:57:55 vm postfix/smtpd[100]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: "
        "554 5.7.1 <x@example.net>: Relay access denied; from=<a@b.example> "
        f"to=<x@example.net> proto=ESMTP helo=<{helo}>\n"
    )
    frame = smtplab.read(log, year=2026)
    reply = frame[frame["kind"] == "reply"].iloc[0]
    assert (reply["code"], reply["enhanced"]) == (554, "5.7.1")
    assert reply["text"] == "<x@example.net>: Relay access denied"
    assert frame[frame["kind"] == "command"]["argument"].tolist() == ["TO:<x@example.net>"]


# -- found in review: damage that once raised from inside a parser, or read too much ------------


@pytest.mark.parametrize(
    "line",
    [
        "Foo 29 01:57:55 vm postfix/smtpd[1]: connect from unknown[192.0.2.9]",
        "Feb 30 01:57:55 vm postfix/smtpd[1]: connect from unknown[192.0.2.9]",
        "2026-13-29T01:57:55+00:00 vm postfix/smtpd[1]: connect from unknown[192.0.2.9]",
    ],
)
def test_an_impossible_log_timestamp_is_counted_not_raised(line: str, tmp_path) -> None:
    log = tmp_path / "maillog"
    log.write_text((FIXTURES / "postfix.log").read_text() + line + "\n")
    with pytest.warns(IngestWarning, match="impossible timestamp"):
        frame = smtplab.read(log, year=2025)
    assert frame["session"].nunique() == 7


def test_a_garbled_smtplib_value_is_skipped(tmp_path) -> None:
    debug = tmp_path / "debug.txt"
    text = (FIXTURES / "smtplib-debug1.txt").read_text()
    debug.write_text(text.replace("send: 'quit\\r\\n'", "send: " + "-" * 3000 + "1", 1))
    with pytest.warns(IngestWarning, match="unreadable send value"):
        frame = smtplab.read(debug)
    assert frame["session"].nunique() == 2


def test_a_short_pcapng_block_is_skipped(tmp_path) -> None:
    data = (FIXTURES / "smtp.pcapng").read_bytes()
    short = struct.pack("<II", 6, 12) + struct.pack("<I", 12)  # an Enhanced Packet Block, empty
    damaged = tmp_path / "short.pcapng"
    damaged.write_bytes(data + short)
    with pytest.warns(IngestWarning, match="block too short"):
        frame = smtplab.read(damaged)
    assert frame["session"].nunique() == 9


def test_a_cut_gzip_capture_keeps_what_came_before_the_cut(tmp_path) -> None:
    packed = gzip.compress((FIXTURES / "smtp.pcap").read_bytes())
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(packed[: len(packed) * 3 // 4])
    with pytest.warns(IngestWarning, match="compressed file cut short"):
        frame = smtplab.read(cut)
    assert frame["session"].nunique() >= 3


# -- a real client line ending in a bare LF (tests/fixtures/record_bare_lf.py) ------------------


def test_bare_lf_command_lines_to_postfix_are_commands_with_their_replies() -> None:
    frame = smtplab.read(FIXTURES / "bare-lf.pcapng")
    (session,) = frame["session"].unique()
    said = frame[frame["kind"] == "command"]
    assert said["verb"].tolist() == ["EHLO", "MAIL", "RCPT", "NOOP", "RSET", "QUIT"]
    assert said["argument"].tolist()[:3] == [
        "client.example", "FROM:<alice@localhost>", "TO:<no-such-user@localhost>",
    ]  # fmt: skip
    # Postfix answered each line: the replies pair with them one by one.
    answered = frame[frame["kind"] == "reply"]
    assert answered["verb"].tolist() == ["CONNECT", *said["verb"]]
    assert replies(frame, session) == [220, 250, 250, 550, 250, 250, 221]
    notes = frame[frame["kind"] == "note"]
    assert len(notes) == 5 and notes["text"].str.contains("bare LF").all()  # all but RCPT's
    if shutil.which("tshark"):
        fields = subprocess.run(
            ["tshark", "-r", str(FIXTURES / "bare-lf.pcapng"), "-Y", "smtp", "-T", "fields",
             "-e", "smtp.req.command", "-e", "smtp.response.code"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        theirs = [c for line in fields.splitlines() for c in line.split("\t") if c]
        ours = [
            str(x) for pair in zip(said["verb"], answered["code"][1:], strict=True) for x in pair
        ]
        assert theirs == ["220", *ours]
