"""Each message's hops, read from a transcript's rows: the raw material of ``messages()``.

A *hop* is one host's (or one queue's) handling of a message for one recipient: where it was
received (session, time, queue id, sender, size) and its final delivery attempt there (status,
relay, delay, the reply, and the id the next hop gave it, ``queued as NEWID``). Where the rows
come from:

* **Postfix logs**: the reader's ``note`` rows (see :mod:`smtplab.ingest.postfix`):
  ``ID: queued``, ``ID: from=<sender>, size=N`` and each delivery line as Postfix logged it,
  ``ID: to=<rcpt>, relay=..., delay=S, delays=a/b/c/d, dsn=X.Y.Z, status=WORD (reply)``;
* **Exim logs**: the reader's ``note`` rows, each an Exim line from the message id on: ``<=``
  (sender, ``S=`` size), ``=>`` and ``->`` (delivered; ``H=`` host or ``T=`` transport,
  ``C="reply"``, ``QT=`` time in the queue, ``DT=`` delivery time), ``**`` (failed) and ``==``
  (deferred), each with its error after ``: ``;
* **live sessions** (lab, TCP, captures, client transcripts): each delivered transaction
  (:func:`smtplab.analysis.transactions`), its accepted recipients ``sent`` to the session's
  server; the reply's ``queued as ID`` is both its id and the next hop's (the server's log).

A recipient tried more than once at a hop (``deferred``, then ``sent``) has one hop row: the
last attempt's, with ``attempts`` counting them; the delay is the last attempt's (Postfix's
``delay=`` and Exim's ``QT=`` run from the message's arrival, so they already include the
waits between attempts), counted once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smtplab.analysis.partitioned import per_session
from smtplab.analysis.transactions import transactions

LOG_SOURCES = ("postfix", "exim")
#: A hop row's columns.
COLUMNS = [
    "session", "source", "queue", "received", "sender", "size", "recipient", "status", "time",
    "relay", "delay", "delays", "transmission", "attempts", "code", "enhanced", "reply", "next",
]  # fmt: skip

_QUEUE = r"^(?P<queue>[0-9A-Za-z]+): "
_POSTFIX_QUEUED = _QUEUE + r"queued$"
_POSTFIX_FROM = _QUEUE + r"from=<(?P<sender>[^>]*)>, size=(?P<size>\d+)"
_POSTFIX_TO = (
    _QUEUE + r"to=<(?P<recipient>[^>]*)>(?:,.*?)? status=(?P<status>\w+)(?: \((?P<reply>.*)\))?$"
)
_EXIM_ID = r"^(?P<queue>[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}) "
_EXIM_ARRIVAL = _EXIM_ID + r"<= (?P<sender><>|\S+)"
_EXIM_DELIVERY = (
    _EXIM_ID + r"(?P<event>=>|->|\*\*|==|\*>) (?P<first>\S+)(?: <(?P<original>[^>]*)>)?"
)
#: A reply's code and enhanced code where a reply text holds one (``host X said: 550 5.1.1``).
_REPLY_CODE = (
    r"(?:^|\s|\")(?P<code>[245]\d\d)(?=[ -]|$)(?:[ -](?P<enhanced>[245]\.\d{1,3}\.\d{1,3})\b)?"
)
_TRANSMISSION = r", delays=[\d.]+/[\d.]+/[\d.]+/([\d.]+),"  # Postfix's d: the transmission
_QUEUED_AS = r"queued as (?P<next>[0-9A-Za-z][0-9A-Za-z.-]*[0-9A-Za-z])"
_EXIM_STATUS = {"=>": "sent", "->": "sent", "**": "bounced", "==": "deferred", "*>": "suppressed"}


@per_session
def hops(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per message and recipient at each hop the rows show (see the module docstring),
    in the order the messages were received; a message with no delivery line yet (still in the
    queue where the log ends) has one row with no recipient."""
    if not frame.index.is_unique:  # (rows are told apart by their index below)
        frame = frame.reset_index(drop=True)
    source = frame["source"].astype(str)
    logged = source.isin(LOG_SOURCES).to_numpy()
    notes = frame[logged & (frame["kind"] == "note").to_numpy() & frame["text"].notna().to_numpy()]
    parts = [
        _postfix(notes[notes["source"] == "postfix"], _refused_after_data(frame[logged])),
        _exim(notes[notes["source"] == "exim"]),
        _live(frame[~logged]),
    ]
    table = pd.concat([part for part in parts if len(part)] or parts[:1], ignore_index=True)
    return table.sort_values(["received", "queue", "session"], kind="stable", ignore_index=True)[
        COLUMNS
    ]


