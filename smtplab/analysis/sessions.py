"""One row per session: endpoints, times, counts, outcome and a Postfix-style fingerprint.

The fingerprint is what Postfix's ``smtpd`` logs at ``disconnect``: each command it received,
``name=count`` when all were accepted and ``name=accepted/sent`` when some were refused, then
``commands=...`` for the total (``ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6``). The
names come in Postfix's order; a verb Postfix does not have (EXPN and HELP among them) counts
as ``unknown``, and an AUTH exchange, challenges and all, as one ``auth``. As in Postfix,
``data`` counts as accepted only when the message after it was accepted too, and a command
that got no reply (the connection was cut) as refused. Computed from any transcript, it can
be compared with a Postfix log line for line.

The outcome, one of :data:`OUTCOMES`:

* ``refused`` — the greeting was not 220 (a 554 or 421 greeting, RFC 5321 3.1);
* ``delivered`` — at least one message was accepted;
* ``rejected`` / ``deferred`` — mail was attempted, nothing was accepted, and the last refusal
  in a mail transaction was permanent (5xx) / temporary (4xx);
* ``encrypted`` — the session went on under STARTTLS where the transcript cannot see (a
  capture);
* ``no mail`` — the client ended the session with QUIT without attempting mail;
* ``aborted`` — anything else: the connection ended mid-way, or a transaction was abandoned.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smtplab.analysis.partitioned import per_session
from smtplab.analysis.steps import (
    POSTFIX_COMMANDS,
    REFUSALS_ONLY,
    STATUSES,
    Verbs,
    is_verb,
    last_chunks,
    last_per_group,
    ordered,
    session_codes,
    steps,
)

#: Postfix's order of commands in its ``disconnect`` line (smtpd's command table); any other
#: verb, EXPN and HELP included (Postfix implements neither), counts as ``unknown``.
FINGERPRINT_ORDER = (*(verb.lower() for verb in POSTFIX_COMMANDS), "unknown")
#: Sources that see nothing after STARTTLS (RFC 3207): a capture without the keys.
BLIND_AFTER_STARTTLS = frozenset({"pcap"})
OUTCOMES = ("refused", "delivered", "rejected", "deferred", "encrypted", "no mail", "aborted")
TRANSACTION_VERBS = ("MAIL", "RCPT", "DATA", "DATA-END", "BDAT")
COLUMNS = [
    "source", "client", "server", "start", "end", "duration", "commands", "replies", "errors",
    "messages", "recipients", "tls", "outcome", "fingerprint",
]  # fmt: skip
_FINGERPRINT_COLUMN = {verb.upper(): i for i, verb in enumerate(FINGERPRINT_ORDER)}
_UNKNOWN = FINGERPRINT_ORDER.index("unknown")

_ACCEPTED = STATUSES.index("accepted")
_TEMPORARY = STATUSES.index("temporary")
_PERMANENT = STATUSES.index("permanent")


@per_session
def sessions(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per session of ``frame`` (live or captured), indexed by session id.

    Columns: ``source, client, server, start, end, duration`` (seconds), ``commands``,
    ``replies``, ``errors`` (4xx and 5xx replies), ``messages`` (accepted), ``recipients``
    (accepted RCPTs), ``tls``, ``outcome`` and ``fingerprint``.
    """
    appearance = _appearance_order(frame)
    frame = ordered(frame)
    codes = session_codes(frame)
    names = _session_names(frame)
    count = len(names)
    first = np.searchsorted(codes, np.arange(count))  # first row of each session
    present = np.bincount(codes, minlength=count) > 0

    time = frame["time"]
    by_session = pd.Series(time.array).groupby(codes, sort=True)
    start = by_session.min().reindex(range(count))
    end = by_session.max().reindex(range(count))

    kind = Verbs(frame["kind"])
    code = frame["code"].to_numpy(dtype="float64", na_value=np.nan)
    is_reply = kind("reply")
    table = pd.DataFrame(
        {
            "source": _first(frame["source"], first, present),
            "client": _first(frame["client"], first, present),
            "server": _first(frame["server"], first, present),
            "start": start.array,
            "end": end.array,
            "duration": (end - start).dt.total_seconds().to_numpy(),
            "replies": np.bincount(codes[is_reply], minlength=count),
            # A reply whose code a log left out is a refusal (Exim logs only those so).
            "errors": np.bincount(codes[is_reply & ~(code < 400)], minlength=count),
            "tls": np.bincount(codes[frame["tls"].to_numpy(bool, na_value=False)], minlength=count)
            > 0,
        },
        index=pd.Index(names, name="session"),
    )

    step = steps(frame)
    step_codes = session_codes(step)
    verb = Verbs(step["verb"])
    status = step["status"].cat.codes.to_numpy()
    accepted = status == _ACCEPTED
    implied = step["source"].isin(REFUSALS_ONLY).to_numpy()
    data_ok = _data_accepted(step_codes, verb, accepted, implied)
    message_done = verb("DATA-END") | last_chunks(step)
    # A log of refusals has no message steps: an accepted DATA, or the last of a run of
    # accepted BDATs, is a message accepted.
    bdat = verb("BDAT")
    run_ends = bdat & ~(np.append(bdat[1:], False) & (np.append(step_codes[1:], -1) == step_codes))
    implied_message = implied & ((verb("DATA") & data_ok) | (run_ends & accepted))
    messages = np.bincount(step_codes[(message_done & accepted) | implied_message], minlength=count)
    is_command = is_verb(step["kind"], "command")
    # From the steps: the lines inside an AUTH exchange are not commands.
    table["commands"] = np.bincount(step_codes[is_command], minlength=count)
    table["messages"] = messages
    table["recipients"] = np.bincount(step_codes[verb("RCPT") & accepted], minlength=count)
    blind = np.bincount(
        codes[frame["source"].isin(BLIND_AFTER_STARTTLS).to_numpy()], minlength=count
    )
    table["outcome"] = _outcomes(step_codes, verb, status, messages, blind > 0, count)
    table["fingerprint"] = fingerprints(
        step_codes[is_command],
        verb.mapped(_FINGERPRINT_COLUMN, _UNKNOWN)[is_command],
        np.where(verb("DATA"), data_ok, accepted)[is_command],
        count,
    )
    table = table[COLUMNS]
    # Sessions in the order the frame first mentions them (lab-2 before lab-10), not in
    # the categories' alphabetical order.
    return table.iloc[appearance]


