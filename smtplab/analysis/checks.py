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

from smtplab.analysis.steps import keys, ordered, paired_reply_to, session_codes, steps
from smtplab.protocol.states import GROUP_ENDERS, POSITIVE_CODES, Step

COLUMNS = ["session", "seq", "check", "detail", "rfc"]


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
    table = table.sort_values(["session", "seq"], kind="stable").reset_index(drop=True)
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
    enhanced = frame["enhanced"].astype("string")
    code = frame["code"].astype("string")
    first = enhanced.str[0]
    odd = (first.notna() & code.notna() & (first != code.str[0])).to_numpy(bool, na_value=False)
    rows = frame[odd]
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
    kind = frame["kind"].to_numpy(dtype=object)
    reply_to = paired_reply_to(frame, codes)
    is_step = np.isin(kind, ("connect", "command", "data"))
    step_keys = np.sort(keys(codes[is_step], frame["seq"].to_numpy()[is_step]))
    is_reply = kind == "reply"
    target = keys(codes, np.nan_to_num(reply_to, nan=0).astype(np.int64))
    position = np.searchsorted(step_keys, target).clip(0, max(len(step_keys) - 1, 0))
    answers = np.zeros(len(frame), dtype=bool)
    if len(step_keys):
        answers = (step_keys[position] == target) & ~np.isnan(reply_to)
    unsolicited_421 = frame["code"].to_numpy("float64", na_value=np.nan) == 421
    odd = is_reply & ~answers & ~unsolicited_421
    rows = frame[odd]
    detail = "reply " + rows["code"].astype("string").fillna("?") + " answers no command"
    return _found(rows, "reply without command", detail, "RFC 5321 4.2")


def _unexpected_reply(step: pd.DataFrame) -> pd.DataFrame:
    verb = step["verb"].to_numpy(dtype=object)
    last_chunk = (verb == "BDAT") & step["argument"].str.upper().str.endswith("LAST").fillna(
        False
    ).to_numpy()
    key = np.where(last_chunk, Step.BDAT_LAST, verb)
    code = step["code"].to_numpy("float64", na_value=np.nan)
    allowed = np.array(
        [
            c != c or c >= 400 or k not in POSITIVE_CODES or int(c) in POSITIVE_CODES[k]
            for k, c in zip(key, code, strict=True)
        ],
        dtype=bool,
    )
    rows = step[~allowed]
    detail = (
        rows["verb"].astype("string")
        + " cannot be answered "
        + rows["code"].astype("string")
        + " (a positive reply it may get: "
        + pd.Series([_codes(k) for k in key[~allowed]], index=rows.index, dtype="string")
        + ")"
    )
    return _found(rows, "unexpected reply", detail, "RFC 5321 4.3.2")


def _codes(step: str) -> str:
    return ", ".join(str(c) for c in sorted(POSITIVE_CODES[step]))


def _pipelining(step: pd.DataFrame) -> list[pd.DataFrame]:
    codes = session_codes(step)
    verb = step["verb"].to_numpy(dtype=object)
    pipelined = step["pipelined"].to_numpy(bool)
    previous_verb = np.concatenate([np.array([None], dtype=object), verb[:-1]])

    early = pipelined & (previous_verb == "CONNECT")
    rows = step[early]
    found = [
        _found(
            rows,
            "talked before greeting",
            rows["verb"].astype("string") + " sent before the server's greeting",
            "RFC 5321 3.1",
        )
    ]

    ehlo_text = step["text"].astype("string").where(verb == "EHLO")
    offers = ehlo_text.str.contains(r"(?m)^PIPELINING\b", regex=True).fillna(False).to_numpy()
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

    after_ender = pipelined & ~early & np.isin(previous_verb, list(GROUP_ENDERS))
    rows = step[after_ender]
    found.append(
        _found(
            rows,
            "group not ended",
            rows["verb"].astype("string")
            + " pipelined after "
            + pd.Series(previous_verb[after_ender], index=rows.index, dtype="string")
            + ", which must end a group",
            "RFC 2920 3.1",
        )
    )
    return found
