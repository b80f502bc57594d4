"""Delivery Status Notification parameters: RET and ENVID on MAIL, NOTIFY and ORCPT on RCPT.

RFC 3461 lets a client say what it wants to hear back about a message: the whole message or
only its headers in a bounce (``RET=FULL|HDRS``), an envelope id to quote (``ENVID=``), for
which outcomes to notify per recipient (``NOTIFY=NEVER`` or some of ``SUCCESS,FAILURE,DELAY``),
and the recipient's original address (``ORCPT=rfc822;...``). Values of ENVID and ORCPT are
*xtext* (RFC 3461 4): printable ASCII, with ``+`` and ``=`` and anything else written ``+XX``.
This module checks the values; the server keeps them with the envelope.
"""

from __future__ import annotations

import re

_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")  # xchar is "!".."~" but "+" and "="
_ADDR_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+")  # an atom (RFC 3461 4.2)
NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})
MAX_ENVID = 100  # RFC 3461 4.4
MAX_ORCPT = 500  # RFC 3461 4.2


def is_xtext(value: str) -> bool:
    return _XTEXT.fullmatch(value) is not None


def decode_xtext(value: str) -> str:
    """``"a+2Bb"`` -> ``"a+b"``."""
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


def check_mail(params: dict[str, str | None]) -> str | None:
    """What is wrong with MAIL's RET/ENVID, or None."""
    if "RET" in params and (params["RET"] or "").upper() not in ("FULL", "HDRS"):
        return "Bad RET parameter: RET=FULL or RET=HDRS (RFC 3461 4.3)"
    if "ENVID" in params:
        envid = params["ENVID"] or ""
        if not envid or len(envid) > MAX_ENVID or not is_xtext(envid):
            return f"Bad ENVID parameter: 1 to {MAX_ENVID} characters of xtext (RFC 3461 4.4)"
    return None


def check_rcpt(params: dict[str, str | None]) -> str | None:
    """What is wrong with RCPT's NOTIFY/ORCPT, or None."""
    if "NOTIFY" in params:
        words = [w.upper() for w in (params["NOTIFY"] or "").split(",")]
        never = words == ["NEVER"]
        if not never and (not set(words) <= NOTIFY_VALUES or len(set(words)) != len(words)):
            return "Bad NOTIFY parameter: NEVER, or some of SUCCESS,FAILURE,DELAY (RFC 3461 4.1)"
    if "ORCPT" in params:
        orcpt = params["ORCPT"] or ""
        addr_type, semicolon, address = orcpt.partition(";")
        if (
            not semicolon
            or not _ADDR_TYPE.fullmatch(addr_type)
            or not address
            or not is_xtext(address)
            or len(orcpt) > MAX_ORCPT
        ):
            return "Bad ORCPT parameter: ORCPT=addr-type;xtext, e.g. rfc822;a@b (RFC 3461 4.2)"
    return None
