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
a step without a reply counts as ``accepted``. Exim's log is such a source too, and it logs a
refusal without its reply code (the reply row's ``code`` is missing): its words say which,
``temporarily rejected`` a ``temporary`` refusal, any other a ``permanent`` one. Sendmail's
log is one as well (its ``User unknown`` refusals have no code either), and so is Exchange's
message tracking log: it records a message only once it was taken (``RECEIVE``) or sent
(``SEND``), so the commands of those transactions were accepted unless a reply says not.

Pairing is vectorised: a step is found by the key ``(session, seq)`` with one binary search
over all steps, so a million-row transcript is paired in a fraction of a second. Rows need not
be sorted; :func:`ordered` sorts them by session and ``seq`` once (a no-op when they already are).
The same holds for everything below, and for every table built from the steps: the work is
done on whole columns (keys, category codes, runs of a session's rows), never by a Python loop
over sessions or rows, so its cost grows with the rows (issue 16). A log's ``disconnect``
counts, for one, are read by Arrow's string kernels and joined to the steps by
``(session, verb)`` keys.

A step is ``pipelined`` when the client sent it before the reply to its previous step had
arrived (RFC 2920): in a capture the reply comes later in ``seq``; in a live session, where the
server records each command as it processes it, the reply's ``time`` is later than the step's.
Consecutive pipelined steps share a ``group`` number with the step that opened the group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from smtplab.analysis.partitioned import in_session_order, per_session

#: Sources that log only refused commands: a step without a reply was accepted.
REFUSALS_ONLY = frozenset({"postfix", "exim", "sendmail", "exchange"})

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


def lookup(sorted_keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``wanted`` is in ``sorted_keys`` (one binary search each), and whether it
    is there at all."""
    if not len(sorted_keys):
        return np.zeros(len(wanted), dtype=np.int64), np.zeros(len(wanted), dtype=bool)
    position = np.searchsorted(sorted_keys, wanted).clip(max=len(sorted_keys) - 1)
    return position, sorted_keys[position] == wanted


def numbered_groups(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (steps in session order) with its ``group`` column: a step that is not
    pipelined opens a group, numbered from 0 over the whole table."""
    table["group"] = np.cumsum(~table["pipelined"].to_numpy()) - 1
    return table


def _joined(table: pd.DataFrame) -> pd.DataFrame:
    """Steps worked out partition by partition, as one table: in session order, the groups
    numbered over all of it."""
    return numbered_groups(in_session_order(table))


@per_session(then=_joined)
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
    position, found = lookup(step_keys, reply_keys)
    # The last reply to a step is its answer (an AUTH may first get 334 challenges): of the
    # replies found for a step, the one latest in the frame.
    reply_of_step = np.full(len(step_rows), -1, dtype=np.int64)
    np.maximum.at(reply_of_step, position[found], reply_rows[found])

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
    answered = reply_of_step >= 0
    status[np.isnan(code) & implied & ~answered] = STATUSES.index("accepted")
    uncoded = np.isnan(code) & answered  # a log's refusal without its code (Exim)
    if uncoded.any():
        words = table["text"].astype("string").str.startswith("temporarily")
        temporary = words.fillna(False).to_numpy(bool)
        status[uncoded & temporary] = STATUSES.index("temporary")
        status[uncoded & ~temporary] = STATUSES.index("permanent")
    if implied.any():
        _logged_refusals(frame, codes, table, codes[step_rows], status)
    table["status"] = pd.Categorical.from_codes(status, categories=list(STATUSES))

    table["pipelined"] = _pipelined(table, codes[step_rows])
    return numbered_groups(table)


def paired_reply_to(frame: pd.DataFrame, codes: np.ndarray) -> np.ndarray:
    """The ``reply_to`` column (floats, NaN for none), with a log's refusals of the greeting
    and of the message paired.

    Postfix logs ``reject: CONNECT`` (a refused greeting) and ``reject: END-OF-MESSAGE`` (a
    refused message) with no command before them; they answer the connection and the
    session's DATA."""
    reply_to = frame["reply_to"].to_numpy("float64", na_value=np.nan).copy()
    if not frame["source"].isin(REFUSALS_ONLY).any():
        return reply_to
    kind, verb = Verbs(frame["kind"]), Verbs(frame["verb"])
    loose = kind("reply") & np.isnan(reply_to) & frame["source"].isin(REFUSALS_ONLY).to_numpy()
    if not loose.any():
        return reply_to
    seq = frame["seq"].to_numpy()
    # The greeting answers the session's (first) connection; the message its last DATA.
    connection = first_in_session(codes, kind("connect"), seq)
    last_data = last_in_session(codes, kind("command") & verb("DATA"), seq)
    for refusal, answered in ((verb("CONNECT"), connection), (verb("DATA-END"), last_data)):
        rows = np.flatnonzero(loose & refusal & (answered >= 0))
        reply_to[rows] = answered[rows]
    return reply_to


def first_in_session(codes: np.ndarray, chosen: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For every row, ``values`` at the first ``chosen`` row (in row order) of the row's
    session, or -1 where the session has none (so ``values`` must not be negative)."""
    rows = np.flatnonzero(chosen)
    return _of_own_session(codes, codes[rows], values[rows])


def last_in_session(codes: np.ndarray, chosen: np.ndarray, values: np.ndarray) -> np.ndarray:
    """As :func:`first_in_session`, at the last ``chosen`` row of the session."""
    rows = np.flatnonzero(chosen)[::-1]
    return _of_own_session(codes, codes[rows], values[rows])


def _of_own_session(codes: np.ndarray, owners: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For every row (its session's code in ``codes``), the first of ``values`` whose owner
    (``owners``) is that session; -1 for none. One sort and one binary search."""
    result = np.full(len(codes), -1, dtype=np.int64)
    sessions, first = np.unique(owners, return_index=True)
    position, found = lookup(sessions, codes)
    result[found] = values[first[position[found]]]
    return result


def last_per_group(groups: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """The last of ``values`` in each group ``0 .. count - 1`` (``groups``, one per value,
    ascending: each group is a run), -1 for a group with none."""
    result = np.full(count, -1, dtype=np.int64)
    ends_run = np.ones(len(groups), dtype=bool)
    ends_run[:-1] = groups[1:] != groups[:-1]
    result[groups[ends_run]] = values[ends_run]
    return result


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
#: One count of a ``disconnect`` line: ``rcpt=1/2`` (1 of 2 accepted) or ``ehlo=1`` (all).
_COUNT = r"(?P<name>[a-z]+)=(?P<good>\d+)(?:/(?P<sent>\d+))?"


def _logged_refusals(
    frame: pd.DataFrame,
    codes: np.ndarray,
    table: pd.DataFrame,
    step_codes: np.ndarray,
    status: np.ndarray,
) -> None:
    """Commands a log of refusals counts as refused without logging a reply.

    Postfix's ``disconnect`` line says how many of each command succeeded (``data=0/1``), but
    only some refusals have a ``reject:`` line (a lost connection, a failed AUTH, an unknown
    command have none). Those commands have no reply row; without this they would count as
    accepted. The last such rows of each verb are marked ``unanswered``: refused, reply
    unknown.

    All sessions at once: the counts are matched to the steps (``table``, its rows' session
    codes ``step_codes``) by session and verb; ``codes`` are the frame's."""
    counts = _refusal_counts(frame, codes)
    if not len(counts):
        return
    verb = Verbs(table["verb"])
    no_reply = table["code"].isna().to_numpy()
    refused_with_reply = ~no_reply & (status != _ACCEPTED)
    # A count names the steps it counts by a label: "unknown" counts the commands whose verb
    # Postfix does not know (label 0), any other name the steps of its verb (the verb's code).
    # -1: not counted this way. The two ways are matched one after the other.
    unknown_step = ~verb(*POSTFIX_COMMANDS) & is_verb(table["kind"], "command")
    unknown_count = (counts["name"] == "unknown").to_numpy()
    verb_of_count = pd.Index(verb.names).get_indexer(counts["verb"].to_numpy())
    for step_label, count_label in (
        (np.where(unknown_step, 0, -1), np.where(unknown_count, 0, -1)),
        (verb.codes, np.where(unknown_count, -1, verb_of_count)),
    ):
        marked = _last_uncounted(
            keys(step_codes, step_label),
            step_label >= 0,
            keys(counts["session"].to_numpy(), count_label)[count_label >= 0],
            counts["refused"].to_numpy()[count_label >= 0],
            no_reply,
            refused_with_reply,
        )
        status[marked] = STATUSES.index("unanswered")


def _refusal_counts(frame: pd.DataFrame, codes: np.ndarray) -> pd.DataFrame:
    """The refusals each ``disconnect`` line of a log of refusals counts: one row per count
    ``name=good/sent`` (``commands=`` left out, and counts with no refusal), with the session's
    code, the counted ``name`` and ``verb`` (upper-cased), and how many were ``refused``."""
    closes = np.flatnonzero(
        is_verb(frame["kind"], "close")
        & frame["source"].isin(REFUSALS_ONLY).to_numpy()
        & frame["text"].str.startswith("disconnect ").fillna(False).to_numpy(bool)
    )
    # Every line's words at once (Arrow's string kernels); a word that is no count is null.
    words = pc.utf8_split_whitespace(
        pa.array(frame["text"].iloc[closes], type=pa.string(), from_pandas=True)
    )
    found = pc.extract_regex(pc.list_flatten(words), _COUNT)
    counts = pa.Table.from_arrays(
        [pc.list_parent_indices(words), *found.flatten()], names=["line", "name", "good", "sent"]
    ).filter(found.is_valid())
    # "sent" is "" in a count with nothing refused (``ehlo=1``).
    counts = counts.filter((pc.field("sent") != "") & (pc.field("name") != "commands"))
    refused = pc.subtract(pc.cast(counts["sent"], pa.int64()), pc.cast(counts["good"], pa.int64()))
    return pd.DataFrame(
        {
            "session": codes[closes][counts["line"].to_numpy()],
            "name": counts["name"].to_numpy(),
            "verb": pc.utf8_upper(counts["name"]).to_numpy(),
            "refused": refused.to_numpy(),
        }
    )


def _last_uncounted(
    step_key: np.ndarray,
    labelled: np.ndarray,
    count_key: np.ndarray,
    refused: np.ndarray,
    no_reply: np.ndarray,
    refused_with_reply: np.ndarray,
) -> np.ndarray:
    """The rows to mark refused: in each group of steps (a session's steps of one verb, by
    ``step_key``) that a count refuses ``refused`` of (by ``count_key``), the last steps without
    a reply, as many as the refusals no reply row shows."""
    if not len(count_key):
        return np.zeros(0, dtype=np.int64)
    # A session with two disconnect lines (not Postfix's) gets its larger count.
    groups, which = np.unique(count_key, return_inverse=True)
    most_refused = np.zeros(len(groups), dtype=np.int64)
    np.maximum.at(most_refused, which, refused)
    group, found = lookup(groups, step_key)
    member = labelled & found
    shown = np.bincount(group[member & refused_with_reply], minlength=len(groups))
    missing = most_refused - shown
    candidates = np.flatnonzero(member & no_reply)
    # How many candidates of the same group come after each one: the last `missing` are marked.
    after = pd.Series(group[candidates]).groupby(group[candidates]).cumcount(ascending=False)
    return candidates[after.to_numpy() < missing[group[candidates]]]


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
