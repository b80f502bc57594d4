"""concat and conform work on categories, not rows, and give what the row-by-row forms gave."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import smtplab
from smtplab.log.frame import as_string_categories, conform

CATEGORICALS = {
    "strings, some unused": pd.Categorical(["b", "a", "b"], categories=["c", "b", "a", "zz"]),
    "missing values": pd.Categorical(["b", None, "a", None]),
    "all missing": pd.Categorical([None, None], categories=["a"]),
    "no rows": pd.Categorical([], categories=["a", "b"]),
    "integers": pd.Categorical([10, 2, 10, 33]),
    "integers and their strings": pd.Categorical([1, "1", "2", 2, "x"]),
    "floats": pd.Categorical([1.5, 2.0, np.nan]),
    "code point order": pd.Categorical(["z", "é", "Z", "a", "ä", "\u3000", "~", "lab-10", "lab-2"]),
    "ordered categories": pd.Categorical(["a", "b"], categories=["b", "a"], ordered=True),
}


@pytest.mark.parametrize("name", list(CATEGORICALS))
def test_as_string_categories_is_the_row_by_row_conversion(name: str) -> None:
    column = pd.Series(CATEGORICALS[name], index=np.arange(len(CATEGORICALS[name])) * 3, name="c")
    expected = column.astype("string").astype("category")
    pd.testing.assert_series_equal(as_string_categories(column), expected, check_exact=True)


def test_conform_makes_categories_of_a_plain_string_column_as_before() -> None:
    frame = smtplab.simulate(5)
    frame["session"] = frame["session"].astype("string")
    session = conform(frame)["session"]
    pd.testing.assert_series_equal(session, frame["session"].astype("category"))


def test_concat_renames_clashing_names_in_the_categories() -> None:
    basic = smtplab.run_scenario("basic").transcript
    # Already taken: basic-1 and its first fresh name, so the third copy goes to ~3 and the
    # second frame's own "basic-1~2" clashes too.
    second = basic.assign(session=basic["session"].cat.rename_categories(["basic-1~2"]))
    merged = smtplab.concat([basic, basic, second, basic.astype({"session": "string"})])
    names = merged["session"].drop_duplicates().tolist()
    assert names == ["basic-1", "basic-1~2", "basic-1~2~2", "basic-1~3"]
    assert list(merged["session"].cat.categories) == sorted(names)
    assert merged.groupby("session", observed=True).size().nunique() == 1  # every one whole
    assert merged["session"].cat.categories.dtype == "string"


def _names_as_before(frames: list[list[str]]) -> list[dict[str, str]]:
    """The renaming rule as the first concat applied it, name by name: a name already taken
    becomes name~n, n the smallest from 2 not among the names taken and the frame's own."""
    taken: set[str] = set()
    renamings = []
    for names in frames:
        mapping = {}
        for name in sorted(set(names) & taken):
            number = 2
            while f"{name}~{number}" in taken | set(names):
                number += 1
            mapping[name] = f"{name}~{number}"
        renamings.append(mapping)
        taken |= {mapping.get(name, name) for name in names}
    return renamings


def test_concat_of_many_copies_names_sessions_as_before() -> None:
    basic = smtplab.run_scenario("basic").transcript

    def named(*names: str) -> pd.DataFrame:
        copies = [basic.assign(session=pd.Categorical([name] * len(basic))) for name in names]
        return pd.concat(copies, ignore_index=True)

    frames = [named("a"), *[named("a", "a~2", "b")] * 3, named("a~3", "a", "c~2")]
    frames += [named("a", "c")] * 3
    merged = smtplab.concat(frames)
    expected = []
    for frame, mapping in zip(
        frames, _names_as_before([list(f["session"].unique()) for f in frames]), strict=True
    ):
        expected += [mapping.get(name, name) for name in frame["session"]]
    assert merged["session"].tolist() == expected
    assert merged["session"].nunique() == sum(f["session"].nunique() for f in frames)