def _appearance_order(frame: pd.DataFrame) -> np.ndarray:
    """The session codes in the order of their first rows in ``frame`` (a hash table's one
    pass, no sort); sessions with no rows are left out."""
    codes = pd.unique(session_codes(frame))
    return codes[codes >= 0]


def _session_names(frame: pd.DataFrame) -> np.ndarray:
    session = frame["session"]
    if isinstance(session.dtype, pd.CategoricalDtype):
        return np.asarray(session.cat.categories, dtype=object)
    return np.asarray(pd.factorize(session, sort=True)[1], dtype=object)


def _first(
    column: pd.Series, first: np.ndarray, present: np.ndarray
) -> pd.api.extensions.ExtensionArray:
    """The column's value on each session's first row (NA for a category with no rows)."""
    positions = np.where(present, np.minimum(first, len(column) - 1), -1)
    return column.array.take(positions, allow_fill=True)


def _data_accepted(
    codes: np.ndarray, verb: Verbs, accepted: np.ndarray, implied: np.ndarray
) -> np.ndarray:
    """Accepted DATA commands whose message was accepted too (Postfix's ``data`` count).

    In sources that log only refusals there is no message step: an accepted DATA stands."""
    following_is_message = np.append(verb("DATA-END")[1:], False)
    same_session = np.append(codes[1:], -1) == codes
    following_ok = np.append(accepted[1:], False)
    has_message = following_is_message & same_session
    return verb("DATA") & accepted & np.where(has_message, following_ok, implied)


