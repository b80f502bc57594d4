"""One row per message: who sent it, what became of each recipient, how long it took, and
every hop it went through.

A message is what a client handed over in one transaction, followed from there: the hops of
:mod:`smtplab.analysis.hops` (a Postfix queue id, an Exim message id, a live session's
delivered transaction) are chained where one names the next, ``status=sent (250 2.0.0 Ok:
queued as NEWID)`` or Exim's ``C="250 ... queued as NEWID"``: a content filter's way back into
the same Postfix, a relay to another host whose log is read too, or a captured session and the
log of the server it talked to. A hop is followed for each recipient the next hop names the
same way (an address rewritten on the way ends the chain there, and its next hop shows as a
message of its own). Where a queue id was used twice among the frame's sessions, the next hop
is the one received nearest in time. A message is listed once, under the id it had first.

Each recipient's final status is its last attempt at the last hop (``sent``, ``bounced``,
``deferred``, ``expired``, ...); its delay is the sum over the hops of each hop's delay at its
last attempt (Postfix ``delay=``, Exim ``QT=``: retries are not counted twice). A recipient that
did not end ``sent`` gets a bounce class from its reply (:func:`bounce_class`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smtplab.analysis.hops import hops

#: How many hops a message is followed through at most (a queue id reused in a loop ends so).
MOST_HOPS = 20
OUTCOMES = ("delivered", "partly bounced", "bounced", "deferred", "queued")
BOUNCE_CLASSES = ("recipient", "policy", "infrastructure", "other")
_POLICY_WORDS = (
    r"block|listed|blacklist|spam|policy|reputation|denied|relaying|not permitted|prohibited"
    r"|\brbl\b|dnsbl|\bspf\b|dmarc|dkim|rejected by|content rejected|virus"
)
_RECIPIENT_WORDS = (
    r"user unknown|unknown user|no such (?:user|mailbox|recipient)|does not exist|unrouteable"
    r"|mailbox (?:is )?(?:unavailable|closed|full|disabled|not found)|invalid recipient"
    r"|over quota|quota exceeded|address rejected: user|recipient unknown|not found"
)
_INFRASTRUCTURE_WORDS = (
    r"timed out|timeout|connection refused|connection reset|lost connection|no route"
    r"|unreachable|host not found|name service|temporar|try again|retry time|defer"
    r"|too many connections|service unavailable|server error|loops back"
)


def bounce_class(code: pd.Series, enhanced: pd.Series, text: pd.Series) -> pd.Categorical:
    """The class of each refusal or failure (one of :data:`BOUNCE_CLASSES`), from its enhanced
    code first (RFC 3463: ``X.1.*`` addressing and ``X.2.*`` mailbox status are the recipient's,
    ``X.7.*`` security or policy, ``X.3``-``X.6`` the mail system, network, protocol or
    content), then the words of its reply (``blocked``, ``listed``, ``denied`` ...: policy;
    ``user unknown``, ``mailbox full`` ...: recipient; ``timed out``, ``connection refused``
    ...: infrastructure), then the code (421 and any other 4xx: infrastructure, transient;
    554: policy; 550-553: recipient); ``other`` when none says."""
    subject = enhanced.astype("string").str.extract(r"^[245]\.(\d{1,3})\.", expand=False)
    words = text.astype("string").str.lower().fillna("")
    number = pd.to_numeric(code, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    choices = [
        subject.isin(["1", "2"]).to_numpy(dtype=bool, na_value=False),
        (subject == "7").to_numpy(dtype=bool, na_value=False),
        subject.isin(["3", "4", "5", "6"]).to_numpy(dtype=bool, na_value=False),
        words.str.contains(_POLICY_WORDS).to_numpy(dtype=bool, na_value=False),
        words.str.contains(_RECIPIENT_WORDS).to_numpy(dtype=bool, na_value=False),
        words.str.contains(_INFRASTRUCTURE_WORDS).to_numpy(dtype=bool, na_value=False),
        (number >= 400) & (number < 500),
        number == 554,
        (number >= 550) & (number <= 553),
    ]
    classes = [0, 1, 2, 1, 0, 2, 2, 1, 0]
    index = np.select(choices, classes, default=BOUNCE_CLASSES.index("other"))
    return pd.Categorical.from_codes(index, categories=list(BOUNCE_CLASSES))


def messages(frame: pd.DataFrame, recipients: bool = False) -> pd.DataFrame:
    """One row per message in ``frame`` (a transcript frame, pandas or Dask), in the order
    they were received (see the module docstring).

    Columns: ``message`` (its first id: queue id, Exim message id, or a live session's
    ``queued as`` id, else ``SESSION#N``), ``session`` and ``source`` where it was received,
    ``received``, ``sender``, ``size``, ``recipients`` (a list), ``status`` and ``relay``
    (dicts: each recipient's final status and the host or transport of its last hop),
    ``outcome`` (``delivered``: every recipient sent; ``partly bounced``; ``bounced``;
    ``deferred``: one still waits; ``queued``: no delivery logged yet), ``delay`` (seconds,
    the slowest recipient's), ``attempts`` (the most tries a recipient took at one hop),
    ``bounce_class`` and the ``code``, ``enhanced`` and ``reply`` of the first recipient that
    was not sent (else of the last that was), ``hops`` (the ids it went through) and ``hosts``
    (where each hop handed it: Postfix ``relay=``, Exim ``H=`` or transport).

    ``recipients=True``: one row per message and recipient instead, with ``recipient``,
    ``status``, ``time`` (of its last attempt), ``relay``, ``delay``, ``delays`` (Postfix's
    ``a/b/c/d`` at the last hop), ``transmission`` (Postfix's ``d``, Exim's ``DT=``),
    ``attempts``, ``code``, ``enhanced``, ``reply``, ``bounce_class``, ``hops`` and ``hosts``.
    """
    chains = _chains(hops(frame))
    return chains if recipients else _per_message(chains)


def _links(table: pd.DataFrame) -> np.ndarray:
    """For each hop row, the row of the same recipient at the next hop, or -1."""
    link = np.full(len(table), -1, dtype=np.int64)
    rows = table.reset_index(drop=True)
    asking = rows[rows["next"].notna()][["session", "next", "time", "recipient"]]
    if asking.empty:
        return link
    records = rows.drop_duplicates(["session", "queue"])[["session", "queue", "received"]]
    pairs = asking.reset_index(names="row").merge(
        records.rename(columns={"session": "to_session"}), left_on="next", right_on="queue"
    )
    pairs = pairs[pairs["session"] != pairs["to_session"]]
    pairs = pairs.assign(gap=(pairs["received"] - pairs["time"]).abs())
    pairs = pairs.sort_values(["row", "gap", "to_session"], kind="stable").drop_duplicates("row")
    targets = rows[["session", "queue", "recipient"]].reset_index(names="target")
    pairs = pairs.merge(
        targets,
        left_on=["to_session", "next", "recipient"],
        right_on=["session", "queue", "recipient"],
        suffixes=("", "_target"),
    )
    link[pairs["row"].to_numpy()] = pairs["target"].to_numpy()
    return link


def _chains(table: pd.DataFrame) -> pd.DataFrame:
    """Each message's recipients followed hop by hop to their last hop."""
    table = table.reset_index(drop=True)
    link = _links(table)
    reached = np.zeros(len(table), dtype=bool)
    reached[link[link >= 0]] = True
    # A chain starts at each row no hop leads to: a message's first hop, or a recipient that
    # a next hop names differently (its rows there start a message of their own).
    roots = np.flatnonzero(~reached)
    # Each chain's rows, hop after hop: (owner: the chain's number, row), gathered by rounds.
    owners, steps = [np.arange(len(roots))], [roots]
    current, active = roots.copy(), np.arange(len(roots))
    for _ in range(MOST_HOPS):  # each round moves every unfinished chain one hop on
        onward = link[current[active]]
        moving = onward >= 0
        if not moving.any():
            break
        active = active[moving]
        current[active] = onward[moving]
        owners.append(active)
        steps.append(onward[moving])
    owner, row = np.concatenate(owners), np.concatenate(steps)
    order = np.argsort(owner, kind="stable")  # by chain, each in the order of its hops
    owner, row = owner[order], row[order]
    bounds = np.flatnonzero(np.diff(owner)) + 1
    count = len(roots)
    first, last = table.iloc[roots], table.iloc[current]
    chains = pd.DataFrame({
        "message": first["queue"].to_numpy(), "session": first["session"].to_numpy(),
        "source": first["source"].to_numpy(), "received": first["received"].to_numpy(),
        "sender": first["sender"].to_numpy(), "size": first["size"].to_numpy(),
    })  # fmt: skip
    for name in ("recipient", "status", "time", "relay"):
        chains[name] = last[name].to_numpy()
    # The delay: each hop's at its last attempt, summed (NaN where no hop logged one).
    delay = table["delay"].to_numpy(dtype="float64")[row]
    logged = np.isfinite(delay)
    total = np.bincount(owner, weights=np.where(logged, delay, 0.0), minlength=count)
    total = total.astype("float64")  # (an empty bincount is of integers)
    total[np.bincount(owner, weights=logged, minlength=count) == 0] = np.nan
    chains["delay"] = total
    for name in ("delays", "transmission"):
        chains[name] = last[name].to_numpy()
    attempts = np.full(count, np.nan)
    np.fmax.at(attempts, owner, table["attempts"].to_numpy(dtype="float64", na_value=np.nan)[row])
    chains["attempts"] = pd.array(attempts, dtype="Int64")
    queues = np.split(table["queue"].to_numpy(dtype=object)[row], bounds)
    relays = np.split(table["relay"].to_numpy(dtype=object)[row], bounds)
    chains["hops"] = [list(dict.fromkeys(hop.tolist())) for hop in queues] if count else []
    chains["hosts"] = (
        [[h for h in hosts.tolist() if isinstance(h, str)] for hosts in relays] if count else []
    )
    for name in ("code", "enhanced", "reply"):
        chains[name] = last[name].to_numpy()
    chains["code"] = pd.array(pd.to_numeric(chains["code"]), dtype="Int16")
    failed = chains["status"].notna() & (chains["status"] != "sent")
    classes = bounce_class(chains["code"], chains["enhanced"], chains["reply"])
    failing = pd.Series(classes).where(failed.to_numpy(dtype=bool, na_value=False))
    chains["bounce_class"] = pd.Categorical(failing, categories=list(BOUNCE_CLASSES))
    chains["size"] = chains["size"].astype("Int64")
    for name in ("sender", "recipient", "status", "relay", "delays", "enhanced", "reply"):
        chains[name] = chains[name].astype("string")
    chains["session"] = chains["session"].astype("category")
    chains["source"] = chains["source"].astype("category")
    chains["received"] = pd.to_datetime(chains["received"], utc=True)
    chains["time"] = pd.to_datetime(chains["time"], utc=True)
    return chains.sort_values(["received", "message", "session"], kind="stable", ignore_index=True)


def _per_message(chains: pd.DataFrame) -> pd.DataFrame:
    """The recipients' rows of each message as one row. ``chains`` is sorted by message (see
    :func:`_chains`), so each message's rows are one run: cut at the runs' starts."""
    session = chains["session"].astype(str).to_numpy(dtype=object)
    message = chains["message"].to_numpy(dtype=object)
    if len(chains) == 0:
        starts = np.array([], dtype=np.int64)
    else:
        new = np.r_[True, (session[1:] != session[:-1]) | (message[1:] != message[:-1])]
        starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], len(chains)].astype(np.int64) if len(starts) else starts
    status = chains["status"]
    known = status.notna().to_numpy()
    sent = status.eq("sent").to_numpy(dtype=bool, na_value=False)
    deferred = status.eq("deferred").to_numpy(dtype=bool, na_value=False)

    def per_run(values: np.ndarray, reduce: np.ufunc) -> np.ndarray:
        return reduce.reduceat(values, starts) if len(starts) else values[:0]

    flags = {"any": known, "sent": sent, "deferred": deferred}
    counts = {name: per_run(flag.astype(np.int64), np.add) for name, flag in flags.items()}
    outcome = np.select(
        [counts["any"] == 0, counts["deferred"] > 0, counts["sent"] == counts["any"],
         counts["sent"] > 0],
        [4, 3, 0, 1], default=2,
    )  # fmt: skip
    first = chains.iloc[starts].reset_index(drop=True)
    table = first[["message", "session", "source", "received", "sender", "size"]].copy()
    recipients = chains["recipient"].astype(object).tolist()
    statuses = chains["status"].astype(object).tolist()
    relays = chains["relay"].astype(object).tolist()
    runs = list(zip(starts.tolist(), ends.tolist(), strict=True))
    table["recipients"] = [[r for r in recipients[a:b] if isinstance(r, str)] for a, b in runs]
    table["status"] = [_by_recipient(recipients[a:b], statuses[a:b]) for a, b in runs]
    table["relay"] = [_by_recipient(recipients[a:b], relays[a:b]) for a, b in runs]
    table["outcome"] = pd.Categorical.from_codes(outcome, categories=list(OUTCOMES))
    delay = chains["delay"].to_numpy(dtype="float64")
    table["delay"] = per_run(delay, np.fmax)  # fmax: the largest known, NaN if none is
    attempts = chains["attempts"].to_numpy(dtype="float64", na_value=np.nan)
    table["attempts"] = pd.array(per_run(attempts, np.fmax), dtype="Int64")
    # The decisive recipient: the first that was not sent, else the last.
    position = np.arange(len(chains), dtype=np.int64)
    unsent = per_run(np.where(sent, len(chains), position), np.minimum)
    decisive = np.where(unsent < ends, unsent, ends - 1)
    for name in ("bounce_class", "code", "enhanced", "reply"):
        table[name] = chains[name].iloc[decisive].reset_index(drop=True)
    hops, hosts = chains["hops"].tolist(), chains["hosts"].tolist()
    table["hops"] = [list(dict.fromkeys(h for row in hops[a:b] for h in row)) for a, b in runs]
    table["hosts"] = [list(dict.fromkeys(h for row in hosts[a:b] for h in row)) for a, b in runs]
    return table


def _by_recipient(recipients: list[object], values: list[object]) -> dict[str, object]:
    return {r: (None if v is pd.NA else v) for r, v in zip(recipients, values, strict=True)
            if isinstance(r, str)}  # fmt: skip
