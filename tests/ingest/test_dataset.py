"""The Parquet dataset: the same rows as smtplab.read, partitioned, added to, filtered, bounded."""

from __future__ import annotations

import datetime as dt
import gzip
import re
import warnings
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import smtplab
from smtplab.cli.commands import main as cli
from smtplab.ingest import IngestWarning
from smtplab.ingest.dataset import input_key, read_dataset, write_dataset
from smtplab.ingest.postfix import LATE_LINES
from smtplab.teaching.logs import grown_log

FIXTURES = Path(__file__).parents[1] / "fixtures"
INPUTS = [
    FIXTURES / name for name in ("postfix.log", "smtp.pcapng", "swaks.txt", "smtplib-debug1.txt")
]


def copies_of_the_fixture_log(path: Path, copies: int, host: str = "vm") -> Path:
    """The real fixture log ``copies`` times, copy ``n`` at second ``n`` from Nov 29 23:59:30
    (so the copies cross midnight), on ``host``."""
    return grown_log(path, copies, hosts=(host,), start=dt.datetime(2026, 11, 29, 23, 59, 30))


def in_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by session name and seq, names as plain strings (to compare two frames)."""
    frame = frame.assign(session=frame["session"].astype(str))
    return frame.sort_values(["session", "seq"], ignore_index=True)


def as_in_dataset(frame: pd.DataFrame, keys: dict[str, str]) -> pd.DataFrame:
    """``smtplab.read``'s session names (``postfix-3``) as a dataset names them
    (``vm/07f6...-3``): the file's key, and a Postfix log's host."""
    prefix = {path.name.split(".")[0]: key for path, key in keys.items()}
    names = []
    for name, source in zip(frame["session"].astype(str), frame["source"], strict=True):
        stem, _, number = name.rpartition("-")
        names.append(("vm/" if source == "postfix" else "") + f"{prefix[stem]}-{number}")
    return frame.assign(session=names)


def read_quietly(paths: object, **options: object) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IngestWarning)
        return smtplab.read(paths, **options)  # type: ignore[arg-type]


def test_a_dataset_holds_exactly_the_rows_read_gives(tmp_path: Path) -> None:
    report = write_dataset(INPUTS, tmp_path / "ds", year=2026)
    expected = as_in_dataset(read_quietly(INPUTS, year=2026), {p: input_key(p) for p in INPUTS})
    back = read_dataset(tmp_path / "ds")
    assert report.rows == len(back) == len(expected)
    assert report.sessions == expected["session"].nunique()
    assert {name: str(dtype) for name, dtype in back.dtypes.items()} == smtplab.log.COLUMNS
    pd.testing.assert_frame_equal(in_order(back), in_order(expected))


def test_files_are_partitioned_by_source_and_day_and_never_split_a_session(
    tmp_path: Path,
) -> None:
    log = copies_of_the_fixture_log(tmp_path / "mail.log", 120)
    report = write_dataset(
        [log, FIXTURES / "swaks.txt"], tmp_path / "ds", year=2026, batch_rows=500
    )
    folders = {str(path.parent.relative_to(tmp_path / "ds")) for path in report.files}
    assert folders == {
        "source=postfix/day=2026-11-29",
        "source=postfix/day=2026-11-30",
        "source=swaks/day=unknown",  # swaks prints no times
    }
    assert len(report.files) > 3  # several batches
    seen: set[str] = set()
    for path in report.files:
        sessions = set(pq.read_table(path, columns=["session"])["session"].to_pylist())
        assert not sessions & seen, "a session is split between files"
        seen |= sessions
    assert len(seen) == report.sessions == 120 * 7 + 4


def test_memory_holds_one_batch_and_the_open_sessions_not_the_input(tmp_path: Path) -> None:
    log = copies_of_the_fixture_log(tmp_path / "mail.log", 300)
    report = write_dataset(log, tmp_path / "ds", year=2026, batch_rows=1000)
    assert report.rows == len(read_quietly(log, year=2026)) > 20 * 1000
    assert report.most_rows_held < 1000 + 100  # a batch, and at most the session that filled it


def test_inputs_added_later_rewrite_nothing_and_session_ids_stay_unique(tmp_path: Path) -> None:
    first = write_dataset(
        copies_of_the_fixture_log(tmp_path / "mx1.log", 20, "mx1"), tmp_path / "ds", year=2026
    )
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in first.files}
    # The second host's log has the same pids, queue ids and times: only the host differs.
    second = write_dataset(
        copies_of_the_fixture_log(tmp_path / "mx2.log", 20, "mx2"), tmp_path / "ds", year=2026
    )
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in first.files} == before
    sessions = read_dataset(tmp_path / "ds").groupby("session", observed=True)
    assert sessions.ngroups == first.sessions + second.sessions == 2 * 20 * 7
    assert (sessions["client"].nunique() == 1).all()  # no two sessions merged into one
    hosts = pd.Series([name.partition("/")[0] for name in sessions.size().index])
    assert hosts.value_counts().to_dict() == {"mx1": 140, "mx2": 140}


def test_an_input_ingested_again_replaces_its_own_files(tmp_path: Path) -> None:
    log = copies_of_the_fixture_log(tmp_path / "mail.log", 30)
    write_dataset([log, FIXTURES / "swaks.txt"], tmp_path / "ds", year=2026, batch_rows=300)
    rows = len(read_dataset(tmp_path / "ds"))
    # Again, rotated and compressed, in bigger batches (fewer files): the same rows, once.
    rotated = tmp_path / "mail.log.2.gz"
    rotated.write_bytes(gzip.compress(log.read_bytes()))
    write_dataset(rotated, tmp_path / "ds", year=2026, batch_rows=100_000)
    again = read_dataset(tmp_path / "ds")
    assert len(again) == rows
    assert again["session"].nunique() == 30 * 7 + 4


def test_filters_read_only_the_partitions_asked_for(tmp_path: Path) -> None:
    log = copies_of_the_fixture_log(tmp_path / "mail.log", 90)
    write_dataset([log, *INPUTS[1:]], tmp_path / "ds", year=2026)
    everything = read_dataset(tmp_path / "ds")
    postfix = read_dataset(tmp_path / "ds", filters=[("source", "==", "postfix")])
    assert len(postfix) == (everything["source"] == "postfix").sum()
    assert set(postfix["source"]) == {"postfix"}
    late = read_dataset(
        tmp_path / "ds", filters=[("source", "==", "postfix"), ("day", ">=", "2026-11-30")]
    )
    assert late["time"].min() >= pd.Timestamp("2026-11-30", tz="UTC")
    assert 0 < late["session"].nunique() < postfix["session"].nunique()
    refused = read_dataset(tmp_path / "ds", filters=[("code", ">=", 500)], columns=["code"])
    assert list(refused.columns) == ["code"] and str(refused["code"].dtype) == "Int16"
    assert (refused["code"] >= 500).all() and len(refused) == (everything["code"] >= 500).sum()


def test_a_postfix_log_with_two_hosts_keeps_their_sessions_apart(tmp_path: Path) -> None:
    """One log gathering two hosts (central syslog), the same smtpd pid on both."""
    lines = [
        "Nov 29 01:00:00 mx1 postfix/smtpd[100]: connect from a.example[192.0.2.1]",
        "Nov 29 01:00:01 mx2 postfix/smtpd[100]: connect from b.example[192.0.2.2]",
        "Nov 29 01:00:02 mx1 postfix/smtpd[100]: disconnect from a.example[192.0.2.1] "
        "ehlo=1 quit=1 commands=2",
        "Nov 29 01:00:03 mx2 postfix/smtpd[100]: disconnect from b.example[192.0.2.2] "
        "ehlo=1 mail=1 quit=1 commands=3",
    ]
    log = tmp_path / "central.log"
    log.write_text("\n".join(lines) + "\n")
    frame = read_quietly(log, year=2026)
    commands = frame[frame["kind"] == "command"].groupby("session", observed=True).size()
    assert commands.tolist() == [2, 3]
    assert not frame["text"].str.contains("no disconnect", na=False).any()
    write_dataset(log, tmp_path / "ds", year=2026)
    names = read_dataset(tmp_path / "ds")["session"].astype(str).unique()
    assert sorted(name.partition("/")[0] for name in names) == ["mx1", "mx2"]


def test_a_streamed_session_takes_its_queue_lines_for_an_hour_after_disconnect(
    tmp_path: Path,
) -> None:
    def at(seconds: float) -> str:
        return (dt.datetime(2026, 11, 29, 1) + dt.timedelta(seconds=seconds)).strftime(
            "%b %e %H:%M:%S"
        )

    def session(start: float, pid: int, queue: str, delivered_after: float) -> list[str]:
        return [
            f"{at(start)} vm postfix/smtpd[{pid}]: connect from c.example[192.0.2.9]",
            f"{at(start)} vm postfix/smtpd[{pid}]: {queue}: client=c.example[192.0.2.9]",
            f"{at(start + 1)} vm postfix/smtpd[{pid}]: disconnect from c.example[192.0.2.9] "
            "ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
            f"{at(start + 1 + delivered_after)} vm postfix/local[9]: {queue}: to=<b@example.org>, "
            "relay=local, delay=1, status=sent (delivered to mailbox)",
        ]

    soon = session(0, 1, "AAAAAAAAAAA", 60)
    late = session(10, 2, "BBBBBBBBBBB", LATE_LINES + 60)
    log = tmp_path / "mail.log"
    log.write_text("\n".join(sorted(soon + late, key=lambda line: line[:15])) + "\n")
    in_memory = read_quietly(log, year=2026)
    assert in_memory["text"].str.contains("status=sent", na=False).sum() == 2
    write_dataset(log, tmp_path / "ds", year=2026)
    streamed = read_dataset(tmp_path / "ds")
    delivered = streamed[streamed["text"].str.contains("status=sent", na=False)]
    assert delivered["text"].str.startswith("AAAAAAAAAAA").tolist() == [True]


def test_the_cli_streams_into_a_dataset_and_says_what_it_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["ingest", *map(str, INPUTS), "--dataset", str(tmp_path / "ds")]) == 0
    said = capsys.readouterr().out
    assert re.search(r"\d+ rows, 22 sessions from 4 input\(s\) -> 4 file\(s\)", said), said
    assert cli(["ingest", str(FIXTURES / "record.py"), "--dataset", str(tmp_path / "ds")]) == 2
    assert "cannot tell its format" in capsys.readouterr().err
    assert len(read_dataset(tmp_path / "ds")) > 0  # a failed input took nothing away


def test_reading_a_missing_or_empty_dataset(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such dataset directory"):
        read_dataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    assert read_dataset(tmp_path / "empty").empty
    write_dataset(INPUTS[0], tmp_path / "ds", year=2026)
    with pytest.raises(ValueError, match="no such transcript column"):
        read_dataset(tmp_path / "ds", columns=["sesion"])


def test_a_frame_in_memory_is_written_as_it_is_in_whole_sessions(tmp_path: Path) -> None:
    """A lab's transcript, with sessions interleaved (shuffled rows), in small files."""
    frame = smtplab.concat([smtplab.simulate(40), read_quietly(INPUTS[0], year=2026)])
    shuffled = frame.sample(frac=1.0, random_state=7)
    report = write_dataset(shuffled, tmp_path / "ds", batch_rows=100)
    assert report.rows == len(frame) and report.sessions == frame["session"].nunique()
    assert len(report.files) > 5
    seen: set[str] = set()
    for path in report.files:
        part = pq.read_table(path, columns=["session", "seq"]).to_pandas()
        sessions = set(part["session"].astype(str))
        assert not sessions & seen, "a session is split between files"
        seen |= sessions
        assert (part.groupby("session", observed=True)["seq"].diff().dropna() > 0).all()
    back = read_dataset(tmp_path / "ds")
    assert {name: str(dtype) for name, dtype in back.dtypes.items()} == smtplab.log.COLUMNS
    # (concat's categories are of pandas' "string" dtype, a read's of "str": values compared)
    pd.testing.assert_frame_equal(
        in_order(back), in_order(frame), check_dtype=False, check_categorical=False
    )
    again = write_dataset(frame, tmp_path / "ds", batch_rows=1000)  # the same frame, rewritten
    assert len(read_dataset(tmp_path / "ds")) == len(frame) and len(again.files) < len(report.files)


def test_the_logs_of_issue_18_stream_into_days_by_their_first_timed_row(tmp_path: Path) -> None:
    # Their connect rows have no time (none is logged); the day is that of the first row
    # that has one, as for a frame written whole.
    names = ["sendmail.log", "zeek-smtp.log", "exchange-tracking.log", "m365-message-trace.csv"]
    report = smtplab.write_dataset([FIXTURES / name for name in names], tmp_path, year=2026)
    days = {path.parent.name for path in report.files}
    assert days == {"day=2026-11-29", "day=2026-12-05"}
    back = smtplab.read_dataset(tmp_path)
    assert back["session"].nunique() == sum(
        smtplab.read(FIXTURES / name, year=2026)["session"].nunique() for name in names
    )
