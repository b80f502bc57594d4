"""The analysis functions on a Dask DataFrame: per session, partition by partition.

A transcript dataset keeps every session whole in one file, and
:func:`smtplab.dask_dataset` makes one partition of each file, so what is worked out per
session (steps, sessions, transactions, oddities) is worked out partition by partition, on
the cluster's workers, and the pieces are put together here: in partition order, with each
categorical column's categories united and sorted, as one pandas frame would have them. What
counts the replies of all sessions at once (reply-code distributions, latency percentiles)
needs only the reply rows' few columns: the workers select them and send them back.

Either way the answer is a pandas object, equal to the one the pandas frame of the same rows
gives (the tests compare them on a ``distributed.LocalCluster``); only the input need not fit
in one machine's memory.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

Analysis = TypeVar("Analysis", bound=Callable[..., Any])


def is_dask(frame: object) -> bool:
    """Whether ``frame`` is a Dask DataFrame (checked without importing Dask)."""
    return type(frame).__module__.split(".")[0] in ("dask", "dask_expr")


def per_session(
    function: Analysis | None = None, *, then: Callable[[Any], Any] | None = None
) -> Any:
    """``function`` (a transcript frame -> a pandas object, session by session) taking a Dask
    DataFrame too: it runs on each partition, and the pieces are put together (and given to
    ``then``, for an answer ordered across sessions)."""

    def wrap(function: Analysis) -> Analysis:
        @functools.wraps(function)
        def on_any(frame: Any, *args: Any, **options: Any) -> Any:
            if not is_dask(frame):
                return function(frame, *args, **options)
            import dask

            parts = frame.to_delayed()
            pieces = dask.compute(
                *(dask.delayed(function)(part, *args, **options) for part in parts)
            )
            together = _together(pieces)
            return together if then is None else then(together)

        return on_any  # type: ignore[return-value]

    return wrap if function is None else wrap(function)


def in_session_order(table: pd.DataFrame) -> pd.DataFrame:
    """An answer with one row or more per session, in the order of the sessions' names (as
    the pandas answer is, a session's rows in the order they came)."""
    return table.sort_values("session", kind="stable", ignore_index=True)


def on_rows(
    columns: Sequence[str], kinds: Sequence[str] = ("reply",)
) -> Callable[[Analysis], Analysis]:
    """``function`` taking a Dask DataFrame too: the rows of ``kinds`` with ``columns`` are
    gathered from the workers (few rows and columns of the whole), and it runs on them."""

    def wrap(function: Analysis) -> Analysis:
        @functools.wraps(function)
        def on_any(frame: Any, *args: Any, **options: Any) -> Any:
            if not is_dask(frame):
                return function(frame, *args, **options)
            wanted = list(dict.fromkeys(["kind", *columns]))
            rows = frame[frame["kind"].isin(list(kinds))][wanted]
            return function(_sorted_categories(rows.compute()), *args, **options)

        return on_any  # type: ignore[return-value]

    return wrap


def _together(pieces: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per-partition answers (tables) as one: concatenated in order, numbered afresh when they were
    numbered from 0 (a RangeIndex), categories united (see :func:`_joined`)."""
    pieces = [piece for piece in pieces if len(piece)] or list(pieces[:1])
    if len(pieces) == 1:
        return pieces[0]
    fresh = all(isinstance(piece.index, pd.RangeIndex) for piece in pieces)
    columns = pieces[0].columns
    categorical = [
        name for name in columns if isinstance(pieces[0][name].dtype, pd.CategoricalDtype)
    ]
    joined = pd.concat([piece.drop(columns=categorical) for piece in pieces], ignore_index=fresh)
    for name in categorical:
        joined[name] = _joined([piece[name] for piece in pieces])
    return joined[columns]


def _joined(columns: list[pd.Series]) -> pd.Categorical:
    """One categorical column of all pieces' values. A fixed list of categories (an
    outcome's, in its own order) is the same in every piece and is kept; categories taken from
    the data (a transcript's are sorted) are united and sorted."""
    first = columns[0].cat.categories
    if all(column.cat.categories.equals(first) for column in columns):
        codes = np.concatenate([column.cat.codes.to_numpy() for column in columns])
        return pd.Categorical.from_codes(codes, dtype=columns[0].dtype)
    kinds = {column.cat.categories.dtype for column in columns}
    if len(kinds) == 1:
        return union_categoricals(columns, sort_categories=True)
    # Categories of different dtypes (an empty piece's are objects; "str" and "string"):
    # united as values.
    united = sorted(set().union(*(set(column.cat.categories) for column in columns)))
    return pd.Categorical(pd.concat(columns, ignore_index=True).astype(object), categories=united)


def _sorted_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every categorical column's categories sorted."""
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            ordered = sorted(frame[name].cat.categories)
            frame[name] = frame[name].cat.set_categories(ordered)
    return frame
