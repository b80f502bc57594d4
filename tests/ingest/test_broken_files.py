"""Broken and special files: each gets one clear error naming it, and never a traceback.

Built in tmp_path from the committed fixtures: cut, corrupted, gzipped and corrupted again.
A file named alone raises IngestError; among several inputs or in a directory it is skipped
with an IngestWarning naming it, and the rest is read.
"""

from __future__ import annotations

import errno
import gzip
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest

import smtplab
from smtplab.ingest import IngestError, IngestWarning
from smtplab.ingest.inputs import MAX_LINE, _reason

FIXTURES = Path(__file__).parents[1] / "fixtures"
LOG_SESSIONS, PCAP_SESSIONS, SWAKS_SESSIONS = 7, 9, 4


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def corrupt_gzip(data: bytes) -> bytes:
    """``data`` gzipped, with 40 octets in the middle of the compressed stream overwritten."""
    packed = bytearray(gzip.compress(data))
    middle = len(packed) // 2
    packed[middle : middle + 40] = b"\xff" * 40
    return bytes(packed)


# -- gzip --------------------------------------------------------------------------------------


def test_a_corrupt_gzip_keeps_what_came_before_the_damage(tmp_path) -> None:
    damaged = tmp_path / "damaged.pcap.gz"
    damaged.write_bytes(corrupt_gzip(fixture("smtp.pcap")))
    with pytest.warns(IngestWarning, match=r"damaged\.pcap\.gz.*compressed data damaged after"):
        frame = smtplab.read(damaged)
    assert 1 <= frame["session"].nunique() < PCAP_SESSIONS
    (example, *_) = frame.attrs["skipped"][str(damaged)]["examples"]
    assert "octets of content" in example and "the rest is lost" in example


def test_a_gzip_of_garbage_is_one_clear_error(tmp_path) -> None:
    garbage = tmp_path / "garbage.log.gz"
    garbage.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    with pytest.raises(IngestError, match=r"garbage\.log\.gz: not a readable gzip file \("):
        smtplab.read(garbage)
    damaged_at_once = tmp_path / "early.log.gz"
    packed = bytearray(gzip.compress(fixture("postfix.log")))
    packed[12:40] = b"\xff" * 28  # the first compressed octets
    damaged_at_once.write_bytes(bytes(packed))
    with pytest.raises(IngestError, match=r"early\.log\.gz: not a readable gzip file"):
        smtplab.read(damaged_at_once)


def test_a_cut_gzip_log_keeps_the_lines_before_the_cut(tmp_path) -> None:
    packed = gzip.compress(fixture("postfix.log"))
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    with pytest.warns(IngestWarning, match=r"cut\.log\.gz.*cut short after \d+ octets"):
        frame = smtplab.read(cut, year=2026)
    assert 1 <= frame["session"].nunique() < LOG_SESSIONS


def test_a_gzip_of_nothing_is_an_empty_file(tmp_path) -> None:
    nothing = tmp_path / "nothing.gz"
    nothing.write_bytes(gzip.compress(b""))
    with pytest.raises(IngestError, match=r"nothing\.gz: an empty file"):
        smtplab.read(nothing)


# -- captures ----------------------------------------------------------------------------------


def test_a_pcap_cut_in_its_header_or_in_a_packet(tmp_path) -> None:
    header = tmp_path / "header.pcap"
    header.write_bytes(fixture("smtp.pcap")[:10])
    with pytest.raises(IngestError, match=r"header\.pcap: the pcap header is cut short"):
        smtplab.read(header)
    record = tmp_path / "record.pcap"
    record.write_bytes(fixture("smtp.pcap")[: 24 + 8])  # half of the first packet's header
    with pytest.warns(IngestWarning, match=r"record\.pcap packet 1: packet header cut short"):
        frame = smtplab.read(record)
    assert frame.empty


def test_a_pcapng_block_with_a_bad_length_ends_the_file_there(tmp_path) -> None:
    data = bytearray(fixture("smtp.pcapng"))
    # Walk the blocks to the 20th Enhanced Packet Block and give it an impossible length.
    offset, packets = 0, 0
    while packets < 20:
        kind, length = struct.unpack_from("<II", data, offset)
        packets += kind == 6
        if packets < 20:
            offset += length
    struct.pack_into("<I", data, offset + 4, 7)  # not a multiple of 4, less than 12
    bad = tmp_path / "bad-length.pcapng"
    bad.write_bytes(bytes(data))
    with pytest.warns(IngestWarning, match=r"bad-length\.pcapng after packet 19: impossible"):
        frame = smtplab.read(bad)
    assert 1 <= frame["session"].nunique() < PCAP_SESSIONS


# -- logs ------------------------------------------------------------------------------------


