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

import re

import numpy as np
import pandas as pd

#: Sources that log only refused commands: a step without a reply was accepted.
REFUSALS_ONLY = frozenset({"postfix"})

STATUSES = ("accepted", "temporary", "permanent", "unanswered")
STEP_KINDS = ("connect", "command", "data")
_ACCEPTED = STATUSES.index("accepted")


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
    return Verbs(column)(*verbs)


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
    reply_to = paired_reply_to(frame, codes)
    if frame["source"].isin(REFUSALS_ONLY).any():
        is_reply = is_verb(frame["kind"], "reply") & ~np.isnan(reply_to)
        reply_rows = np.flatnonzero(is_reply)
    reply_keys = keys(codes[reply_rows], reply_to[reply_rows].astype(np.int64))
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

    step_rows, reply_of_step = _fold_auth_responses(frame, step_rows, reply_of_step, codes)
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
    if implied.any():
        _logged_refusals(frame, table, status)
    table["status"] = pd.Categorical.from_codes(status, categories=list(STATUSES))

    table["pipelined"] = _pipelined(table, codes[step_rows])
    table["group"] = np.cumsum(~table["pipelined"].to_numpy()) - 1
    return table


def paired_reply_to(frame: pd.DataFrame, codes: np.ndarray) -> np.ndarray:
    """The ``reply_to`` column (floats, NaN for none), with a log's refusals of the greeting
    and of the message paired.

    Postfix logs ``reject: CONNECT`` (a refused greeting) and ``reject: END-OF-MESSAGE`` (a
    refused message) with no command before them; they answer the connection and the
    session's DATA."""
    reply_to = frame["reply_to"].to_numpy("float64", na_value=np.nan).copy()
    if not frame["source"].isin(REFUSALS_ONLY).any():
        return reply_to
    loose = (
        is_verb(frame["kind"], "reply")
        & np.isnan(reply_to)
        & frame["source"].isin(REFUSALS_ONLY).to_numpy()
    )
    if not loose.any():
        return reply_to
    seq = frame["seq"].to_numpy()
    for verb, target in (("CONNECT", is_verb(frame["kind"], "connect")), ("DATA-END", None)):
        rows = np.flatnonzero(loose & is_verb(frame["verb"], verb))
        if target is None:
            target = is_verb(frame["kind"], "command") & is_verb(frame["verb"], "DATA")
        candidates = np.flatnonzero(target)
        for row in rows:
            mine = candidates[codes[candidates] == codes[row]]
            if len(mine):
                # The greeting: the connection; the message: the session's last DATA.
                reply_to[row] = seq[mine[0] if verb == "CONNECT" else mine[-1]]
    return reply_to


