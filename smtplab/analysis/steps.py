"""Steps: each thing the client did (connect, command, message), paired with the reply it got.

Theory of operation
-------------------
Every derived table starts here. A transcript has *units* sent by the client (the ``connect``
row, ``command`` rows, ``data`` rows for a message's content) and ``reply`` rows whose
``reply_to`` names the unit they answer. :func:`steps` puts each unit on one row with its reply
(code, enhanced code, latency) and a ``status``:

* ``accepted`` — a 2xx or 3xx reply;
* ``temporary`` / ``permanent`` — a 4xx / 5xx reply (RFC 5321 4.2.1: try again later / do not
  repeat unchanged);
* ``unanswered`` — no reply in the transcript (the connection was cut, or the capture ends).

A Postfix log records only the commands it refused; the others, known from its ``disconnect``
counts, have no reply row, yet the server did accept them. For such sources (:data:`REFUSALS_ONLY`)
a step without a reply counts as ``accepted``.

Pairing is vectorised: a step is found by the key ``(session, seq)`` with one binary search
over all steps, so a million-row transcript is paired in a fraction of a second. Rows need not
be sorted; :func:`ordered` sorts them by session and ``seq`` once (a no-op when they already are).

A step is ``pipelined`` when the client sent it before the reply to its previous step had
arrived (RFC 2920): in a capture the reply comes later in ``seq``; in a live session, where the
server records each command as it processes it, the reply's ``time`` is later than the step's.
Consecutive pipelined steps share a ``group`` number with the step that opened the group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Sources that log only refused commands: a step without a reply was accepted.
REFUSALS_ONLY = frozenset({"postfix"})

STATUSES = ("accepted", "temporary", "permanent", "unanswered")
STEP_KINDS = ("connect", "command", "data")


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` sorted by session (in category order) and ``seq``, with a fresh index."""
    codes = session_codes(frame)
    seq = frame["seq"].to_numpy()
    if len(frame) > 1:
        step = np.diff(codes)
        if (step > 0).sum() + ((step == 0) & (np.diff(seq) > 0)).sum() == len(frame) - 1:
            return frame.reset_index(drop=True)  # already in order
    order = np.lexsort((seq, codes))
    return frame.iloc[order].reset_index(drop=True)


def session_codes(frame: pd.DataFrame) -> np.ndarray:
    """One integer per row naming its session (the category code)."""
    session = frame["session"]
    if isinstance(session.dtype, pd.CategoricalDtype):
        return session.cat.codes.to_numpy().astype(np.int64)
    return pd.factorize(session, sort=True)[0].astype(np.int64)


class Verbs:
    """A ``verb`` (or ``kind``) column as small integers, for fast comparisons."""

    def __init__(self, column: pd.Series) -> None:
        categorical = (
            column if isinstance(column.dtype, pd.CategoricalDtype) else column.astype("category")
        )
        self.codes = categorical.cat.codes.to_numpy().astype(np.int64)  # -1: missing
        self.names = [str(name) for name in categorical.cat.categories]

    def __call__(self, *verbs: str) -> np.ndarray:
        """Which rows are one of ``verbs``."""
        wanted = [i for i, name in enumerate(self.names) if name in verbs]
        if len(wanted) == 1:
            return self.codes == wanted[0]
        return np.isin(self.codes, wanted)

    def mapped(self, table: dict[str, int], default: int) -> np.ndarray:
        """Each row's verb looked up in ``table`` (``default`` for others and missing)."""
        lookup = np.array([table.get(name, default) for name in self.names] + [default])
        return lookup[self.codes]  # code -1 picks the trailing default


