"""Protocol oddities in a transcript: what a careful reader of the RFCs would point at.

:func:`oddities` returns one row per finding, with the RFC section that says why it is odd:

* ``enhanced class`` — an enhanced status code whose class differs from the reply code's
  first digit (``550 4.1.1``; RFC 3463 3.1, RFC 2034 4);
* ``reply without command`` — a reply that answers nothing (an unsolicited 421 is allowed,
  RFC 5321 3.8, and not reported);
* ``unexpected reply`` — a positive reply that the command cannot get (``250`` to DATA,
  RFC 5321 4.3.2), judged by the engine's own table;
* ``talked before greeting`` — the client sent before the server's greeting (RFC 5321 3.1,
  4.3.1; Postfix's "improper command pipelining after CONNECT");
* ``pipelining not offered`` — commands sent without waiting for replies to a server that
  did not advertise PIPELINING (RFC 2920 3.1);
* ``group not ended`` — a pipelined command after one that must end a group (EHLO, DATA,
  VRFY, EXPN, QUIT, NOOP, ...; RFC 2920 3.1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from smtplab.analysis.partitioned import per_session
from smtplab.analysis.steps import (
    Verbs,
    keys,
    lookup,
    ordered,
    paired_reply_to,
    session_codes,
    steps,
)
from smtplab.protocol.states import GROUP_ENDERS, POSITIVE_CODES, Step

COLUMNS = ["session", "seq", "check", "detail", "rfc"]


def by_session_and_seq(table: pd.DataFrame) -> pd.DataFrame:
    """Oddities by session name, and by ``seq`` within a session."""
    return table.sort_values(["session", "seq"], kind="stable").reset_index(drop=True)


@per_session(then=by_session_and_seq)
def oddities(frame: pd.DataFrame) -> pd.DataFrame:
    """Every protocol oddity found in ``frame``, one row each, in session order."""
    frame = ordered(frame)
    step = steps(frame)
    found = [
        _enhanced_class(frame),
        _reply_without_command(frame),
        _unexpected_reply(step),
        *_pipelining(step),
    ]
    table = (
        pd.concat([f for f in found if len(f)], ignore_index=True)
        if any(len(f) for f in found)
        else pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    )
    table = by_session_and_seq(table)
    table["check"] = table["check"].astype("category")
    return table[COLUMNS]


def _found(rows: pd.DataFrame, check: str, detail: pd.Series | str, rfc: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "session": rows["session"].to_numpy(dtype=object),
            "seq": rows["seq"].to_numpy(),
            "check": check,
            "detail": detail if isinstance(detail, str) else detail.to_numpy(dtype=object),
            "rfc": rfc,
        }
    )


def _enhanced_class(frame: pd.DataFrame) -> pd.DataFrame:
    # Only rows with both codes can disagree: the strings are made for those alone.
    both = np.flatnonzero(frame["enhanced"].notna().to_numpy() & frame["code"].notna().to_numpy())
    enhanced = frame["enhanced"].iloc[both].astype("string")
    code = frame["code"].iloc[both].astype("string")
    first = enhanced.str[0]
    odd = (first.notna() & (first != code.str[0])).to_numpy(bool, na_value=False)
    rows = frame.iloc[both[odd]]
    detail = (
        "reply "
        + code[odd]
        + " "
        + enhanced[odd]
        + ": the enhanced class "
        + first[odd]
        + " does not match the code's first digit"
    )
    return _found(rows, "enhanced class", detail, "RFC 3463 3.1")


def _reply_without_command(frame: pd.DataFrame) -> pd.DataFrame:
    codes = session_codes(frame)
    kind = Verbs(frame["kind"])
    reply_to = paired_reply_to(frame, codes)
    seq = frame["seq"].to_numpy()
    is_step = kind("connect", "command", "data")
    step_keys = keys(codes[is_step], seq[is_step])  # sorted: the frame is ordered
    replies = np.flatnonzero(kind("reply"))
    answered = reply_to[replies]
    _, found = lookup(step_keys, keys(codes[replies], np.nan_to_num(answered).astype(np.int64)))
    answers = found & ~np.isnan(answered)
    unsolicited_421 = frame["code"].to_numpy("float64", na_value=np.nan)[replies] == 421
    rows = frame.iloc[replies[~answers & ~unsolicited_421]]
    detail = "reply " + rows["code"].astype("string").fillna("?") + " answers no command"
    return _found(rows, "reply without command", detail, "RFC 5321 4.2")


def _unexpected_reply(step: pd.DataFrame) -> pd.DataFrame:
    verb = Verbs(step["verb"])
    bdat = np.flatnonzero(verb("BDAT"))
    last_chunk = np.zeros(len(step), dtype=bool)
    ends_last = step["argument"].iloc[bdat].str.upper().str.endswith("LAST")
    last_chunk[bdat] = ends_last.fillna(False).to_numpy(bool)
    code = step["code"].to_numpy("float64", na_value=np.nan)
    positive = code < 400  # missing: False
    # What a step may be answered is looked up per step name in the engine's table (a few
    # dozen names), each name's rows at once; a BDAT ending in LAST is looked up as BDAT-LAST.
    unexpected = np.zeros(len(step), dtype=bool)
    key = np.full(len(step), "", dtype=object)  # the name a flagged row was looked up by
    for name, codes in POSITIVE_CODES.items():
        looked_up = verb(name) & ~last_chunk
        if name == Step.BDAT_LAST:
            looked_up |= last_chunk
        odd = looked_up & positive & ~np.isin(code, list(codes))
        unexpected |= odd
        key[odd] = name
    rows = step[unexpected]
    detail = (
        rows["verb"].astype("string")
        + " cannot be answered "
        + rows["code"].astype("string")
        + " (a positive reply it may get: "
        + pd.Series([_codes(k) for k in key[unexpected]], index=rows.index, dtype="string")
        + ")"
    )
    return _found(rows, "unexpected reply", detail, "RFC 5321 4.3.2")


def _codes(step: str) -> str:
    return ", ".join(str(c) for c in sorted(POSITIVE_CODES[step]))


def _pipelining(step: pd.DataFrame) -> list[pd.DataFrame]:
    codes = session_codes(step)
    verb = Verbs(step["verb"])
    pipelined = step["pipelined"].to_numpy(bool)

    def after(*verbs: str) -> np.ndarray:
        """Which steps come right after one of ``verbs``."""
        return np.concatenate([[False], verb(*verbs)[:-1]])

    early = pipelined & after("CONNECT")
    rows = step[early]
    found = [
        _found(
            rows,
            "talked before greeting",
            rows["verb"].astype("string") + " sent before the server's greeting",
            "RFC 5321 3.1",
        )
    ]

    ehlo = np.flatnonzero(verb("EHLO"))
    ehlo_text = step["text"].iloc[ehlo].astype("string")
    offers = ehlo[ehlo_text.str.contains(r"(?m)^PIPELINING\b", regex=True).fillna(False).to_numpy()]
    offered = np.zeros(codes.max() + 1 if len(codes) else 0, dtype=bool)
    offered[codes[offers]] = True
    not_offered = pipelined & ~early & ~offered[codes] if len(codes) else pipelined
    rows = step[not_offered]
    found.append(
        _found(
            rows,
            "pipelining not offered",
            rows["verb"].astype("string") + " sent before the previous reply, without PIPELINING",
            "RFC 2920 3.1",
        )
    )

    after_ender = pipelined & ~early & after(*GROUP_ENDERS)
    rows = step[after_ender]
    previous_verb = step["verb"].shift(1)[after_ender]
    found.append(
        _found(
            rows,
            "group not ended",
            rows["verb"].astype("string")
            + " pipelined after "
            + previous_verb.astype("string")
            + ", which must end a group",
            "RFC 2920 3.1",
        )
    )
    return found
