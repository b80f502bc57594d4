"""Rows to a pandas DataFrame with the fixed columns and dtypes of :mod:`smtplab.log.schema`."""

from __future__ import annotations

from collections.abc import Iterable
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
    rows = list(rows)
    if not rows:
        return empty_frame()
    values = dict(zip(COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
    columns: dict[str, Any] = {}
    for name, dtype in COLUMNS.items():
        if name == "time":
            # Float POSIX seconds are exact to about 0.25 microseconds: round to microseconds
            # so that virtual-clock times read as the round numbers they are.
            micros = np.round(np.asarray(values[name], dtype="float64") * 1e6).astype("int64")
            column = pd.to_datetime(micros, unit="us", utc=True).as_unit("ns")
        elif name == "latency":
            column = np.round(np.asarray(values[name], dtype="float64"), 6)
        elif dtype == "category":
            column = pd.Categorical(values[name])
        else:
            column = pd.array(values[name], dtype=dtype)
        columns[name] = column
    return pd.DataFrame(columns, copy=False)


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
    """Concatenate transcripts, keeping the schema's dtypes (categories are unioned)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_frame()
    return conform(pd.concat(frames, ignore_index=True))
