"""Reading Zeek's smtp.log, TSV and JSON (issue 18).

The fixtures are NOT Zeek's output: no Zeek package is reachable here (Debian bookworm has
none, ``apt-cache policy zeek``; only Debian's and PyPI's archives are). They were built by
tests/fixtures/make_zeek_fixtures.py from Zeek's published smtp.log fields (``SMTP::Info`` in
``base/protocols/smtp/main.zeek``) and the header lines of Zeek's own test baseline, for the
traffic of the committed capture ``smtp.pcapng``: ``zeek-smtp.log`` (the ASCII writer's TSV;
its first line says so) and ``zeek-smtp.json`` (the JSON writer, one object per line; JSON
has no comments, so this docstring says it). The tests read them against the capture:
sessions, senders, recipients and last replies."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

import smtplab
from smtplab.ingest import IngestError, IngestWarning, detect

FIXTURES = Path(__file__).parents[1] / "fixtures"
NAMES = ["zeek-smtp.log", "zeek-smtp.json"]


def read_quietly(path: Path, **options: object) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("error", IngestWarning)
        return smtplab.read(path, **options)  # type: ignore[arg-type]


def records(name: str) -> list[dict[str, object]]:
    """The fixture's lines as plain dicts, read without smtplab."""
    text = (FIXTURES / name).read_text().splitlines()
    if name.endswith(".json"):
        return [json.loads(line) for line in text]
    fields = next(line for line in text if line.startswith("#fields")).split("\t")[1:]
    return [dict(zip(fields, line.split("\t"), strict=True)) for line in text if line[:1] != "#"]


@pytest.fixture(scope="module")
def capture() -> pd.DataFrame:
    return smtplab.read(FIXTURES / "smtp.pcapng")


def test_the_tsv_fixture_says_what_it_is() -> None:
    first = (FIXTURES / "zeek-smtp.log").read_text().splitlines()[0]
    assert first.startswith("# smtplab fixture: NOT written by Zeek")


@pytest.mark.parametrize("name", NAMES)
def test_each_line_is_a_transaction_of_its_uids_session(name: str) -> None:
    frame = read_quietly(FIXTURES / name)
    lines = records(name)
    assert set(frame["source"]) == {"zeek"}
    assert frame["session"].nunique() == len({line["uid"] for line in lines}) == 9
    for line in lines:
        rows = frame[frame["session"].str.endswith(str(line["uid"]))]
        assert rows["client"].iloc[0] == f"{line['id.orig_h']}:{line['id.orig_p']}"
        assert rows["server"].iloc[0] == f"{line['id.resp_h']}:{line['id.resp_p']}"
        replies = rows[rows["kind"] == "reply"]
        reply = replies.iloc[0]
        parts = [str(reply["code"]), reply["enhanced"], reply["text"]]
        assert " ".join(str(part) for part in parts if pd.notna(part)) == line["last_reply"]
        # The last reply is the only reply; it answers no command the log names.
        assert len(replies) == 1 and replies["reply_to"].isna().all()
        assert replies["verb"].isna().all()
        assert (rows["kind"] == "tls").any() == (line["tls"] in ("T", True))


def test_tsv_and_json_give_the_same_rows() -> None:
    tsv = read_quietly(FIXTURES / "zeek-smtp.log").drop(columns="session")
    as_json = read_quietly(FIXTURES / "zeek-smtp.json").drop(columns="session")
    pd.testing.assert_frame_equal(tsv, as_json)


