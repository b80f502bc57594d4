"""smtplib's debug output made the usual way: ``SMTP(host, port)`` first, ``set_debuglevel``
after, so there is no ``connect:`` line and no greeting (issue 18).

The fixtures were recorded by ``tests/fixtures/record.py --after-connect-only``: real ``smtplib``
at levels 1 and 2 against smtplab's TCP server, three sessions each (a refused recipient;
STARTTLS; debugging switched on after EHLO too), and what the server itself recorded of the
same six sessions (``smtplib-after-connect-server.csv``)."""

from __future__ import annotations

import datetime as dt
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

import smtplab
from smtplab.ingest import IngestWarning, detect

FIXTURES = Path(__file__).parents[1] / "fixtures"
UNITS = ["kind", "verb", "argument", "code", "enhanced", "text"]


def read_quietly(path: Path, **options: object) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("error", IngestWarning)  # nothing of these files is skipped
        return smtplab.read(path, **options)  # type: ignore[arg-type]


def units(rows: pd.DataFrame) -> list[tuple[str, ...]]:
    """Commands, message blocks and replies as strings (missing: ""), in order."""
    kept = rows[rows["kind"].isin(["command", "data", "reply"])]
    return [
        tuple("" if pd.isna(value) else str(value) for value in row)
        for row in kept[UNITS].itertuples(index=False)
    ]


@pytest.fixture(scope="module")
def server_sessions() -> list[list[tuple[str, ...]]]:
    logged = pd.read_csv(
        FIXTURES / "smtplib-after-connect-server.csv", dtype=str, keep_default_na=False
    )
    return [units(rows) for _, rows in logged.groupby("session", sort=False)]


@pytest.mark.parametrize("level", [1, 2])
def test_each_session_is_read_though_no_connect_line_opens_it(level: int) -> None:
    frame = read_quietly(FIXTURES / f"smtplib-after-connect{level}.txt")
    assert frame["session"].nunique() == 3
    assert set(frame["source"]) == {"smtplib"}
    assert frame["server"].isna().all() and frame["client"].isna().all()  # not printed: unknown
    for _, rows in frame.groupby("session", observed=True):
        first, second = rows.iloc[0], rows.iloc[1]
        assert first["kind"] == "connect" and pd.isna(first["time"])
        assert second["kind"] == "note" and "greeting" in second["text"]
        # The greeting was before the transcript: no reply is paired with the connect row.
        assert not (rows["reply_to"] == first["seq"]).any()
        assert "CONNECT" not in set(rows.loc[rows["kind"] == "reply", "verb"].astype(str))


@pytest.mark.parametrize("level", [1, 2])
def test_the_commands_and_replies_are_those_the_server_logged(level: int, server_sessions) -> None:
    frame = read_quietly(FIXTURES / f"smtplib-after-connect{level}.txt")
    ours = [units(rows) for _, rows in frame.groupby("session", observed=True, sort=False)]
    theirs = server_sessions[3 * (level - 1) : 3 * level]
    for read, logged in zip(ours, theirs, strict=True):
        # The server saw the whole session; the transcript starts after the greeting (and,
        # in the third session, after EHLO): it is the end of what the server logged.
        assert len(read) < len(logged)
        assert read == logged[len(logged) - len(read) :]
    codes = [[int(code) for kind, _, _, code, _, _ in read if kind == "reply"] for read in ours]
    assert codes == [
        [250, 250, 250, 550, 354, 250, 221],
        [250, 220, 250, 250, 250, 354, 250, 221],
        [250, 250, 354, 250, 221],
    ]


def test_starttls_is_seen_and_the_rows_after_it_are_under_tls() -> None:
    frame = read_quietly(FIXTURES / "smtplib-after-connect1.txt")
    second = frame[frame["session"] == frame["session"].unique()[1]]
    tls = second.index[second["kind"] == "tls"]
    assert len(tls) == 1
    assert not second.loc[: tls[0] - 1, "tls"].any() and second.loc[tls[0] :, "tls"].all()


def test_level_2_keeps_latencies_and_gives_times_with_a_day() -> None:
    frame = read_quietly(FIXTURES / "smtplib-after-connect2.txt")
    replies = frame[frame["kind"] == "reply"]
    assert frame["time"].isna().all() and replies["latency"].notna().all()
    dated = read_quietly(FIXTURES / "smtplib-after-connect2.txt", day=dt.date(2026, 12, 5))
    commands = dated[dated["kind"].isin(["command", "reply"])]
    assert commands["time"].notna().all()
    assert dated.loc[dated["kind"] == "connect", "time"].isna().all()  # when: not printed


@pytest.mark.parametrize("level", [1, 2])
def test_such_a_transcript_is_told_from_its_content(level: int, tmp_path) -> None:
    renamed = tmp_path / "whatever.dat"
    shutil.copy(FIXTURES / f"smtplib-after-connect{level}.txt", renamed)
    assert detect(renamed, renamed.read_bytes()) == "smtplib"


def test_a_transcript_that_starts_at_the_greeting_pairs_it_with_the_connection(tmp_path) -> None:
    lines = (FIXTURES / "smtplib-debug1.txt").read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.txt"
    cut.write_text("".join(lines[1:]))  # no "connect: to (...)" line
    with warnings.catch_warnings():
        warnings.simplefilter("error", IngestWarning)
        frame = smtplab.read(cut)
    first = frame[frame["session"] == frame["session"].iloc[0]]
    greeting = first[first["kind"] == "reply"].iloc[0]
    assert (greeting["verb"], greeting["code"], greeting["reply_to"]) == ("CONNECT", 220, 0)
    assert frame["session"].nunique() == 2  # the second still opens at its connect: line


def test_a_line_after_quit_opens_the_next_session_and_summaries_stay_quiet(tmp_path) -> None:
    text = (FIXTURES / "smtplib-after-connect1.txt").read_text()
    debug = tmp_path / "debug.txt"
    # A summary before any session is damage; an unreadable value opens no empty session.
    debug.write_text("reply: retcode (250); Msg: b'OK'\nsend: !!!\n" + text)
    with pytest.warns(IngestWarning, match="skipped 2 .*outside any session.*unreadable send"):
        frame = smtplab.read(debug)
    assert frame["session"].nunique() == 3