def test_binary_junk_and_invalid_utf8_in_a_log_are_counted_by_line(tmp_path) -> None:
    lines = fixture("postfix.log").splitlines(keepends=True)
    lines.insert(4, bytes(range(1, 9)) + b"\xff\xfe junk\n")  # control octets, no UTF-8
    lines.insert(9, lines[9].replace(b"connect", b"conn\xc3\x28ect"))  # an invalid sequence
    junk = tmp_path / "junk.log"
    junk.write_bytes(b"".join(lines))
    with pytest.warns(IngestWarning, match=r"junk\.log line 5: not a syslog line") as caught:
        frame = smtplab.read(junk, year=2026)
    assert len(caught) == 1
    assert LOG_SESSIONS - 1 <= frame["session"].nunique() <= LOG_SESSIONS


def test_a_huge_log_line_is_skipped_in_bounded_memory(tmp_path) -> None:
    lines = fixture("postfix.log").splitlines(keepends=True)
    huge = 16 * 1024 * 1024
    with (tmp_path / "huge.log").open("wb") as out:
        out.writelines(lines[:5])
        out.write(lines[5].rstrip(b"\n"))  # a real line that goes on and on
        for _ in range(huge // 65536):
            out.write(b"x" * 65536)
        out.write(b"\n")
        out.writelines(lines[6:])
    tracemalloc.start()
    try:
        with pytest.warns(IngestWarning, match=rf"huge\.log line 6: line longer than {MAX_LINE}"):
            frame = smtplab.read(tmp_path / "huge.log", year=2026)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < huge // 4  # the line was never held whole (as bytes or as text)
    assert frame["session"].nunique() == LOG_SESSIONS  # only what line 6 said is missing


# -- files that are not files ------------------------------------------------------------------


def test_an_empty_file_says_so(tmp_path) -> None:
    empty = tmp_path / "empty.log"
    empty.touch()
    with pytest.raises(IngestError, match=r"empty\.log: an empty file: nothing to read"):
        smtplab.read(empty)


def test_dev_null_is_an_empty_file_not_a_missing_one() -> None:
    with pytest.raises(IngestError, match=r"^/dev/null: an empty file"):
        smtplab.read("/dev/null")


def write_into(fifo: Path, data: bytes) -> threading.Thread:
    def write() -> None:
        with fifo.open("wb") as out:  # blocks until the reader opens it
            out.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_a_named_fifo_is_read_as_a_stream(tmp_path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for name, sessions in (("smtp.pcapng", PCAP_SESSIONS), ("swaks.txt", SWAKS_SESSIONS)):
        writer = write_into(fifo, fixture(name))
        frame = smtplab.read(fifo)
        writer.join(timeout=30)
        assert frame["session"].nunique() == sessions
    writer = write_into(fifo, gzip.compress(fixture("postfix.log")))  # gzip, from a pipe
    assert smtplab.read(fifo, year=2026)["session"].nunique() == LOG_SESSIONS
    writer.join(timeout=30)


def test_special_files_in_a_directory_are_skipped_without_blocking(tmp_path) -> None:
    shutil.copy(FIXTURES / "swaks.txt", tmp_path / "swaks.txt")
    os.mkfifo(tmp_path / "fifo")  # no writer: opening it would block for ever
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(tmp_path / "sock"))
        with pytest.warns(IngestWarning) as caught:
            frame = smtplab.read(tmp_path)
    said = sorted(str(warning.message) for warning in caught)
    assert said == [
        f"skipped {tmp_path / 'fifo'}: not a regular file (a FIFO): not read from a directory, "
        "where reading it could block; name it to read it as a stream",
        f"skipped {tmp_path / 'sock'}: not a regular file (a socket): not read from a directory, "
        "where reading it could block; name it to read it as a stream",
    ]
    assert frame["session"].nunique() == SWAKS_SESSIONS
    assert set(frame.attrs["skipped"]) == {str(tmp_path / "fifo"), str(tmp_path / "sock")}


def test_a_named_socket_cannot_be_read(tmp_path) -> None:
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(tmp_path / "sock"))
        with pytest.raises(IngestError, match=r"sock: a socket, not a file"):
            smtplab.read(tmp_path / "sock")


def test_symbolic_link_loops_and_broken_links(tmp_path) -> None:
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "broken").symlink_to("nowhere")
    with pytest.raises(IngestError, match=r"loop: a symbolic link loop"):
        smtplab.read(tmp_path / "loop")
    with pytest.raises(IngestError, match=r"broken: a broken symbolic link \(to nowhere\)"):
        smtplab.read(tmp_path / "broken")
    shutil.copy(FIXTURES / "swaks.txt", tmp_path / "swaks.txt")
    (tmp_path / "up").symlink_to(".")  # a link to a directory: not followed, no endless walk
    with pytest.warns(IngestWarning) as caught:
        frame = smtplab.read(tmp_path)
    assert frame["session"].nunique() == SWAKS_SESSIONS
    assert {str(warning.message).split(": ")[1] for warning in caught} == {
        "a symbolic link loop (too many levels of symbolic links)",
        "a broken symbolic link (to nowhere)",
    }


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file whatever its mode")
def test_permission_denied(tmp_path) -> None:
    locked = tmp_path / "locked.log"
    shutil.copy(FIXTURES / "postfix.log", locked)
    locked.chmod(0)
    with pytest.raises(IngestError, match=r"locked\.log: permission denied"):
        smtplab.read(locked)