def fingerprints(codes: np.ndarray, column: np.ndarray, ok: np.ndarray, count: int) -> np.ndarray:
    """Postfix's ``ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6`` for each session,
    from each command's session, :data:`FINGERPRINT_ORDER` position and success."""
    width = len(FINGERPRINT_ORDER)
    cell = codes * width + column
    sent = np.bincount(cell, minlength=count * width).reshape(count, width)
    good = np.bincount(cell[ok], minlength=count * width).reshape(count, width)
    # Sessions repeat a handful of patterns: format each distinct one once.
    pattern, first = _distinct_rows(np.hstack([good, sent]))
    texts = np.array(
        [_fingerprint(good[row], sent[row]) for row in first], dtype=object
    )  # one per pattern, not per session
    return texts[pattern]


def _distinct_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct rows of ``matrix`` (non-negative integers): each row's number, and
    the first row with each number. Column by column, a row's number so far and its value in
    the column are paired into one integer and renumbered by a hash table (pd.factorize):
    linear in the rows, no sort."""
    number = np.zeros(len(matrix), dtype=np.int64)
    for column in matrix.T:  # a few dozen columns
        if column.any():
            # Both factors are below the row count: the pair fits in an int64.
            number = pd.factorize(number * (int(column.max()) + 1) + column)[0]
    # factorize numbers in order of first appearance: number k first appears after k-1.
    first = np.flatnonzero(~pd.Series(number).duplicated().to_numpy())
    return number, first


def _fingerprint(good: np.ndarray, sent: np.ndarray) -> str:
    parts = [
        f"{name}={g}" if g == s else f"{name}={g}/{s}"
        for name, g, s in zip(FINGERPRINT_ORDER, good, sent, strict=True)
        if s
    ]
    total, total_good = int(sent.sum()), int(good.sum())
    parts.append(
        f"commands={total_good}" if total_good == total else f"commands={total_good}/{total}"
    )
    return " ".join(parts)


def _outcomes(
    codes: np.ndarray,
    verb: Verbs,
    status: np.ndarray,
    messages: np.ndarray,
    blind: np.ndarray,
    count: int,
) -> pd.Categorical:
    outcome = np.full(count, OUTCOMES.index("aborted"))
    # (The steps come in session order: each session's steps are a run of ``codes``.)
    # The last refusal in a mail transaction decides between rejected and deferred.
    refused = verb(*TRANSACTION_VERBS) & ((status == _TEMPORARY) | (status == _PERMANENT))
    last_refusal = last_per_group(codes[refused], status[refused], count)
    mail_tried = np.bincount(codes[verb("MAIL")], minlength=count) > 0
    quit_sent = np.bincount(codes[verb("QUIT")], minlength=count) > 0
    outcome[~mail_tried & quit_sent] = OUTCOMES.index("no mail")
    # A capture's session whose last step is an accepted STARTTLS went on where the capture
    # cannot see. (A live client or a server log sees what follows.)
    last = last_per_group(codes, np.arange(len(codes)), count)
    has_steps = last >= 0
    encrypted = np.zeros(count, dtype=bool)
    tls = verb("STARTTLS") & (status == _ACCEPTED)
    encrypted[has_steps] = tls[last[has_steps]]
    outcome[encrypted & blind] = OUTCOMES.index("encrypted")
    outcome[mail_tried & (last_refusal == _TEMPORARY)] = OUTCOMES.index("deferred")
    outcome[mail_tried & (last_refusal == _PERMANENT)] = OUTCOMES.index("rejected")
    outcome[messages > 0] = OUTCOMES.index("delivered")
    bad_greeting = verb("CONNECT") & ((status == _TEMPORARY) | (status == _PERMANENT))
    outcome[codes[bad_greeting]] = OUTCOMES.index("refused")
    return pd.Categorical.from_codes(outcome, categories=list(OUTCOMES))
