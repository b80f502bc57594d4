"""Reply-code distributions and command latencies.

Both read the ``reply`` rows only (each carries the verb it answers and its latency), so they
are a few vectorised counts even on a million rows.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from smtplab.analysis.partitioned import on_rows

CLASSES = ("2xx", "3xx", "4xx", "5xx")
Grouping = Literal["class", "code", "enhanced", "command"]


def replies(frame: pd.DataFrame) -> pd.DataFrame:
    """The reply rows that carry a code."""
    kind = frame["kind"]
    return frame[(kind == "reply").to_numpy() & frame["code"].notna().to_numpy()]


def reply_classes(codes: pd.Series) -> pd.Categorical:
    """``2xx`` ... ``5xx`` for each reply code (RFC 5321 4.2.1: the first digit)."""
    digit = codes.to_numpy(dtype="float64", na_value=np.nan) // 100
    index = np.where((digit >= 2) & (digit <= 5), digit - 2, -1).astype(np.int64)
    return pd.Categorical.from_codes(index, categories=list(CLASSES))


@on_rows(["verb", "code", "enhanced"])
def code_distribution(frame: pd.DataFrame, by: Grouping = "class") -> pd.Series | pd.DataFrame:
    """How many replies there are of each kind.

    ``by="class"``: a Series indexed ``2xx`` ... ``5xx`` (all four, zeros included);
    ``"code"``: by reply code; ``"enhanced"``: by enhanced status code (replies without one are
    left out); ``"command"``: a DataFrame, one row per command verb the replies answer
    (``CONNECT`` for the greeting, ``DATA-END`` for the final dot) and one column per class.
    """
    rows = replies(frame)
    if by == "class":
        counts = pd.Series(reply_classes(rows["code"])).value_counts(sort=False)
        return counts.reindex(list(CLASSES), fill_value=0).rename_axis("class").rename("replies")
    if by == "code":
        counts = rows["code"].value_counts().sort_index()
        return counts.rename_axis("code").rename("replies")
    if by == "enhanced":
        counts = rows["enhanced"].value_counts()
        counts = counts[counts > 0]
        return counts.sort_index().rename_axis("enhanced").rename("replies")
    if by == "command":
        verb = rows["verb"].astype("category").cat.remove_unused_categories()
        table = pd.crosstab(verb, reply_classes(rows["code"]), dropna=False)
        table = table.reindex(columns=list(CLASSES), fill_value=0)
        table.index.name, table.columns.name = "command", "class"
        return table.loc[table.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    raise ValueError(f"by must be 'class', 'code', 'enhanced' or 'command', not {by!r}")


@on_rows(["verb", "code", "latency"])
def latencies(frame: pd.DataFrame) -> pd.DataFrame:
    """Reply latency per command verb, in milliseconds: count, median, mean, p90, p99, max.

    The latency of a reply is the time from the unit it answers to the reply (the greeting's
    is counted from the connection). Replies without a known time are left out.
    """
    rows = replies(frame)
    rows = rows[rows["latency"].notna().to_numpy()]
    milliseconds = pd.Series(rows["latency"].to_numpy() * 1000.0)
    verb = pd.Series(rows["verb"].to_numpy(dtype=object))
    grouped = milliseconds.groupby(verb.to_numpy(), sort=True)
    table = pd.DataFrame(
        {
            "count": grouped.size(),
            "median": grouped.median(),
            "mean": grouped.mean(),
            "p90": grouped.quantile(0.9),
            "p99": grouped.quantile(0.99),
            "max": grouped.max(),
        }
    )
    table.index.name = "command"
    return table.sort_values("count", ascending=False, kind="stable")