def test_each_operating_system_error_is_said_in_words() -> None:
    # The words for errors a root test run cannot cause (root reads every file).
    assert _reason(PermissionError(errno.EACCES, "Permission denied")) == "permission denied"
    assert _reason(OSError(errno.ELOOP, "Too many levels")).startswith("a symbolic link loop")
    assert _reason(OSError(errno.EIO, "Input/output error")) == "cannot be read: Input/output error"


def test_directories_with_nothing_readable(tmp_path) -> None:
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    with pytest.raises(IngestError, match=r"empty: a directory with no files in it"):
        smtplab.read(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 64)
    (bad / "b.txt").write_text("prose, not a transcript\n")
    with pytest.warns(IngestWarning), pytest.raises(IngestError) as raised:
        smtplab.read(bad)
    message = str(raised.value)
    assert message.startswith("nothing could be read: ")
    assert "a.gz: not a readable gzip file" in message and "b.txt: cannot tell" in message


# -- one bad file among many -------------------------------------------------------------------


def test_a_bad_file_in_a_directory_is_skipped_and_the_rest_read(tmp_path) -> None:
    shutil.copy(FIXTURES / "smtp.pcap", tmp_path / "good.pcap")
    shutil.copy(FIXTURES / "swaks.txt", tmp_path / "swaks.txt")
    (tmp_path / "corrupt.log.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 64)
    (tmp_path / "empty.txt").touch()
    with pytest.warns(IngestWarning) as caught:
        frame = smtplab.read(tmp_path)
    assert sorted(str(warning.message).split(": ")[0] for warning in caught) == [
        f"skipped {tmp_path / 'corrupt.log.gz'}",
        f"skipped {tmp_path / 'empty.txt'}",
    ]
    assert frame["session"].nunique() == PCAP_SESSIONS + SWAKS_SESSIONS


def test_several_named_inputs_skip_the_bad_one(tmp_path) -> None:
    missing = tmp_path / "missing.log"
    with pytest.warns(IngestWarning, match=r"skipped .*missing\.log: no such file or directory"):
        frame = smtplab.read([FIXTURES / "swaks.txt", missing])
    assert frame["session"].nunique() == SWAKS_SESSIONS
    assert str(missing) in frame.attrs["skipped"]


# -- the command line --------------------------------------------------------------------------


def ingest(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smtplab", "ingest", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_a_bad_file_alone_is_one_line_and_exit_2(tmp_path) -> None:
    damaged = tmp_path / "damaged.gz"
    damaged.write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 64)
    done = ingest(damaged, "-o", tmp_path / "out.csv")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"smtplab ingest: {damaged}: not a readable gzip file (Error -3 while decompressing "
        "data: invalid block type)"
    ]
    assert not (tmp_path / "out.csv").exists()
    done = ingest("/dev/null", "-o", tmp_path / "out.csv")
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["smtplab ingest: /dev/null: an empty file: nothing to read"]


def test_cli_a_bad_file_in_a_directory_is_listed_and_the_rest_written(tmp_path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(FIXTURES / "swaks.txt", inputs / "swaks.txt")
    (inputs / "damaged.pcap.gz").write_bytes(corrupt_gzip(fixture("smtp.pcap"))[:30])
    os.mkfifo(inputs / "fifo")
    done = ingest(inputs, "-o", tmp_path / "out.csv")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"smtplab ingest: skipped {inputs / 'damaged.pcap.gz'}: not a readable gzip file: "
        "cut short before any content",
        f"smtplab ingest: skipped {inputs / 'fifo'}: not a regular file (a FIFO): not read from "
        "a directory, where reading it could block; name it to read it as a stream",
    ]
    assert f"{SWAKS_SESSIONS} sessions ({SWAKS_SESSIONS} swaks)" in done.stdout


def test_cli_reads_a_named_fifo(tmp_path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = write_into(fifo, fixture("smtp.pcapng"))
    done = ingest(fifo, "-o", tmp_path / "out.csv")
    writer.join(timeout=30)
    assert done.returncode == 0, done.stderr
    assert f"{PCAP_SESSIONS} sessions ({PCAP_SESSIONS} pcap)" in done.stdout


def test_a_garbled_escape_in_an_smtplib_transcript_warns_nothing(tmp_path) -> None:
    """A damaged literal (``\\z`` is no escape) is read as damage, without Python's own
    DeprecationWarning/SyntaxWarning reaching the user."""
    import warnings

    text = (FIXTURES / "smtplib-debug1.txt").read_text()
    damaged = tmp_path / "smtplib.txt"
    damaged.write_text(
        text.replace("send: 'ehlo client.example.net\\r\\n'", "send: 'ehlo \\z\\r\\n'")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = smtplab.read(damaged)
    assert len(frame) > 0
