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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smtplab.analysis.partitioned import in_session_order, per_session
from smtplab.analysis.steps import (
    REFUSALS_ONLY,
    STATUSES,
    Verbs,
    in_protocol_order,
    last_chunks,
    last_per_group,
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
#: Python's ``\s`` (``str.isspace``) spelled out for Arrow's RE2, whose ``\s`` is ASCII only.
_SPACE = (
    r"[\t\n\x0b\x0c\r\x1c-\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}"
    r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
)
_ADDRESS = rf"(?i)^(?:FROM|TO):{_SPACE}*<(?P<address>[^>]*)>"
STAGES = ("MAIL", "RCPT", "DATA")
_ACCEPTED = STATUSES.index("accepted")
_TEMPORARY = STATUSES.index("temporary")
_PERMANENT = STATUSES.index("permanent")
_UNANSWERED = STATUSES.index("unanswered")


@per_session(then=in_session_order)
def transactions(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per mail transaction in ``frame``.

    Columns: ``session, transaction`` (1, 2, ... within the session), ``start``, ``mail_from``,
    ``recipients`` (accepted addresses, a list), ``rejected`` (refused addresses, a list),
    ``accepted`` and ``refused`` (their counts), ``size`` (octets of the message),
    ``outcome``, ``stage`` (the command whose reply decided it), ``code``, ``enhanced`` and
    ``text`` of that reply.
    """
    step = in_protocol_order(steps(frame))
    verb = Verbs(step["verb"])
    status = step["status"].cat.codes.to_numpy().astype(np.int64)
    codes = session_codes(step)
    n = len(step)

    if n == 0:
        return _empty()
    is_mail = verb("MAIL")
    accepted_mail = is_mail & (status == _ACCEPTED)
    is_last_chunk = last_chunks(step)
    # An open/closed marker on each step, carried forward: an accepted MAIL opens; a boundary
    # closes; the reply to the message closes after itself.
    marker = np.full(n, np.nan)
    marker[verb(*BOUNDARIES)] = 0.0
    new_session = np.append(True, codes[1:] != codes[:-1])
    marker[new_session] = 0.0
    marker[accepted_mail] = 1.0
    ends = verb("DATA-END") | is_last_chunk
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
    part = step.iloc[rows].reset_index(drop=True)
    # The steps come in transaction order: each transaction's steps are one run of rows, and
    # its first step is its MAIL.
    txn = number[rows]
    starts_run = np.append(True, txn[1:] != txn[:-1])
    starts = np.flatnonzero(starts_run)
    which = np.cumsum(starts_run) - 1  # each step's transaction: 0, 1, ...
    count = len(starts)
    v = Verbs(part["verb"])
    st = status[rows]
    address = _addresses(part["argument"])

    table = pd.DataFrame(index=pd.RangeIndex(count))
    table["session"] = part["session"].array.take(starts)
    table["start"] = part["time"].array.take(starts)
    table["mail_from"] = address.take(starts)
    rcpt = v("RCPT")
    ok = st == _ACCEPTED
    table["recipients"] = _lists(address, which, rcpt & ok, count)
    table["rejected"] = _lists(address, which, rcpt & ~ok, count)
    # Counted from the steps: a Postfix log knows that a recipient was accepted, not which.
    table["accepted"] = np.bincount(which[rcpt & ok], minlength=count)
    table["refused"] = np.bincount(which[rcpt & ~ok], minlength=count)
    content = v("DATA-END", "BDAT")
    table["size"] = (
        pd.Series(part["size"].to_numpy(dtype="float64", na_value=np.nan)[content])
        .groupby(which[content])
        .sum(min_count=1)
        .reindex(range(count))
        .astype("Int64")
        .array
    )
    implied = part["source"].isin(REFUSALS_ONLY).to_numpy()
    complete = v("DATA-END") | is_last_chunk[rows] | implied
    decisive, outcome, stage = _decide(v, st, which, count, complete, implied)
    table["outcome"] = pd.Categorical.from_codes(outcome, categories=list(OUTCOMES))
    table["stage"] = pd.Categorical.from_codes(stage, categories=list(STAGES))
    for column in ("code", "enhanced", "text"):
        table[column] = part[column].array.take(decisive)
    table["transaction"] = table.groupby("session", observed=True).cumcount() + 1
    columns = ["session", "transaction", "start", "mail_from", "recipients", "rejected"]
    columns += ["accepted", "refused", "size", "outcome", "stage", "code", "enhanced", "text"]
    return table[columns]


def _addresses(argument: pd.Series) -> pd.api.extensions.ExtensionArray:
    """The address of each MAIL or RCPT argument (``FROM:<a@b>``), missing where there is
    none: Arrow's regular expressions, all rows at once."""
    found = pc.extract_regex(pa.array(argument, type=pa.string(), from_pandas=True), _ADDRESS)
    (address,) = found.flatten()  # missing where the pattern did not match
    return pd.StringDtype().__from_arrow__(address)


def _lists(
    values: pd.api.extensions.ExtensionArray, which: np.ndarray, chosen: np.ndarray, count: int
) -> np.ndarray:
    """For each of ``count`` transactions, its ``chosen`` known values as a list, in step order
    (``which``: the transaction of each step, ascending); [] for none. The lists are built
    by Arrow from one offsets array, not one at a time."""
    chosen = chosen & ~pd.isna(values)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(which[chosen], minlength=count))])
    strings = pa.chunked_array(pa.array(values[chosen], type=pa.string(), from_pandas=True))
    lists = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), strings.combine_chunks())
    result = np.empty(count, dtype=object)
    result[:] = lists.to_pylist()
    return result