# -- the same traffic in the capture ---------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_sessions_senders_recipients_and_last_replies_agree_with_the_capture(
    name: str, capture: pd.DataFrame
) -> None:
    frame = read_quietly(FIXTURES / name)
    ours = {rows["client"].iloc[0]: rows for _, rows in frame.groupby("session", observed=True)}
    theirs = {rows["client"].iloc[0]: rows for _, rows in capture.groupby("session", observed=True)}
    assert set(ours) == set(theirs)
    for client, log in ours.items():
        wire = theirs[client]
        commands = wire[wire["kind"] == "command"]

        def arguments(rows: pd.DataFrame, verb: str) -> list[str]:
            picked = rows[(rows["kind"] == "command") & (rows["verb"].str.upper() == verb)]
            return [argument.split(">")[0] + ">" for argument in picked["argument"]]

        assert arguments(log, "MAIL") == arguments(commands, "MAIL")
        assert arguments(log, "RCPT") == arguments(commands, "RCPT")  # accepted or refused
        # Zeek's last reply: the one to the final dot (or BDAT LAST), else the last one seen.
        replies = wire[wire["kind"] == "reply"]
        ended = replies[replies["verb"].isin(["DATA-END", "BDAT"])]
        expected = (ended if len(ended) else replies).iloc[-1]
        mine = log[log["kind"] == "reply"].iloc[0]
        assert (mine["code"], mine["enhanced"]) == (expected["code"], expected["enhanced"])
        assert mine["text"] == expected["text"].split("\n")[-1]
        assert (log["kind"] == "tls").any() == (wire["kind"] == "tls").any()


def test_a_connection_with_no_mail_has_no_line_so_the_log_has_fewer_sessions_only_then(
    capture: pd.DataFrame,
) -> None:
    # Every connection of the capture tried MAIL or STARTTLS: Zeek wrote a line for each.
    tried = capture[capture["verb"].str.upper().isin(["MAIL", "STARTTLS"])]
    assert tried["session"].nunique() == capture["session"].nunique()


# -- formats and bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_zeek_smtp_log_is_told_from_its_content(name: str, tmp_path) -> None:
    renamed = tmp_path / "whatever.dat"
    shutil.copy(FIXTURES / name, renamed)
    assert detect(renamed, renamed.read_bytes()) == "zeek"


def test_nested_ids_and_iso_timestamps_are_read(tmp_path) -> None:
    log = tmp_path / "smtp.json"
    log.write_text(
        '{"ts":"2026-11-29T01:57:55.249382Z","uid":"CAbc","id":{"orig_h":"192.0.2.1",'
        '"orig_p":1234,"resp_h":"192.0.2.25","resp_p":25},"trans_depth":1,"mailfrom":"a@b",'
        '"rcptto":["c@d"],"last_reply":"550 5.7.1 relaying denied","tls":false}\n'
    )
    frame = read_quietly(log, format="zeek")
    assert frame["client"].iloc[0] == "192.0.2.1:1234"
    reply = frame[frame["kind"] == "reply"].iloc[0]
    assert (reply["code"], reply["enhanced"], reply["text"]) == (550, "5.7.1", "relaying denied")
    assert str(frame["time"].dropna().iloc[0]) == "2026-11-29 01:57:55.249382+00:00"


def test_garbled_lines_are_skipped_and_counted_in_one_warning(tmp_path) -> None:
    for name, bad in (("zeek-smtp.log", "too\tfew\tfields"), ("zeek-smtp.json", '{"unclosed": ')):
        text = (FIXTURES / name).read_text().splitlines(keepends=True)
        damaged = tmp_path / name
        text.insert(len(text) - 3, bad + "\n")
        damaged.write_text("".join(text))
        with pytest.warns(IngestWarning) as caught:
            frame = smtplab.read(damaged)
        assert len(caught) == 1
        assert f"line {len(text) - 3}: not a Zeek smtp.log line" in str(caught[0].message)
        assert frame["session"].nunique() == 9


def test_another_zeek_log_or_format_is_an_error_naming_the_file_and_line(tmp_path) -> None:
    conn = tmp_path / "conn.log"
    conn.write_text("#separator \\x09\n#path\tconn\n#fields\tts\tuid\n1.0\tCx\n")
    with pytest.raises(IngestError, match=r"conn\.log line 2: a Zeek conn\.log, not an smtp"):
        smtplab.read(conn, format="zeek")
    with pytest.raises(IngestError, match=r"swaks\.txt line 1: not a Zeek smtp\.log line"):
        smtplab.read(FIXTURES / "swaks.txt", format="zeek")
