"""Rows to the transcript table and DataFrame: types, missing values, clear errors on bad rows."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smtplab.log.frame import conform, empty_frame, to_frame, to_table
from smtplab.log.recorder import Row
from smtplab.log.schema import ARROW_SCHEMA, COLUMNS


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


def test_the_arrow_table_has_the_explicit_schema_and_sorted_dictionaries() -> None:
    rows = [
        row(seq=0, session="s-2", verb="RCPT", argument="TO:<b@example.org>"),
        row(seq=1, session="s-2", sender="server", kind="reply", verb="RCPT", code=550,
            enhanced="5.1.1", text="no such user", reply_to=0, latency=0.25),
        row(seq=0, session="s-1", verb="EHLO", time=None),
    ]  # fmt: skip
    table = to_table(rows)
    assert table.schema.equals(ARROW_SCHEMA)  # metadata aside
    assert table.column("session").combine_chunks().dictionary.to_pylist() == ["s-1", "s-2"]
    assert table.column("verb").combine_chunks().dictionary.to_pylist() == ["EHLO", "RCPT"]
    assert table.column("time").null_count == 1
    assert table.column("latency").to_pylist() == [None, 0.25, None]  # NaN is written as missing


def test_pandas_alone_reads_a_transcript_parquet_file_with_the_schema_dtypes(
    tmp_path: Path,
) -> None:
    rows = [row(seq=0, verb="QUIT"), row(seq=1, kind="reply", code=221, sender="server")]
    pq.write_table(to_table(rows), tmp_path / "t.parquet")
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert {name: str(dtype) for name, dtype in back.dtypes.items()} == COLUMNS
    pd.testing.assert_frame_equal(back, to_frame(rows))


def test_the_documented_schema_table_says_what_the_code_builds() -> None:
    page = (Path(__file__).parents[2] / "docs" / "schema.md").read_text()
    section = page.split("# The transcript schema", 1)[1].split("\n## ", 1)[0]
    said: dict[str, tuple[str, str]] = {}
    for line in (line for line in section.splitlines() if line.startswith("| `")):
        names, pandas_types, arrow_types = (cell.strip() for cell in line.split("|")[1:4])
        columns = re.findall(r"`(\w+)`", names)
        outside_brackets = r", (?![^<\[]*[>\]])"  # "Int64, Int32"; not "datetime64[ns, UTC]"
        pandas_types, arrow_types = (
            re.split(outside_brackets, cell) for cell in (pandas_types, arrow_types)
        )
        if len(pandas_types) == len(arrow_types) == 1:  # one type for all the row's columns
            pandas_types, arrow_types = pandas_types * len(columns), arrow_types * len(columns)
        for name, pandas_type, arrow_type in zip(columns, pandas_types, arrow_types, strict=True):
            said[name] = (pandas_type, arrow_type)

    def short(arrow: pa.DataType) -> str:
        if pa.types.is_dictionary(arrow):
            return f"dictionary<{arrow.index_type}, {arrow.value_type}>"
        return str(arrow).replace("tz=UTC", "UTC")

    built = to_table([row()])
    assert said == {field.name: (COLUMNS[field.name], short(field.type)) for field in built.schema}


def test_conform_adds_every_kind_of_missing_column() -> None:
    """A table with only some columns (a CSV cut down by hand) gets the rest, all missing."""
    partial = to_frame([row(seq=0, verb="QUIT")])[["session", "seq", "sender", "kind", "verb"]]
    whole = conform(partial)
    assert {name: str(dtype) for name, dtype in whole.dtypes.items()} == COLUMNS
    assert whole[["time", "latency", "code", "text", "tls"]].isna().all().all()
