"""One row per mail transaction: envelope, recipients, size and outcome.

A transaction starts with MAIL (RFC 5321 3.3) and ends with the reply to the message (the
final dot, or ``BDAT ... LAST``), or when RSET, HELO/EHLO, STARTTLS, QUIT or the end of the
session abandons it (4.1.1.5, 4.1.4; RFC 3207 4.2). A refused MAIL is a transaction of its
own that ends at once. Its outcome, one of :data:`OUTCOMES`, comes from the reply that decided
it: ``delivered``; ``rejected at MAIL`` / ``at RCPT`` / ``at DATA`` (a 5xx); ``deferred`` (a 4xx
anywhere: the client should try again later, 4.2.1); ``aborted`` (abandoned before the end).

A Postfix log does not say in which order accepted commands came, only which ones were
refused and when; its steps are put in protocol order (EHLO, MAIL, RCPT, DATA, ...), which is
exact for the usual one transaction per session.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from smtplab.analysis.steps import (
    REFUSALS_ONLY,
    STATUSES,
    in_protocol_order,
    last_chunks,
    session_codes,
    steps,
)

OUTCOMES = (
    "delivered",
    "rejected at MAIL",
    "rejected at RCPT",
    "rejected at DATA",
    "deferred",
    "aborted",
)
#: Steps after which no transaction is open (RFC 5321 4.1.1.5, 4.1.4; RFC 3207 4.2).
BOUNDARIES = ("CONNECT", "RSET", "HELO", "EHLO", "STARTTLS", "QUIT")
_ADDRESS = re.compile(r"^(?:FROM|TO):\s*<([^>]*)>", re.IGNORECASE)
_ACCEPTED = STATUSES.index("accepted")
_TEMPORARY = STATUSES.index("temporary")
_PERMANENT = STATUSES.index("permanent")


def transactions(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per mail transaction in ``frame``.

    Columns: ``session, transaction`` (1, 2, ... within the session), ``start``, ``mail_from``,
    ``recipients`` (accepted addresses, a list), ``rejected`` (refused addresses, a list),
    ``accepted`` and ``refused`` (their counts), ``size`` (octets of the message),
    ``outcome``, ``stage`` (the command whose reply decided it), ``code``, ``enhanced`` and
    ``text`` of that reply.
    """
    step = in_protocol_order(steps(frame))
    verb = step["verb"].to_numpy(dtype=object)
    status = step["status"].cat.codes.to_numpy().astype(np.int64)
    codes = session_codes(step)
    n = len(step)

    if n == 0:
        return _empty()
    is_mail = verb == "MAIL"
    accepted_mail = is_mail & (status == _ACCEPTED)
    is_last_chunk = last_chunks(step)
    # An open/closed marker on each step, carried forward: an accepted MAIL opens; a boundary
    # closes; the reply to the message closes after itself.
    marker = np.full(n, np.nan)
    marker[np.isin(verb, BOUNDARIES)] = 0.0
    new_session = np.append(True, codes[1:] != codes[:-1])
    marker[new_session] = 0.0
    marker[accepted_mail] = 1.0
    ends = (verb == "DATA-END") | is_last_chunk
    after = np.flatnonzero(ends) + 1
    after = after[after < n]
    marker[after] = np.where(np.isnan(marker[after]), 0.0, marker[after])
    is_open = pd.Series(marker).ffill().to_numpy() == 1.0
    # A refused MAIL outside a transaction is a transaction of its own, over at once; inside
    # one (a nested MAIL, 503) it changes nothing (RFC 5321 4.1.1.2).
    # (A refused MAIL sets no marker, so is_open there says whether one was already open.)
    lone_mail = is_mail & ~accepted_mail & ~is_open
    number = np.cumsum(accepted_mail | lone_mail)  # the transaction each step would belong to
    belongs = ((is_open & ~(is_mail & ~accepted_mail)) | lone_mail) & (number > 0)

    rows = np.flatnonzero(belongs)
    if not len(rows):
        return _empty()
    txn = number[rows]
    part = step.iloc[rows].reset_index(drop=True)
    part["txn"] = txn
    v = verb[rows]
    st = status[rows]
    address = part["argument"].str.extract(_ADDRESS, expand=False)

    groups = part.groupby("txn", sort=True)
    first = groups.head(1).set_index("txn")  # the MAIL step
    table = pd.DataFrame(index=first.index)
    table["session"] = first["session"]
    table["start"] = first["time"]
    mail_rows = part[v == "MAIL"].set_index("txn")
    table["mail_from"] = address[v == "MAIL"].set_axis(mail_rows.index)
    rcpt = v == "RCPT"
    ok = st == _ACCEPTED
    table["recipients"] = _lists(address[rcpt & ok], txn[rcpt & ok], table.index)
    table["rejected"] = _lists(address[rcpt & ~ok], txn[rcpt & ~ok], table.index)
    # Counted from the steps: a Postfix log knows that a recipient was accepted, not which.
    table["accepted"] = pd.Series(txn[rcpt & ok]).value_counts().reindex(table.index, fill_value=0)
    table["refused"] = pd.Series(txn[rcpt & ~ok]).value_counts().reindex(table.index, fill_value=0)
    content = (v == "DATA-END") | (v == "BDAT")
    table["size"] = (
        pd.Series(part["size"].to_numpy(dtype="float64", na_value=np.nan)[content])
        .groupby(txn[content])
        .sum(min_count=1)
        .reindex(table.index)
        .astype("Int64")
    )
    complete = (v == "DATA-END") | is_last_chunk[rows] | part["source"].isin(REFUSALS_ONLY)
    decisive, outcome, stage = _decide(part, v, st, txn, complete.to_numpy(), table.index)
    table["outcome"] = pd.Categorical(outcome, categories=list(OUTCOMES))
    table["stage"] = pd.Categorical(stage, categories=["MAIL", "RCPT", "DATA"])
    for column in ("code", "enhanced", "text"):
        table[column] = part[column].array.take(decisive, allow_fill=True)
    table["transaction"] = table.groupby("session", observed=True).cumcount() + 1
    columns = ["session", "transaction", "start", "mail_from", "recipients", "rejected"]
    columns += ["accepted", "refused", "size", "outcome", "stage", "code", "enhanced", "text"]
    return table[columns].reset_index(drop=True)