def _records(notes: pd.DataFrame, arrivals: pd.DataFrame, deliveries: pd.DataFrame) -> pd.DataFrame:
    """Messages (a queue id in a session: from ``arrivals``, its sender and size, the first
    line of each) joined with each recipient's last delivery attempt (``deliveries``, in log
    order). ``arrivals`` and ``deliveries`` are indexed as the ``notes`` they were read from."""
    session = notes["session"].astype(str)
    seen = pd.DataFrame(
        {
            "session": session,
            "queue": notes["queue"],
            "received": notes["time"],
            "source": notes["source"].astype(str),
        }
    )
    keys = ["session", "queue"]
    records = seen.groupby(keys, sort=False).agg(
        received=("received", "min"), source=("source", "first")
    )
    arrivals = arrivals.assign(session=session.reindex(arrivals.index))
    first = arrivals.drop_duplicates(keys).set_index(keys)[["sender", "size"]]
    records = records.join(first, how="left").reset_index()
    deliveries = deliveries.assign(session=session.reindex(deliveries.index))
    mine = [*keys, "recipient"]
    attempts = deliveries.groupby(mine, sort=False).size().rename("attempts")
    final = deliveries.drop_duplicates(mine, keep="last").join(attempts, on=mine)
    table = records.merge(final, on=keys, how="left")
    table["size"] = pd.to_numeric(table["size"]).astype("Int64")
    table["attempts"] = table["attempts"].astype("Int64")
    return table


def _refused_after_data(frame: pd.DataFrame) -> pd.DataFrame:
    """The sessions and times of refusals after the final dot (Postfix's ``reject:
    END-OF-MESSAGE``): the message smtpd had given a queue id to was not taken."""
    code = frame["code"].to_numpy(dtype="float64", na_value=np.nan)
    refused = (frame["kind"] == "reply").to_numpy() & (frame["verb"] == "DATA-END").to_numpy()
    rows = frame[refused & (code >= 400)]
    return pd.DataFrame({"session": rows["session"].astype(str), "refused": rows["time"]})


def _postfix(notes: pd.DataFrame, refused: pd.DataFrame) -> pd.DataFrame:
    text = notes["text"].astype(str)
    queue = text.str.extract(_QUEUE, expand=False)
    known = notes.assign(queue=queue)[
        text.str.match(_POSTFIX_QUEUED)
        | text.str.match(_POSTFIX_FROM)
        | text.str.match(_POSTFIX_TO)
    ]
    arrivals = text.str.extract(_POSTFIX_FROM).dropna(subset=["queue"])
    to = text.str.extract(_POSTFIX_TO)
    lines = text[to["queue"].notna()]
    to = to.dropna(subset=["queue"])
    reply = to["reply"]
    code = reply.str.extract(_REPLY_CODE)
    dsn = lines.str.extract(r", dsn=(\d\.\d{1,3}\.\d{1,3}),", expand=False)
    deliveries = pd.DataFrame({
        "queue": to["queue"], "recipient": to["recipient"], "status": to["status"],
        "time": notes.loc[to.index, "time"],
        "relay": lines.str.extract(r", relay=([^,]*),", expand=False),
        "delay": pd.to_numeric(lines.str.extract(r", delay=([\d.]+),", expand=False)),
        "delays": lines.str.extract(r", delays=([\d./]+),", expand=False),
        "transmission": pd.to_numeric(lines.str.extract(_TRANSMISSION, expand=False)),
        "code": pd.to_numeric(code["code"]), "enhanced": dsn.fillna(code["enhanced"]),
        "reply": reply, "next": reply.str.extract(_QUEUED_AS, expand=False),
    })  # fmt: skip
    table = _records(known, arrivals, deliveries)
    # A queue id of a message refused at its end, with no delivery: no message after all.
    if len(refused) and len(table):
        undelivered = table[table["recipient"].isna()].reset_index()
        late = undelivered.merge(refused, on="session")
        late = late[late["refused"] >= late["received"]]
        table = table.drop(index=late["index"].unique())
    return table


