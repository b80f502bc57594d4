"""The analysis gives exactly the tables the code before the linear rewrite gave.

``tests/fixtures/analysis.pickle.gz`` holds transcripts of every kind (simulated, the teaching
scenarios, captures, client transcripts, Postfix logs, ``concat`` of logs whose session names
clash, one mixed frame of all of them, shuffled and not) and every analysis table the code on
``main`` made of them before ``steps``, ``sessions``, ``transactions``, ``oddities`` and
``concat`` were made linear (``tests/fixtures/record_analysis.py`` recorded it). Today's code
must give the same tables: every value, dtype and index.
"""

from __future__ import annotations

import gzip
import pickle
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import smtplab

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES))

from record_analysis import ANALYSES, PATH  # noqa: E402

with gzip.open(PATH, "rb") as recorded_file:
    RECORDED: dict[str, Any] = pickle.load(recorded_file)
FRAMES: dict[str, pd.DataFrame] = RECORDED["frames"]
#: The frames ``mixed`` was concatenated from, in order.
PARTS = [name for name in FRAMES if not name.startswith("mixed")]


def assert_same(got: Any, expected: Any) -> None:
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
    else:
        pd.testing.assert_series_equal(got, expected, check_exact=True)


@pytest.mark.parametrize("analysis", list(ANALYSES))
@pytest.mark.parametrize("frame", list(FRAMES))
def test_the_same_table_as_before(frame: str, analysis: str) -> None:
    got = ANALYSES[analysis](FRAMES[frame])
    assert_same(got, RECORDED["results"][frame][analysis])


def test_the_fixture_has_every_kind_of_frame() -> None:
    sources = set(FRAMES["mixed"]["source"].astype(str))
    assert {"lab", "pcap", "postfix", "swaks", "smtplib"} <= sources
    assert len(RECORDED["results"]["mixed"]["oddities"]) > 0
    assert FRAMES["mixed"]["session"].str.endswith("~3").any()  # three logs' names clashed


@pytest.mark.parametrize("log", ["postfix.log", "postfix-refusals.log"])
def test_concat_of_two_copies_of_a_log_as_before(log: str) -> None:
    both = smtplab.concat([FRAMES[log], FRAMES[log]])
    pd.testing.assert_frame_equal(both, FRAMES[f"concat({log}, {log})"], check_exact=True)


def test_concat_of_every_kind_of_frame_as_before() -> None:
    mixed = smtplab.concat(FRAMES[name] for name in PARTS)
    pd.testing.assert_frame_equal(mixed, FRAMES["mixed"], check_exact=True)
