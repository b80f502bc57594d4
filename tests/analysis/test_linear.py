"""The analysis does its work on whole columns: no Python loop over sessions, transactions or
rows, so its cost grows with the rows and nothing faster (issue 16).

No timing is asserted. What is counted instead is the Python lines run: a loop over sessions in
Python runs at least one line per session, whatever the machine. The same analyses run on one,
four and sixteen copies of a mixed frame (lab sessions, captures, client transcripts and
Postfix logs with refusals, so every path of ``steps``, ``sessions`` and ``transactions`` is
taken, ``_logged_refusals`` among them), each copy with its own session names.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import smtplab
from smtplab.analysis import transactions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES))

from record_analysis import ANALYSES  # noqa: E402

PACKAGE = str(Path(smtplab.__file__).parent)
COPIES = (1, 4, 16)


@pytest.fixture(scope="module")
def copies() -> dict[int, pd.DataFrame]:
    mixed = pd.read_pickle(FIXTURES / "analysis.pickle.gz")["frames"]["mixed"]
    return {count: smtplab.concat([mixed] * count) for count in COPIES}


def lines_run(function: Callable[[pd.DataFrame], Any], frame: pd.DataFrame) -> Counter[str]:
    """The Python lines ``function(frame)`` runs: smtplab's own, and all (pandas, numpy...)."""
    counted: Counter[str] = Counter()

    def trace(code_frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "line":
            counted["all"] += 1
            if code_frame.f_code.co_filename.startswith(PACKAGE):
                counted["smtplab"] += 1
        return trace

    before = sys.gettrace()
    sys.settrace(trace)
    try:
        function(frame)
    finally:
        sys.settrace(before)
    return counted


@pytest.mark.parametrize("analysis", list(ANALYSES))
def test_the_python_lines_run_do_not_grow_with_the_sessions(analysis, copies) -> None:
    function = ANALYSES[analysis]
    function(copies[1])  # once before counting: first-use work (imports, compiled patterns)
    runs = {count: lines_run(function, frame) for count, frame in copies.items()}
    added = copies[COPIES[-1]]["session"].nunique() - copies[COPIES[0]]["session"].nunique()
    assert added > 3000
    first, last = runs[COPIES[0]], runs[COPIES[-1]]
    # A loop over sessions would run one line or more for each of the sessions added. What
    # does grow: a few lines for each oddity found (its text), and pandas taking other paths
    # at other sizes.
    assert last["smtplab"] - first["smtplab"] < added / 20, runs
    assert last["all"] - first["all"] < added / 10, runs


# -- the regular expression transactions() gives to Arrow ---------------------------------------

_PYTHON_ADDRESS = re.compile(r"^(?:FROM|TO):\s*<([^>]*)>", re.IGNORECASE)


def test_addresses_are_read_as_pythons_re_reads_them() -> None:
    """Arrow's RE2 reads ``\\s`` as ASCII whitespace only; the pattern spells out Python's."""
    from smtplab.analysis.transactions import _ADDRESS

    spaces = [chr(c) for c in range(sys.maxunicode + 1) if re.match(r"\s", chr(c))]
    arguments = [f"TO:{space}<bob@example.org>" for space in [*spaces, "\u200b", "x", "\x00"]]
    arguments += [
        "from:<a@b>", "To:  <x>", "tO:\t<x\n>", "FROM:<>", "fRoM:<<>", "TO:<a>b>",
        "TO :<a>", "TO:<a", "TO:bob@example.org", "RCPT TO:<a>", "TO:<ä@ß.example> SIZE=1",
    ]  # fmt: skip
    found = pc.extract_regex(pa.array(arguments), _ADDRESS).to_pylist()
    got = [None if match is None else match["address"] for match in found]
    expected = [(m.group(1) if (m := _PYTHON_ADDRESS.match(a)) else None) for a in arguments]
    assert got == expected


def test_transactions_read_odd_arguments_as_before() -> None:
    lab = smtplab.Lab()
    lab.send("alice@example.net", ["bob@example.org", "nobody@example.org", "carol@example.org"])
    frame = lab.transcript()
    # As a capture of another client might have them: an em space (Python's \s, not RE2's),
    # lower case, no address.
    commands = frame.index[frame["kind"] == "command"]
    frame.loc[commands[1], "argument"] = "FROM:\u2003<alice@example.net>"
    frame.loc[commands[2], "argument"] = "to:<bob@example.org>"
    frame.loc[commands[4], "argument"] = "TO:carol@example.org"
    table = transactions(frame)
    assert table["mail_from"].tolist() == ["alice@example.net"]
    assert table["recipients"].tolist() == [["bob@example.org"]]
    assert table["rejected"].tolist() == [["nobody@example.org"]]
    assert table["accepted"].tolist() == [2]  # counted from the steps, address or not
