"""Transcripts past one machine's memory: a directory of Parquet files by source and day.

``smtplab ingest FILES --dataset DIR`` (:func:`write_dataset`) streams any number of captures,
logs and transcripts into ``DIR``, laid out as pyarrow, Dask, Spark and DuckDB read a
partitioned table (hive style)::

    DIR/source=postfix/day=2026-11-29/3f9a07c2d1e4b5a6-00000.parquet
    DIR/source=pcap/day=2026-11-30/...

* **Partitions.** A session goes whole into one file, of its source and of the UTC day of its
  first row that has a time (``unknown`` when the source gives none, as swaks does; a log's
  ``connect`` row often has none, its later rows do): a session is never
  split between files, so per-session work can go file by file (Dask's ``map_partitions``).
  As with every partitioned table, the partition columns live in the directory names:
  ``source`` is not stored in the files, ``day`` is a column only of the dataset.
* **Session ids.** Each input is known by a key, the first 16 hex digits of the SHA-256 of
  its first MiB (decompressed). Its sessions are named ``KEY-1``, ``KEY-2``, ..., and a Postfix
  log's ``HOST/KEY-1`` (one log may gather several hosts): unique across files and hosts, so
  files can be added later without rewriting any. The key names the input's files too, and
  an input ingested again replaces its own files instead of adding a copy of its sessions.
* **Bounded memory.** Readers hand each session on when it ends (see
  :func:`~smtplab.ingest.reader.read_sessions`); rows wait here until ``batch_rows`` of them
  are ready, then go out as one file per partition. Memory follows the batch and the sessions
  open at once, never the input's size. A file is written under a hidden name and renamed when
  complete: a reader never sees half a file, and an interrupted run leaves only whole ones.

:func:`read_dataset` loads all or part of a dataset back (``filters`` on ``source``, ``day``
or any column), as a transcript DataFrame with the schema's dtypes.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from smtplab.ingest.inputs import IngestError, open_input
from smtplab.ingest.packets import CaptureProblems
from smtplab.ingest.reader import read_sessions
from smtplab.log.frame import (
    conform,
    empty_frame,
    from_table,
    to_table,
    with_sorted_dictionaries,
)
from smtplab.log.schema import ARROW_SCHEMA, COLUMNS

#: Rows gathered before they are written (one file per partition they fall in).
BATCH_ROWS = 100_000
#: The partition columns, from the directory names.
PARTITIONING = ds.partitioning(
    pa.schema([("source", pa.string()), ("day", pa.string())]), flavor="hive"
)
_KEY_OCTETS = 1 << 20
_UNKNOWN_DAY = "unknown"
_SOURCE = ARROW_SCHEMA.names.index("source")
_TIME = ARROW_SCHEMA.names.index("time")


@dataclass
class DatasetReport:
    """What :func:`write_dataset` wrote."""

    directory: Path
    rows: int = 0
    sessions: int = 0
    files: list[Path] = field(default_factory=list)  # the Parquet files written
    inputs: dict[str, str] = field(default_factory=dict)  # input path -> its key
    skipped: dict[str, dict[str, Any]] = field(default_factory=dict)  # as frame.attrs
    most_rows_held: int = 0  # the most rows gathered at once before a write

    def __str__(self) -> str:
        return (
            f"{self.rows:,} rows, {self.sessions:,} sessions from {len(self.inputs)} input(s) "
            f"-> {len(self.files)} file(s) in {self.directory}"
        )


def write_dataset(
    paths: str | Path | list[str | Path] | pd.DataFrame,
    directory: str | Path,
    format: str = "auto",
    *,
    year: int | None = None,
    day: dt.date | None = None,
    progress: bool | None = None,
    batch_rows: int = BATCH_ROWS,
) -> DatasetReport:
    """Stream ``paths`` (files or directories, as :func:`smtplab.read` takes them) into the
    dataset ``directory`` (made if missing; see the module docstring). ``format``, ``year``,
    ``day`` and ``progress`` are :func:`smtplab.read`'s.

    ``paths`` may also be a transcript DataFrame (a lab's, ``smtplab.simulate()``, a read):
    its sessions are written as they are, under the names they have."""
    if isinstance(paths, pd.DataFrame):  # a transcript in memory: its own names, as they are
        with _DatasetWriter(Path(directory), batch_rows) as writer:
            writer.add_frame(paths, frame_key(paths))
        return writer.report
    with _DatasetWriter(Path(directory), batch_rows) as writer:
        skipped = read_sessions(
            paths, writer.add, writer.start_input, format, year=year, day=day, progress=progress
        )
    report = writer.report
    report.skipped = skipped
    for path, what in skipped.items():  # not read at all: no input of the dataset
        if "file not read" in what["counts"]:
            report.inputs.pop(path, None)
    return report


def read_dataset(
    directory: str | Path,
    filters: Any = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """A dataset written by :func:`write_dataset`, or the part of it ``filters`` selects, as a
    transcript DataFrame with the schema's dtypes.

    ``filters`` is a pyarrow expression or, as in :func:`pandas.read_parquet`, a list of
    ``(column, op, value)`` tuples (all must hold) or a list of such lists (any must hold):
    ``[("source", "==", "postfix"), ("day", ">=", "2026-11-29")]``. Only the files of the
    partitions asked for are read. ``columns`` loads only those transcript columns.
    """
    dataset, expression, wanted = _opened(directory, filters, columns)
    if not dataset.files:
        return empty_frame()[wanted]
    return _transcript(dataset.to_table(columns=wanted, filter=expression), wanted)


def dask_dataset(
    directory: str | Path,
    filters: Any = None,
    columns: list[str] | None = None,
) -> Any:
    """The dataset as a Dask DataFrame, one partition per file: a session is never split
    between partitions, so per-session work runs partition by partition on a cluster, and
    every :mod:`smtplab.analysis` function takes it as it takes a pandas frame. Nothing is
    read until computed; ``filters`` and ``columns`` as in :func:`read_dataset`.

    Needs ``dask[dataframe]`` (``pip install 'smtplab[dask]'``; ``distributed`` for a cluster)."""
    try:
        import dask.dataframe as dd
    except ImportError:  # an extra, not a dependency: say how to get it
        raise ImportError(
            "smtplab.dask_dataset needs Dask: pip install 'dask[dataframe]' distributed"
        ) from None
    dataset, expression, wanted = _opened(directory, filters, columns)
    files = [fragment.path for fragment in dataset.get_fragments(filter=expression)]
    meta = empty_frame()[wanted]
    if not files:
        return dd.from_pandas(meta, npartitions=1)
    load = _PartitionLoader(str(Path(directory)), expression, wanted)
    return dd.from_map(load, files, meta=meta, enforce_metadata=False)


class _PartitionLoader:
    """Reads one file of a dataset as a transcript frame (a Dask partition); picklable, to
    run on a cluster's workers."""

    def __init__(self, directory: str, expression: Any, wanted: list[str]) -> None:
        self.directory, self.expression, self.wanted = directory, expression, wanted

    def __call__(self, path: str) -> pd.DataFrame:
        table = _files([path], self.directory).to_table(columns=self.wanted, filter=self.expression)
        return _transcript(table, self.wanted)


def _opened(
    directory: str | Path, filters: Any, columns: list[str] | None
) -> tuple[ds.Dataset, Any, list[str]]:
    """The dataset at ``directory``, ``filters`` as an expression, and the columns wanted."""
    path = Path(directory)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such dataset directory (write one with write_dataset)")
    wanted = list(COLUMNS) if columns is None else list(columns)
    unknown = [name for name in wanted if name not in COLUMNS]
    if unknown:
        raise ValueError(f"no such transcript column(s): {', '.join(unknown)}")
    if filters is not None and not isinstance(filters, ds.Expression):
        filters = pq.filters_to_expression(filters)
    found = ds.dataset(path, format="parquet", partitioning=PARTITIONING)
    # The files in the order of their names (source, day, input, batch), whatever order the
    # file system lists them in: the same rows in the same order every time.
    return _files(sorted(found.files), path), filters, wanted


def _files(paths: list[str], directory: Path | str) -> ds.Dataset:
    """The dataset of these files of ``directory``, with its partition columns."""
    return ds.dataset(
        paths, format="parquet", partitioning=PARTITIONING, partition_base_dir=str(directory)
    )


def _transcript(table: pa.Table, wanted: list[str]) -> pd.DataFrame:
    """A table read from a dataset as a transcript frame of the ``wanted`` columns."""
    if "source" in wanted:  # from the directory names, as strings: a category, as elsewhere
        at = table.schema.get_field_index("source")
        table = table.set_column(at, "source", table["source"].dictionary_encode())
    table = table.cast(pa.schema([ARROW_SCHEMA.field(name) for name in wanted]))
    return from_table(with_sorted_dictionaries(table))  # categories sorted, as everywhere


class _DatasetWriter:
    """Gathers sessions' rows and writes them as Parquet files, partition by partition."""

    def __init__(self, directory: Path, batch_rows: int) -> None:
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        if directory.exists() and not directory.is_dir():
            raise ValueError(f"{directory} is a file, not a dataset directory")
        directory.mkdir(parents=True, exist_ok=True)
        self.report = DatasetReport(directory)
        self.batch_rows = batch_rows
        self.waiting = 0  # rows gathered, not yet written
        self._partitions: dict[tuple[str, str], list[tuple]] = {}  # type: ignore[type-arg]
        self._key = ""  # the input being read
        self._written: dict[str, set[Path]] = {}  # key -> its files written in this run

    def start_input(self, path: Path) -> str:
        """A new input is about to be read: finish the last one, and name this one (the
        session id prefix its reader gets)."""
        self._end_input()
        key = input_key(path)
        if key in self._written:
            first = next(name for name, known in self.report.inputs.items() if known == key)
            raise IngestError(f"{path}: the same content as {first}, read already")
        self.report.inputs[str(path)] = key
        self._start_key(key)
        return key

    def _start_key(self, key: str) -> None:
        self._written[key] = set()
        self._key = key

    def _end_input(self) -> None:
        """Write what the input being read left; if it wrote files, they replace any an
        earlier run wrote for it (an input that failed this time keeps its old files)."""
        self.flush()
        written = self._written.get(self._key)
        if written:
            for old in self.report.directory.glob(f"source=*/day=*/{self._key}-*.parquet"):
                if old not in written:
                    old.unlink()

    def add(self, rows: list[tuple]) -> None:  # type: ignore[type-arg]
        """Take the rows of one whole session."""
        # The day of its first row that has a time: a log's connect row may have none
        # (Sendmail, Zeek, Exchange, Exim's default log_selector), its later rows do.
        time = next((row[_TIME] for row in rows if row[_TIME] is not None), None)
        self._partitions.setdefault((rows[0][_SOURCE], _day(time)), []).extend(rows)
        self.report.sessions += 1
        self.waiting += len(rows)
        self.report.most_rows_held = max(self.report.most_rows_held, self.waiting)
        if self.waiting >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        """Write the rows gathered: one file per partition."""
        partitions, self._partitions = self._partitions, {}
        for (source, day), rows in sorted(partitions.items()):
            self._write(source, day, to_table(rows))
        self.waiting = 0

    def add_frame(self, frame: pd.DataFrame, key: str) -> None:
        """Take a whole transcript frame (its sessions keep their names), written in files
        of about ``batch_rows`` rows, each of whole sessions."""
        self._start_key(key)
        frame = conform(frame)[list(COLUMNS)]
        table = pa.Table.from_pandas(frame, preserve_index=False).cast(ARROW_SCHEMA)
        for (source, day), rows in _frame_partitions(frame, self.batch_rows):
            # (taken from the whole frame: its dictionaries hold every session's values)
            self._write(source, day, with_sorted_dictionaries(table.take(rows)))
        self.report.sessions += frame["session"].nunique()
        self._end_input()

    def _write(self, source: str, day: str, table: pa.Table) -> None:
        """One file of the partition (``source``, ``day``)."""
        folder = self.report.directory / f"source={source}" / f"day={day}"
        folder.mkdir(parents=True, exist_ok=True)
        written = self._written[self._key]
        target = folder / f"{self._key}-{len(written):05d}.parquet"
        hidden = folder / f".{target.name}.partial"  # readers skip hidden files
        table = table.select(_STORED).replace_schema_metadata(_stored_metadata())
        pq.write_table(table, hidden)
        os.replace(hidden, target)
        written.add(target)
        self.report.files.append(target)
        self.report.rows += len(table)

    def __enter__(self) -> _DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self._end_input()


def _frame_partitions(
    frame: pd.DataFrame, batch_rows: int
) -> Iterator[tuple[tuple[str, str], Any]]:
    """The rows of ``frame`` (their positions) file by file: by the partition of their
    session (its source, and the UTC day of its first timed row), a session's rows together and in
    ``seq`` order, cut into files of about ``batch_rows`` rows between sessions."""
    session = pd.factorize(frame["session"])[0]  # numbered in order of first appearance
    first_time = frame.groupby(session)["time"].transform("first")
    day = first_time.dt.floor("D").dt.strftime("%Y-%m-%d").fillna(_UNKNOWN_DAY)
    partition, names = pd.factorize(pd.MultiIndex.from_arrays([frame["source"].astype(str), day]))
    order = np.lexsort((frame["seq"].to_numpy(), session, partition))
    partition, session = partition[order], session[order]
    starts = np.flatnonzero(np.r_[True, partition[1:] != partition[:-1]])
    for start, end in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        # Session boundaries in this partition, and cuts at the first after each batch.
        bounds = start + np.flatnonzero(
            np.r_[True, session[start + 1 : end] != session[start : end - 1]]
        )
        cuts = np.unique(bounds[np.searchsorted(bounds, np.arange(start, end, batch_rows))])
        for cut, until in zip(cuts, np.r_[cuts[1:], end], strict=True):
            yield names[partition[start]], order[cut:until]


#: The columns a file stores: all but the partition column ``source``.
_STORED = [name for name in ARROW_SCHEMA.names if name != "source"]


@functools.cache
def _stored_metadata() -> dict[bytes, bytes]:
    """pandas' dtypes of the stored columns, for a file read alone with pandas."""
    return pa.Schema.from_pandas(empty_frame()[_STORED], preserve_index=False).metadata


def frame_key(frame: pd.DataFrame) -> str:
    """A frame's key: the first 16 hex digits of the SHA-256 of its session names and size
    (the same frame written again, in any row order, replaces its files)."""
    names = "\n".join(sorted(map(str, pd.unique(frame["session"]))))
    return hashlib.sha256(f"{len(frame)}\n{names}".encode()).hexdigest()[:16]


def input_key(path: str | Path) -> str:
    """An input's key: the first 16 hex digits of the SHA-256 of its first MiB, decompressed
    (the same for ``mail.log.1`` and, rotated on, ``mail.log.2.gz``). A pipe, which can be
    read only once, gets a random key."""
    path = Path(path)
    if not stat.S_ISREG(path.stat().st_mode):
        return uuid.uuid4().hex[:16]
    with open_input(path, tqdm(disable=True), CaptureProblems()) as stream:
        return hashlib.sha256(stream.read(_KEY_OCTETS)).hexdigest()[:16]


def _day(time: float | None) -> str:
    """The UTC day of a POSIX time, as a partition names it."""
    if time is None or not abs(time) < 9.2e9:  # missing, NaN, or no time a frame can hold
        return _UNKNOWN_DAY
    return dt.datetime.fromtimestamp(time, dt.UTC).date().isoformat()