def _fold_auth_responses(
    frame: pd.DataFrame, step_rows: np.ndarray, reply_of_step: np.ndarray, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fold the lines a client sends inside an AUTH exchange into the AUTH step.

    After ``334`` the client's lines are SASL responses, not commands (RFC 4954 4); they are
    recorded as ``AUTH ***`` rows. The exchange is one step, answered by the reply to its last
    line (``235``, ``535``, ...), as Postfix counts it (``auth=1``)."""
    verb = frame["verb"].iloc[step_rows]
    argument = frame["argument"].iloc[step_rows]
    inside = is_verb(verb, "AUTH") & (argument == "***").fillna(False).to_numpy(bool)
    if not inside.any():
        return step_rows, reply_of_step
    position = np.arange(len(step_rows))
    opener = np.maximum.accumulate(np.where(~inside, position, 0))
    same = codes[step_rows][opener] == codes[step_rows]
    follows = inside & same & is_verb(verb, "AUTH")[opener]
    replies = reply_of_step.copy()
    # The last line of each exchange decides (np.unique on the reversed order: the last).
    openers, last = np.unique(opener[follows][::-1], return_index=True)
    replies[openers] = reply_of_step[follows][::-1][last]
    keep = ~follows
    return step_rows[keep], replies[keep]


#: Postfix's names of commands in its disconnect counts, upper-cased; any other verb is
#: what Postfix counts as ``unknown``.
POSTFIX_COMMANDS = (
    "HELO", "EHLO", "XCLIENT", "XFORWARD", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA",
    "BDAT", "RSET", "NOOP", "VRFY", "ETRN", "QUIT",
)  # fmt: skip
_COUNT = re.compile(r"([a-z]+)=(\d+)(?:/(\d+))?")


def _logged_refusals(frame: pd.DataFrame, table: pd.DataFrame, status: np.ndarray) -> None:
    """Commands a log of refusals counts as refused without logging a reply.

    Postfix's ``disconnect`` line says how many of each command succeeded (``data=0/1``), but
    only some refusals have a ``reject:`` line (a lost connection, a failed AUTH, an unknown
    command have none). Those commands have no reply row; without this they would count as
    accepted. The last such rows of each verb are marked ``unanswered``: refused, reply
    unknown."""
    closes = frame[
        is_verb(frame["kind"], "close")
        & frame["source"].isin(REFUSALS_ONLY).to_numpy()
        & frame["text"].str.startswith("disconnect ").fillna(False).to_numpy(bool)
    ]
    session = table["session"].astype(str).to_numpy()
    verb = table["verb"].astype(str).to_numpy()
    unknown = ~np.isin(verb, POSTFIX_COMMANDS) & is_verb(table["kind"], "command")
    no_reply = table["code"].isna().to_numpy()
    for name, text in zip(closes["session"].astype(str), closes["text"], strict=True):
        for counted, good, sent in _COUNT.findall(text):
            if not sent or counted == "commands":
                continue
            mine = session == name
            rows = mine & (unknown if counted == "unknown" else verb == counted.upper())
            refused_with_reply = np.count_nonzero(rows & ~no_reply & (status != _ACCEPTED))
            missing = int(sent) - int(good) - refused_with_reply
            if missing > 0:
                candidates = np.flatnonzero(rows & no_reply)[-missing:]
                status[candidates] = STATUSES.index("unanswered")


#: Protocol order of steps, for sources that do not record the order (a Postfix log).
_PROTOCOL_RANK = {
    "CONNECT": 0,
    "HELO": 1,
    "EHLO": 1,
    "STARTTLS": 2,
    "AUTH": 3,
    "MAIL": 4,
    "RCPT": 5,
    "DATA": 6,
    "DATA-END": 7,
    "BDAT": 7,
    "QUIT": 9,
}


def in_protocol_order(step: pd.DataFrame) -> pd.DataFrame:
    """:func:`steps` with the steps of sources that do not record their order (a Postfix log
    logs refusals when they happen and the other commands only as counts at the end) sorted
    into protocol order: EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, ..., QUIT. Exact for the
    usual one transaction per session."""
    unordered = step["source"].isin(REFUSALS_ONLY).to_numpy()
    if not unordered.any():
        return step
    rank = step["verb"].map(_PROTOCOL_RANK).astype("float64").fillna(8).to_numpy().copy()
    codes = session_codes(step)
    # A second EHLO is the one after STARTTLS (RFC 3207 4.2): it goes after it.
    hello = is_verb(step["verb"], "EHLO", "HELO")
    earlier = pd.Series(hello.astype(np.int64)).groupby(codes).cumsum().to_numpy() - hello
    rank[hello & (earlier > 0)] = 2.5
    # Several transactions in one session: the k-th MAIL, RCPT and DATA go together (extra
    # RCPTs and chunks to the last one) - a guess, as the log gives no order.
    transaction = np.zeros(len(step))
    mails = pd.Series(is_verb(step["verb"], "MAIL").astype(np.int64)).groupby(codes)
    count = mails.transform("sum").to_numpy()
    for verbs in (("MAIL",), ("RCPT",), ("DATA",), ("BDAT", "DATA-END")):
        mine = is_verb(step["verb"], *verbs)
        nth = pd.Series(mine.astype(np.int64)).groupby(codes).cumsum().to_numpy() - 1
        transaction[mine] = np.minimum(nth, np.maximum(count - 1, 0))[mine]
    transaction[rank >= 9] = np.inf  # QUIT last
    transaction[rank <= 3] = -1  # greeting, EHLO, STARTTLS, AUTH first
    rank = np.where(unordered, rank, 0.0)
    transaction = np.where(unordered, transaction, 0.0)
    order = np.lexsort((np.arange(len(step)), rank, transaction, codes))
    return step.iloc[order].reset_index(drop=True)


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
