"""Transcripts written as they come: rows appended to a .csv or .parquet file in batches.

A server that runs for weeks cannot keep every row in memory to write them at the end.
:class:`TranscriptWriter` takes the rows of each finished session, and every ``batch_rows``
rows appends them to the file: to a CSV file under one header line, or to a Parquet file as
one row group, with the schema's Arrow types (:data:`~smtplab.log.schema.ARROW_SCHEMA`) fixed
up front so every batch agrees.
:meth:`TranscriptWriter.close` writes what is left (``smtplab serve`` calls it on SIGINT and
SIGTERM). A CSV file holds every batch written so far even if the process is killed; a
Parquet file is readable only once closed (its footer comes last). If writing fails (a full
disk), the writer keeps the error, counts the rows it could not write and drops them rather
than collect them without bound; the caller reports it.

:func:`read_transcript` reads either back with the schema's dtypes (CSV cannot tell an empty
string from a missing one: both read as missing).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow.parquet as pq

from smtplab.log.frame import check_table_path, conform, empty_frame, from_table, to_table

#: Rows collected before a batch is written.
BATCH_ROWS = 1000


class TranscriptWriter:
    """Appends transcript rows to ``path`` (.csv or .parquet) in batches of ``batch_rows``."""

    def __init__(self, path: str | Path, batch_rows: int = BATCH_ROWS) -> None:
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        self.path = check_table_path(path)
        self.parquet = self.path.suffix.lower() == ".parquet"
        self.batch_rows = batch_rows
        self.rows_written = 0
        self.batches_written = 0
        self.error: Exception | None = None  # the first write that failed: nothing after it
        self.rows_lost = 0
        self._rows: list[tuple[Any, ...]] = []
        self._csv: IO[str] | None = None
        self._parquet: pq.ParquetWriter | None = None
        if self.parquet:
            self._parquet = pq.ParquetWriter(self.path, to_table([]).schema)
        else:
            self._csv = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
            empty_frame().to_csv(self._csv, index=False)  # the one header line
            self._csv.flush()

    def add(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Take rows (a finished session's); write a batch once ``batch_rows`` are waiting."""
        if self.error is not None:
            self.rows_lost += sum(1 for _ in rows)
            return
        self._rows.extend(rows)
        if len(self._rows) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        """Write the rows waiting, as one batch (a Parquet row group)."""
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        try:
            table = to_table(rows)
            if self._parquet is not None:
                self._parquet.write_table(table)
            else:
                assert self._csv is not None, "the writer is closed"
                from_table(table).to_csv(self._csv, header=False, index=False)
                self._csv.flush()
        except Exception as error:  # e.g. OSError: no space left on device
            self.error = error
            self.rows_lost += len(rows)
            return
        self.rows_written += len(table)
        self.batches_written += 1

    def close(self) -> None:
        """Write what is left and close the file (again: nothing happens)."""
        if self._csv is None and self._parquet is None:
            return
        self.flush()
        try:
            if self._csv is not None:
                self._csv.close()
            if self._parquet is not None:
                self._parquet.close()  # writes the footer: only now is the file readable
        except Exception as error:
            self.error = self.error or error
        finally:
            self._csv = self._parquet = None

    def __enter__(self) -> TranscriptWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_transcript(path: str | Path) -> pd.DataFrame:
    """A transcript written by :class:`TranscriptWriter` (or ``write_table``), with the
    schema's columns and dtypes."""
    path = Path(path)
    parquet = path.suffix.lower() == ".parquet"
    return conform(pd.read_parquet(path) if parquet else pd.read_csv(path))
