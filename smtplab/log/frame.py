"""Rows to a pandas DataFrame with the fixed columns and dtypes of :mod:`smtplab.log.schema`."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smtplab.log.recorder import Row
from smtplab.log.schema import ARROW_SCHEMA, COLUMNS


def empty_frame() -> pd.DataFrame:
    """A transcript with no rows, with the right columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in COLUMNS.items()})


def to_table(rows: Iterable[Row | tuple]) -> pa.Table:
    """The one way rows become a table: recorder rows (any number of sessions) as an Arrow
    table of :data:`~smtplab.log.schema.ARROW_SCHEMA`, ready for a Parquet file or pandas.

    A row is a :class:`Row` or a plain tuple with the same fields in the same order; a missing
    value is None (or pandas' NA). A category's dictionary is sorted, as pandas sorts
    categories.
    """
    rows = rows if isinstance(rows, list) else list(rows)
    width = len(COLUMNS)
    if rows and set(map(len, rows)) != {width}:
        raise ValueError(f"every transcript row must have the {width} fields of the schema")
    # Arrow reads the tuples as structs, every column at once; times and latencies come as
    # the recorder keeps them (float seconds) and are converted after.
    try:
        columns = pa.array(rows, _ROW_STRUCT, from_pandas=True).flatten()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise _unfit(rows, error) from None
    by_name = dict(zip(ARROW_SCHEMA.names, columns, strict=True))
    by_name["time"] = _times(by_name["time"])
    latency = np.round(by_name["latency"].to_numpy(zero_copy_only=False), 6)
    by_name["latency"] = pa.array(latency, from_pandas=True)  # NaN: missing
    for name in _CATEGORIES:
        by_name[name] = _sorted_dictionary(by_name[name])
    return pa.Table.from_arrays(list(by_name.values()), schema=_schema_with_pandas_metadata())


#: A row as Arrow reads it: the schema's fields, with the two float-seconds fields as floats.
_ROW_STRUCT = pa.struct(
    [
        pa.field(field.name, pa.float64()) if field.name in ("time", "latency") else field
        for field in ARROW_SCHEMA
    ]
)
_CATEGORIES = [field.name for field in ARROW_SCHEMA if pa.types.is_dictionary(field.type)]


