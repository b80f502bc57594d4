"""Rows to a pandas DataFrame with the fixed columns and dtypes of :mod:`smtplab.log.schema`."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from smtplab.log.recorder import Row
from smtplab.log.schema import COLUMNS


def empty_frame() -> pd.DataFrame:
    """A transcript with no rows, with the right columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in COLUMNS.items()})


def to_frame(rows: Iterable[Row | tuple]) -> pd.DataFrame:
    """Build a transcript DataFrame from recorder rows (any number of sessions).

    A row is a :class:`Row` or a plain tuple with the same fields in the same order.
    """
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return empty_frame()
    width = len(COLUMNS)
    if set(map(len, rows)) != {width}:
        raise ValueError(f"every transcript row must have the {width} fields of the schema")
    # Columns by slicing one flat list: far cheaper than zip(*rows), whose one iterator per
    # row keeps the garbage collector busy on big transcripts.
    flat = list(chain.from_iterable(rows))
    columns: dict[str, Any] = {}
    for index, (name, dtype) in enumerate(COLUMNS.items()):
        values = flat[index::width]
        if name == "time":
            column = time_column(values)
        elif name == "latency":
            column = np.round(np.asarray(values, dtype="float64"), 6)
        elif dtype == "category":
            codes, categories = pd.factorize(np.array(values, dtype=object), sort=True)
            column = pd.Categorical.from_codes(codes, categories=categories)
        elif dtype in ("Int16", "Int32", "Int64", "boolean"):
            column = _nullable(name, values, dtype)
        elif dtype == "int64":
            column = np.array(values, dtype=np.int64)
        else:
            column = pd.array(values, dtype=dtype)
        columns[name] = column
    return pd.DataFrame(columns, copy=False)


def time_column(values: Any) -> Any:
    """The ``time`` column from float POSIX seconds (a list or array; None or NaN: missing)."""
    # Float POSIX seconds are exact to about 0.25 microseconds: round to microseconds so that
    # virtual-clock times read as the round numbers they are.
    seconds = np.asarray(values, dtype="float64")
    # Missing: a source that does not know when (a swaks transcript), or a time no
    # datetime64[ns] can hold (damage in a capture), which is no time either.
    missing = ~(np.abs(seconds) < 9.2e9)
    micros = np.round(np.where(missing, 0.0, seconds) * 1e6).astype("int64")
    column = pd.to_datetime(micros, unit="us", utc=True).as_unit("ns")
    if missing.any():
        column = column.where(~missing)
    return column


def _nullable(name: str, values: list[Any], dtype: str) -> Any:
    """A nullable integer or boolean array from Python values with ``None`` for missing."""
    if dtype == "boolean":
        flags = np.array(values)
        if flags.dtype == np.bool_:  # the usual column: all True or False, none missing
            return pd.arrays.BooleanArray(flags, np.zeros(len(flags), dtype=np.bool_))
    array = np.array(values, dtype=object)
    missing = pd.isna(array)
    array[missing] = 0
    if dtype == "boolean":
        return pd.arrays.BooleanArray(array.astype(bool), missing)
    return nullable_integers(name, array.astype(np.int64), missing, dtype)


def nullable_integers(name: str, numbers: Any, missing: Any, dtype: str) -> Any:
    """An ``Int16``/``Int32``/``Int64`` array from int64 ``numbers`` (0 where ``missing``)."""
    target = np.dtype(dtype.lower())
    limits = np.iinfo(target)
    if len(numbers) and (numbers.min() < limits.min or numbers.max() > limits.max):
        raise ValueError(f"column {name!r}: a value does not fit the schema's {dtype}")
    return pd.arrays.IntegerArray(numbers.astype(target), missing)


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Give ``frame`` exactly the schema's columns, in order, with the schema's dtypes.

    Missing columns are added as all-NA; extra columns are kept after the schema's.
    """
    frame = frame.copy()
    for name, dtype in COLUMNS.items():
        if name not in frame:
            frame[name] = pd.Series(
                pd.NA, index=frame.index, dtype=dtype if dtype != "int64" else "Int64"
            )
        if dtype == "category":
            frame[name] = frame[name].astype("string").astype("category")
        elif str(frame[name].dtype) != dtype:
            frame[name] = frame[name].astype(dtype)
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[list(COLUMNS) + extra].reset_index(drop=True)


def concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate transcripts, keeping the schema's dtypes (categories are unioned).

    Two transcripts may name different sessions alike (two labs both start at ``lab-1``);
    merged, they would read as one garbled session. A session name already taken by an
    earlier frame is renamed ``name~2`` (``~3``, ...), so every session stays whole."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_frame()
    taken: set[str] = set()
    renamed = []
    for frame in frames:
        names = set(frame["session"].astype(str).unique())
        clashes = names & taken
        if clashes:
            mapping = {name: _fresh(name, taken | names) for name in sorted(clashes)}
            frame = frame.assign(session=frame["session"].astype(str).replace(mapping))
            names = (names - clashes) | set(mapping.values())
        taken |= names
        renamed.append(frame)
    return conform(pd.concat(renamed, ignore_index=True))


def _fresh(name: str, used: set[str]) -> str:
    number = 2
    while f"{name}~{number}" in used:
        number += 1
    used.add(f"{name}~{number}")
    return f"{name}~{number}"


TABLE_FORMATS = (".csv", ".parquet")


def check_table_path(path: str | Path) -> Path:
    """``path`` if a transcript can be written there (by extension), else a clear ValueError.

    Call it before long work, so a typo or a missing Parquet engine is reported at once.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise ValueError(f"{path}: write a table as .csv or .parquet, not {suffix or 'no suffix'}")
    if suffix == ".parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ValueError(f"{path}: Parquet needs pyarrow (pip install pyarrow), or use .csv")
    if not path.parent.is_dir():
        raise ValueError(f"{path}: the directory {path.parent} does not exist")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a file name")
    return path


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a transcript (or any table) to .csv or .parquet, chosen by the extension."""
    path = check_table_path(path)
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path