def _last(chosen: np.ndarray, which: np.ndarray, count: int) -> np.ndarray:
    """The last ``chosen`` row of each transaction (``which`` ascending), -1 for none."""
    rows = np.flatnonzero(chosen)
    return last_per_group(which[rows], rows, count)


#: What decided a transaction (see :func:`_decide`); a refusal's outcome depends on its code.
_ABORTED, _DELIVERED, _REFUSED_AT_MAIL, _REFUSED_AT_RCPT, _REFUSED_AT_DATA = range(5)


def _decide(
    v: Verbs,
    st: np.ndarray,
    which: np.ndarray,
    count: int,
    complete: np.ndarray,
    implied: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each transaction: the row of the reply that decided it, and the codes of its
    outcome (:data:`OUTCOMES`) and stage (:data:`STAGES`, -1 for none). All transactions at
    once: each rule below is an array over them, and the first that holds decides."""
    mail = _last(v("MAIL"), which, count)
    rcpt_ok = _last(v("RCPT") & (st == _ACCEPTED), which, count)
    rcpt_refused = _last(v("RCPT") & _refused(st), which, count)
    data = _last(v("DATA"), which, count)
    message = _last(v("DATA-END", "BDAT"), which, count)

    def status(row: np.ndarray) -> np.ndarray:
        return np.where(row >= 0, st[row], -1)  # -1: no such step

    def at(flags: np.ndarray, row: np.ndarray) -> np.ndarray:
        return (row >= 0) & flags[row]

    got_message = message >= 0
    # A log of refusals may not say which recipients were accepted (Exim's default
    # log_selector lists none); an accepted DATA says one was (RFC 5321 3.3: DATA with no
    # valid recipient is refused).
    recipient_implied = at(implied, data) & (status(data) == _ACCEPTED)
    rules = [  # (holds, the deciding row, what it means), in order
        (status(mail) == _UNANSWERED, mail, _ABORTED),
        (status(mail) != _ACCEPTED, mail, _REFUSED_AT_MAIL),
        ((rcpt_ok < 0) & (rcpt_refused >= 0) & ~recipient_implied, rcpt_refused, _REFUSED_AT_RCPT),
        ((rcpt_ok < 0) & ~recipient_implied, mail, _ABORTED),
        (_refused(status(data)), data, _REFUSED_AT_DATA),
        (got_message & (status(message) == _ACCEPTED) & at(complete, message), message, _DELIVERED),
        (got_message & _refused(status(message)), message, _REFUSED_AT_DATA),
        (got_message, message, _ABORTED),
        # A log of refusals has no message step: an accepted DATA was not refused.
        (at(implied, data) & (status(data) == _ACCEPTED), data, _DELIVERED),
    ]
    holds = [rule for rule, _, _ in rules]
    decisive = np.select(holds, [row for _, row, _ in rules], default=mail)
    meaning = np.select(holds, [np.full(count, what) for _, _, what in rules], default=_ABORTED)

    refusal = meaning >= _REFUSED_AT_MAIL
    stage = np.select(
        [refusal, meaning == _DELIVERED],
        [meaning - _REFUSED_AT_MAIL, STAGES.index("DATA")],
        default=-1,
    )
    outcome = np.full(count, OUTCOMES.index("aborted"))
    outcome[meaning == _DELIVERED] = OUTCOMES.index("delivered")
    rejected_at = np.array([OUTCOMES.index(f"rejected at {where}") for where in STAGES])
    outcome[refusal] = rejected_at[stage[refusal]]
    # A 4xx anywhere defers the transaction: the client should try again later.
    outcome[refusal & (st[decisive] == _TEMPORARY)] = OUTCOMES.index("deferred")
    return decisive, outcome, stage


def _refused(status: np.ndarray) -> np.ndarray:
    return (status == _TEMPORARY) | (status == _PERMANENT)


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
            "stage": pd.Categorical([], categories=list(STAGES)),
            "code": pd.Series(dtype="Int16"),
            "enhanced": pd.Series(dtype="category"),
            "text": pd.Series(dtype="string"),
        }
    )