def is_verb(column: pd.Series, *verbs: str) -> np.ndarray:
    """Which rows of a ``verb`` (or ``kind``) column are one of ``verbs``; fast on categories."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        wanted = [i for i, name in enumerate(column.cat.categories) if name in verbs]
        return np.isin(column.cat.codes.to_numpy(), wanted)
    return np.isin(column.to_numpy(dtype=object), verbs)


def last_chunks(step: pd.DataFrame) -> np.ndarray:
    """Which rows are ``BDAT n LAST`` commands, the chunk that ends a message (RFC 3030 2)."""
    result = is_verb(step["verb"], "BDAT")
    rows = np.flatnonzero(result)
    argument = step["argument"].iloc[rows].str.upper().str.rstrip().str.endswith("LAST")
    result[rows] = argument.fillna(False).to_numpy(bool)
    return result


def keys(codes: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """``(session, seq)`` packed into one sortable int64."""
    return (codes << 32) | seq.astype(np.int64)


def steps(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per client step with the reply it got; see the module docstring.

    Columns: ``session, seq, time, verb, argument, size, source, code, enhanced, text,
    latency, reply_seq, reply_time, status, pipelined, group``.
    """
    frame = ordered(frame)
    codes = session_codes(frame)
    seq = frame["seq"].to_numpy()
    is_step = is_verb(frame["kind"], *STEP_KINDS)
    is_reply = is_verb(frame["kind"], "reply") & frame["reply_to"].notna().to_numpy()

    step_rows = np.flatnonzero(is_step)
    reply_rows = np.flatnonzero(is_reply)
    step_keys = keys(codes[step_rows], seq[step_rows])  # sorted: frame is ordered
    reply_keys = keys(
        codes[reply_rows], frame["reply_to"].to_numpy(np.int64, na_value=0)[reply_rows]
    )
    # The last reply to a step is its answer (an AUTH may first get 334 challenges).
    reversed_keys = reply_keys[::-1]
    unique_keys, first_in_reversed = np.unique(reversed_keys, return_index=True)
    last_replies = reply_rows[::-1][first_in_reversed]
    position = np.searchsorted(step_keys, unique_keys)
    position_ok = position < len(step_keys)
    found = position_ok.copy()
    found[position_ok] = step_keys[position[position_ok]] == unique_keys[position_ok]
    answered_step = position[found]  # index into step_rows
    reply_of_step = np.full(len(step_rows), -1, dtype=np.int64)
    reply_of_step[answered_step] = last_replies[found]

    table = frame.iloc[step_rows][
        ["session", "seq", "time", "kind", "verb", "argument", "size", "source", "client", "server"]
    ].reset_index(drop=True)
    # take(-1) with allow_fill gives NA: one vectorised gather per column, any dtype.
    for column, name in (
        ("code", "code"),
        ("enhanced", "enhanced"),
        ("text", "text"),
        ("latency", "latency"),
        ("seq", "reply_seq"),
        ("time", "reply_time"),
    ):
        values = frame[column].array
        if column == "seq":
            values = pd.array(values, dtype="Int64")
        table[name] = values.take(reply_of_step, allow_fill=True)

    code = table["code"].to_numpy(dtype="float64", na_value=np.nan)
    implied = table["source"].isin(REFUSALS_ONLY).to_numpy()
    status = np.full(len(table), STATUSES.index("unanswered"))
    status[code < 400] = STATUSES.index("accepted")  # NaN compares False
    status[(code >= 400) & (code < 500)] = STATUSES.index("temporary")
    status[code >= 500] = STATUSES.index("permanent")
    status[np.isnan(code) & implied] = STATUSES.index("accepted")
    table["status"] = pd.Categorical.from_codes(status, categories=list(STATUSES))

    table["pipelined"] = _pipelined(table, codes[step_rows])
    table["group"] = np.cumsum(~table["pipelined"].to_numpy()) - 1
    return table


def _pipelined(table: pd.DataFrame, codes: np.ndarray) -> np.ndarray:
    """Whether each step was sent before the previous step's reply arrived (RFC 2920)."""
    n = len(table)
    result = np.zeros(n, dtype=bool)
    if n < 2:
        return result
    same_session = codes[1:] == codes[:-1]
    previous_reply_seq = table["reply_seq"].to_numpy(dtype="float64", na_value=np.nan)[:-1]
    later_in_seq = previous_reply_seq > table["seq"].to_numpy()[1:]
    time = table["time"].to_numpy(dtype="datetime64[ns]")
    previous_reply_time = table["reply_time"].to_numpy(dtype="datetime64[ns]")[:-1]
    with np.errstate(invalid="ignore"):
        later_in_time = previous_reply_time > time[1:]  # NaT compares False
    result[1:] = same_session & (later_in_seq | later_in_time)
    # Message content follows its 354 and is never "pipelined" in RFC 2920's sense.
    result &= ~is_verb(table["kind"], "data")
    return result