def _unfit(rows: list[tuple], error: Exception) -> ValueError:  # type: ignore[type-arg]
    """The error for rows Arrow refused: which column, found by reading them one by one."""
    for index, field in enumerate(_ROW_STRUCT):
        try:
            pa.array([row[index] for row in rows], field.type, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as refused:
            wanted = COLUMNS[field.name]
            return ValueError(
                f"column {field.name!r}: a value does not fit the schema's {wanted} ({refused})"
            )
    return ValueError(f"the rows do not fit the transcript schema ({error})")


def to_frame(rows: Iterable[Row | tuple]) -> pd.DataFrame:
    """Build a transcript DataFrame from recorder rows (any number of sessions): the rows'
    :func:`to_table`, in pandas."""
    return from_table(to_table(rows))


#: Arrow types to the schema's pandas dtypes (``seq``, never missing, is then made int64).
_PANDAS_TYPES = {
    pa.string(): pd.StringDtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def from_table(table: pa.Table) -> pd.DataFrame:
    """A table of :data:`~smtplab.log.schema.ARROW_SCHEMA` as a transcript DataFrame."""
    frame = table.to_pandas(types_mapper=_PANDAS_TYPES.get, split_blocks=True)
    if "seq" in frame:
        frame["seq"] = frame["seq"].to_numpy(dtype=np.int64)
    return frame


@functools.cache
def _schema_with_pandas_metadata() -> pa.Schema:
    """The Arrow schema carrying pandas' dtypes in its metadata, so that pandas alone
    (``pd.read_parquet``) reads a transcript file back with the schema's dtypes."""
    metadata = pa.Schema.from_pandas(empty_frame(), preserve_index=False).metadata
    return ARROW_SCHEMA.with_metadata(metadata)


def _times(seconds: pa.Array) -> pa.Array:
    """The ``time`` column from float POSIX seconds (missing or NaN: missing)."""
    # Float POSIX seconds are exact to about 0.25 microseconds: round to microseconds so that
    # virtual-clock times read as the round numbers they are.
    values = seconds.to_numpy(zero_copy_only=False)  # missing: NaN
    # Missing: a source that does not know when (a swaks transcript), or a time no
    # datetime64[ns] can hold (damage in a capture), which is no time either.
    missing = ~(np.abs(values) < 9.2e9)
    micros = np.round(np.where(missing, 0.0, values) * 1e6).astype("int64")
    return pa.array(micros * 1000, pa.timestamp("ns", tz="UTC"), mask=missing)


def _sorted_dictionary(column: pa.DictionaryArray) -> pa.DictionaryArray:
    """``column`` with its dictionary sorted (by code point, as Python and pandas sort
    strings: UTF-8 octets sort the same) and holding only the values its rows use."""
    dictionary = column.dictionary
    used = np.zeros(len(dictionary), dtype=bool)
    used[pc.drop_null(column.indices).to_numpy()] = True
    kept = np.flatnonzero(used)
    order = kept[pc.array_sort_indices(dictionary.take(pa.array(kept))).to_numpy()]
    rank = np.full(len(dictionary), -1, dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    indices = pc.take(pa.array(rank), column.indices)  # a missing index stays missing
    return pa.DictionaryArray.from_arrays(indices, dictionary.take(pa.array(order)))


def with_sorted_dictionaries(table: pa.Table) -> pa.Table:
    """``table`` with each dictionary column in one chunk, its dictionary sorted and holding
    only the values used: a table read from many files (each with a dictionary of its own), or
    taken from a bigger one, as :func:`to_table` would have made it."""
    for at, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            column = table.column(at).unify_dictionaries().combine_chunks()
            if isinstance(column, pa.ChunkedArray):  # (no rows: no chunk to combine)
                column = pa.array([], field.type)
            table = table.set_column(at, field, _sorted_dictionary(column))
    return table


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Give ``frame`` exactly the schema's columns, in order, with the schema's dtypes.

    Missing columns are added as all-NA; extra columns are kept after the schema's.
    """
    frame = frame.copy()
    for name, dtype in COLUMNS.items():
        if name not in frame:
            # (None: each dtype's own missing value, NaN, NaT or <NA>; pd.NA fits only some)
            frame[name] = pd.Series(
                None, index=frame.index, dtype=dtype if dtype != "int64" else "Int64"
            )
        if dtype == "category":
            frame[name] = as_string_categories(frame[name])
        elif str(frame[name].dtype) != dtype:
            frame[name] = frame[name].astype(dtype)
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[list(COLUMNS) + extra].reset_index(drop=True)


def as_string_categories(column: pd.Series) -> pd.Series:
    """``column.astype("string").astype("category")``: a categorical of strings, its categories
    sorted and only those used. When ``column`` is a categorical already, this is worked out on
    its categories and codes: its rows are not made strings one by one."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column.astype("string").astype("category")
    codes = column.cat.codes.to_numpy()
    categories = column.cat.categories
    used = np.bincount(codes[codes >= 0], minlength=len(categories)) > 0
    names = categories.astype("string").to_numpy(dtype=object, na_value=None)
    # Sorted as pandas sorts strings (by code point); two categories that are the same string
    # (1 and "1") become one.
    kept = np.unique(names[used & (names != None)].astype(str))  # noqa: E711
    new_code = pd.Index(kept, dtype="string").get_indexer(names)
    new_code = np.append(new_code, -1)  # code -1 (missing) stays missing
    dtype = pd.CategoricalDtype(pd.Index(kept, dtype="string"))
    values = pd.Categorical.from_codes(new_code[codes], dtype=dtype)
    return pd.Series(values, index=column.index, name=column.name)


def concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate transcripts, keeping the schema's dtypes (categories are unioned).

    Two transcripts may name different sessions alike (two labs both start at ``lab-1``);
    merged, they would read as one garbled session. A session name already taken by an
    earlier frame is renamed ``name~2`` (``~3``, ...), so every session stays whole.

    Names are handled as the session column's categories, one per session: a clash renames
    a category, never rewrites the frame's rows, so the work grows with the rows and the
    sessions, not with rows times clashes."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_frame()
    names = _SessionNames()
    renamed = []
    for frame in frames:
        session = _session_categories(frame["session"])
        own = pd.Index(session.cat.categories).astype(str).tolist()
        fresh = names.claim(own)
        if fresh != own:
            frame = frame.assign(session=session.cat.rename_categories(fresh))
        renamed.append(frame)
    return conform(_stacked(renamed))


class _SessionNames:
    """The session names the frames concatenated so far have taken."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        # For each renamed name, the number its next ``~n`` is tried from: every smaller one
        # is taken (names are only ever added), so this finds the name counting from 2 would,
        # without trying again, for the k-th copy of a frame, the numbers k-1 copies took.
        self.next_number: dict[str, int] = {}

    def claim(self, names: list[str]) -> list[str]:
        """One frame's (distinct) session names, each already taken renamed ``name~2``
        (``~3``, ...): the first free in the names taken and in the frame's own."""
        own = set(names)
        claimed = []
        for name in names:
            if name in self.taken:
                number = self.next_number.get(name, 2)
                while f"{name}~{number}" in self.taken or f"{name}~{number}" in own:
                    number += 1
                self.next_number[name] = number + 1
                name = f"{name}~{number}"
            claimed.append(name)
        self.taken.update(claimed)
        return claimed


def _stacked(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """``pd.concat`` of ``frames``, each category column given the same categories in every
    frame first: of categoricals that differ pandas makes an object column, which
    :func:`conform` would have to make a categorical again string by string."""
    shared = [
        name
        for name, dtype in COLUMNS.items()
        if dtype == "category"
        and all(name in f and isinstance(f[name].dtype, pd.CategoricalDtype) for f in frames)
    ]
    columns = {name: [as_string_categories(f[name]) for f in frames] for name in shared}
    for name, parts in columns.items():
        every = np.concatenate([part.cat.categories.to_numpy(dtype=object) for part in parts])
        union = pd.Index(np.unique(every.astype(str)), dtype="string")
        columns[name] = [part.cat.set_categories(union) for part in parts]
    frames = [
        frame.assign(**{name: parts[i] for name, parts in columns.items()})
        for i, frame in enumerate(frames)
    ]
    return pd.concat(frames, ignore_index=True)


def _session_categories(session: pd.Series) -> pd.Series:
    """The session column as a categorical with one category per session it holds."""
    if not isinstance(session.dtype, pd.CategoricalDtype):
        session = session.astype("category")
    return session.cat.remove_unused_categories()


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
