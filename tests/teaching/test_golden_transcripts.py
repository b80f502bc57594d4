"""Transcripts are exactly what the code before the core redesign made.

``tests/fixtures/transcripts.parquet`` holds every teaching scenario's transcript and
``simulate(200)`` as recorded before the protocol core was reshaped
(``tests/fixtures/record_transcripts.py`` made it). The same sessions run again here must give
the same rows: every column, every value, every dtype as stored. A redesign that changes
what a user sees fails here, naming the transcript and the first row that differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES))

from record_transcripts import PATH, combined, transcripts  # noqa: E402


@pytest.fixture(scope="module")
def recorded() -> pd.DataFrame:
    return pd.read_parquet(PATH)


@pytest.fixture(scope="module")
def today(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    # Through Parquet as the fixture went, so both sides have the dtypes Parquet gives back.
    path = tmp_path_factory.mktemp("golden") / "today.parquet"
    combined(transcripts()).to_parquet(path, index=False)
    return pd.read_parquet(path)


def test_the_same_transcripts_are_made(recorded: pd.DataFrame, today: pd.DataFrame) -> None:
    assert list(today["transcript"].unique()) == list(recorded["transcript"].unique())
    assert list(today.columns) == list(recorded.columns)
    for name, expected in recorded.groupby("transcript", sort=False):
        got = today[today["transcript"] == name]
        assert len(got) == len(expected), f"{name}: {len(got)} rows, recorded {len(expected)}"
        # Compared as reprs: missing values (None, NaN, NA) equal themselves, unlike with ==.
        as_text = [
            frame.reset_index(drop=True).astype(object).map(repr) for frame in (got, expected)
        ]
        differs = ~(as_text[0] == as_text[1]).all(axis=1)
        first = differs.idxmax() if differs.any() else None
        assert first is None, (
            f"{name}: row {first} differs\n"
            f"recorded: {expected.iloc[first].to_dict()}\n"
            f"today:    {got.iloc[first].to_dict()}"
        )
    pd.testing.assert_frame_equal(today, recorded)


def test_the_fixture_covers_every_scenario_and_a_simulated_day(recorded: pd.DataFrame) -> None:
    import smtplab

    names = set(recorded["transcript"])
    assert {f"scenario:{name}" for name in smtplab.scenarios()["name"]} <= names
    assert "simulate(200)" in names
    simulated = recorded[recorded["transcript"] == "simulate(200)"]
    assert simulated["session"].nunique() >= 200
    assert set(simulated["kind"]) >= {"connect", "command", "reply", "data", "close"}