def _lists(values: pd.Series, txn: np.ndarray, index: pd.Index) -> pd.Series:
    known = values.notna().to_numpy()
    listed = pd.Series(values.to_numpy(dtype=object)[known]).groupby(txn[known]).agg(list)
    result = listed.reindex(index)
    return result.apply(lambda cell: cell if isinstance(cell, list) else [])


def _decide(
    part: pd.DataFrame,
    v: np.ndarray,
    st: np.ndarray,
    txn: np.ndarray,
    complete: np.ndarray,
    index: pd.Index,
) -> tuple[np.ndarray, list[str], list[str | None]]:
    """For each transaction: the row of its deciding reply, its outcome and the stage."""
    positions = np.arange(len(part))
    refused = (st == _TEMPORARY) | (st == _PERMANENT)
    implied = part["source"].isin(REFUSALS_ONLY).to_numpy()

    def last(mask: np.ndarray) -> pd.Series:
        return pd.Series(positions[mask]).groupby(txn[mask]).last().reindex(index)

    mail = last(v == "MAIL")
    rcpt_ok = last((v == "RCPT") & (st == _ACCEPTED))
    rcpt_refused = last((v == "RCPT") & refused)
    data = last(v == "DATA")
    message = last((v == "DATA-END") | (v == "BDAT"))
    decisive = np.full(len(index), -1, dtype=np.int64)
    outcome: list[str] = []
    stage: list[str | None] = []
    for i, (m, r_ok, r_bad, d, msg) in enumerate(
        zip(mail, rcpt_ok, rcpt_refused, data, message, strict=True)
    ):
        choice, result, where = _one(m, r_ok, r_bad, d, msg, st, implied, complete)
        decisive[i] = choice
        outcome.append(result)
        stage.append(where)
    return decisive, outcome, stage


def _one(
    mail: float,
    rcpt_ok: float,
    rcpt_refused: float,
    data: float,
    message: float,
    st: np.ndarray,
    implied: np.ndarray,
    complete: np.ndarray,
) -> tuple[int, str, str | None]:
    def refusal(row: int, where: str) -> tuple[int, str, str | None]:
        return row, ("deferred" if st[row] == _TEMPORARY else f"rejected at {where}"), where

    m = int(mail)
    if st[m] != _ACCEPTED:
        return (m, "aborted", None) if st[m] == STATUSES.index("unanswered") else refusal(m, "MAIL")
    if np.isnan(rcpt_ok):
        if not np.isnan(rcpt_refused):
            return refusal(int(rcpt_refused), "RCPT")
        return m, "aborted", None
    if not np.isnan(data) and st[int(data)] in (_TEMPORARY, _PERMANENT):
        return refusal(int(data), "DATA")
    if not np.isnan(message):
        row = int(message)
        if st[row] == _ACCEPTED and complete[row]:
            return row, "delivered", "DATA"
        if st[row] in (_TEMPORARY, _PERMANENT):
            return refusal(row, "DATA")
        return row, "aborted", None
    if not np.isnan(data) and implied[int(data)] and st[int(data)] == _ACCEPTED:
        return int(data), "delivered", "DATA"  # a log of refusals: DATA was not refused
    return m, "aborted", None


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "session": pd.Series(dtype="category"),
            "transaction": pd.Series(dtype="int64"),
            "start": pd.Series(dtype="datetime64[ns, UTC]"),
            "mail_from": pd.Series(dtype="string"),
            "recipients": pd.Series(dtype=object),
            "rejected": pd.Series(dtype=object),
            "accepted": pd.Series(dtype="int64"),
            "refused": pd.Series(dtype="int64"),
            "size": pd.Series(dtype="Int64"),
            "outcome": pd.Categorical([], categories=list(OUTCOMES)),
            "stage": pd.Categorical([], categories=["MAIL", "RCPT", "DATA"]),
            "code": pd.Series(dtype="Int16"),
            "enhanced": pd.Series(dtype="category"),
            "text": pd.Series(dtype="string"),
        }
    )