def _exim(notes: pd.DataFrame) -> pd.DataFrame:
    text = notes["text"].astype(str)
    arrival = text.str.extract(_EXIM_ARRIVAL)
    delivery = text.str.extract(_EXIM_DELIVERY)
    known = notes.assign(queue=arrival["queue"].fillna(delivery["queue"]))
    known = known[known["queue"].notna() & (arrival["queue"].notna() | delivery["queue"].notna())]
    lines = text[arrival["queue"].notna()]
    arrivals = pd.DataFrame({
        "queue": arrival["queue"].dropna(),
        "sender": arrival["sender"].dropna().replace("<>", ""),
        "size": lines.str.extract(r" S=(\d+)", expand=False),
    })  # fmt: skip
    lines = text[delivery["queue"].notna()]
    delivery = delivery.dropna(subset=["queue"])
    # The error of a failure or deferral follows the first ": " after the fields; a delivery's
    # reply is its C="..." (the next hop's, with its "queued as").
    error = lines.str.extract(r": (.*?)(?: DT=[\d.]+s)?$", expand=False)
    confirmation = lines.str.extract(r' C="((?:[^"\\]|\\.)*)"', expand=False)
    sent = delivery["event"].isin(["=>", "->"])
    reply = confirmation.where(sent, error)
    deferral = lines.str.extract(r" (defer \(-?\d+\))", expand=False)
    reply = reply.where(~reply.isna() | deferral.isna(), deferral)
    code = reply.str.extract(_REPLY_CODE)
    deliveries = pd.DataFrame({
        "queue": delivery["queue"],
        "recipient": delivery["original"].fillna(delivery["first"]),
        "status": delivery["event"].map(_EXIM_STATUS),
        "time": notes.loc[delivery.index, "time"],
        "relay": lines.str.extract(r" H=(\S+ \[[^\]]+\](?::\d+)?)", expand=False).fillna(
            lines.str.extract(r" T=(\S+)", expand=False)),
        "delay": _seconds(lines, "QT"),
        "delays": pd.Series(pd.NA, index=lines.index, dtype="string"),
        "transmission": _seconds(lines, "DT"),
        "code": pd.to_numeric(code["code"]), "enhanced": code["enhanced"],
        "reply": reply, "next": reply.str.extract(_QUEUED_AS, expand=False),
    })  # fmt: skip
    return _records(known, arrivals, deliveries)


def _seconds(lines: pd.Series, field: str) -> pd.Series:
    """Exim's ``QT=1m2s`` / ``DT=0.004s`` fields in seconds (``w``, ``d``, ``h``, ``m``, ``s``)."""
    value = lines.str.extract(rf" {field}=((?:\d+[wdhm])*[\d.]+s|(?:\d+[wdhm])+)", expand=False)
    parts = value.str.extractall(r"(?P<number>[\d.]+)(?P<unit>[wdhms])")
    if parts.empty:
        return pd.Series(np.nan, index=lines.index)
    scale = parts["unit"].map({"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0})
    seconds = (pd.to_numeric(parts["number"]) * scale).groupby(level=0).sum()
    return seconds.reindex(lines.index)


def _live(frame: pd.DataFrame) -> pd.DataFrame:
    """Delivered transactions of live sessions: one hop row per accepted recipient."""
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    table = transactions(frame)
    table = table[table["outcome"] == "delivered"]
    servers = frame.groupby("session", observed=True)["server"].first().astype("string")
    sources = frame.groupby("session", observed=True)["source"].first().astype(str)
    session = table["session"].astype(str)
    next_queue = table["text"].str.extract(_QUEUED_AS, expand=False)
    rows = pd.DataFrame({
        "session": session, "source": session.map(sources),
        "queue": next_queue.fillna(session + "#" + table["transaction"].astype(str)),
        "received": table["start"], "sender": table["mail_from"],
        "size": table["size"].astype("Int64"), "recipient": table["recipients"],
        "status": "sent", "time": table["start"], "relay": session.map(servers),
        "delay": np.nan, "delays": pd.NA, "transmission": np.nan, "attempts": 1,
        "code": table["code"].astype("float64"), "enhanced": table["enhanced"].astype(object),
        "reply": table["text"], "next": next_queue,
    })  # fmt: skip
    rows = rows.explode("recipient", ignore_index=True)
    rows["attempts"] = rows["attempts"].astype("Int64")
    return rows
