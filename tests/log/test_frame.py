"""Rows to the transcript DataFrame: dtypes, missing values, and clear errors on bad rows."""

from __future__ import annotations

import pandas as pd
import pytest

from smtplab.log.frame import empty_frame, to_frame
from smtplab.log.recorder import Row
from smtplab.log.schema import COLUMNS


def row(**fields: object) -> Row:
    base = {"session": "s-1", "seq": 0, "time": 1_767_603_600.0, "sender": "client"}
    return Row(**{"kind": "command", **base, **fields})  # type: ignore[arg-type]


def test_missing_values_become_na_with_the_schema_dtypes() -> None:
    frame = to_frame(
        [
            row(seq=0, verb="NOOP", argument=""),
            row(seq=1, sender="server", kind="reply", verb="NOOP", code=250, reply_to=0, tls=None),
        ]
    )
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == COLUMNS
    assert frame["code"].isna().tolist() == [True, False]
    assert frame["code"].tolist()[1] == 250
    assert frame["reply_to"].isna().tolist() == [True, False]
    assert frame["tls"].isna().tolist() == [False, True]
    assert frame["size"].isna().all()
    assert frame["sender"].cat.categories.tolist() == ["client", "server"]


def test_plain_tuples_and_named_rows_give_the_same_frame() -> None:
    rows = [row(seq=0, verb="QUIT"), row(seq=1, kind="reply", code=221, sender="server")]
    pd.testing.assert_frame_equal(to_frame(rows), to_frame(tuple(r) for r in rows))


def test_no_rows_give_an_empty_frame_with_the_schema() -> None:
    pd.testing.assert_frame_equal(to_frame([]), empty_frame())


def test_a_row_with_the_wrong_number_of_fields_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="18 fields"):
        to_frame([tuple(row())[:-1]])


def test_a_value_too_big_for_its_column_is_refused_not_wrapped() -> None:
    # Int16 holds reply codes; 70000 must not silently become 4464.
    with pytest.raises(ValueError, match=r"'code'.*Int16"):
        to_frame([row(code=70_000)])


def test_pandas_missing_values_are_missing_too() -> None:
    """Rows taken back out of a frame (``itertuples``) carry pd.NA, not None."""
    frame = to_frame([row(seq=0, code=pd.NA, reply_to=pd.NA, tls=pd.NA), row(seq=1, code=250)])
    assert frame["code"].isna().tolist() == [True, False]
    assert frame["tls"].isna().tolist() == [True, False]
