"""SASL for SMTP AUTH (RFC 4954): the PLAIN (RFC 4616) and LOGIN exchanges, server side.

A :class:`SaslServer` takes the client's responses one at a time (the initial response of the
AUTH command, then each line answering a 334) and says what comes next: another challenge,
the credentials to check, or a failure with the reply RFC 4954 asks for. It does no I/O and
checks no password: that is the policy's job.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from smtplab.protocol.events import Reply


@dataclass(frozen=True, slots=True)
class Challenge:
    """Send ``334 <base64 of text>`` and wait for the client's next line."""

    text: str

    def reply(self) -> Reply:
        return Reply(334, base64.b64encode(self.text.encode()).decode())


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the client presented; the password never appears in a repr."""

    mechanism: str
    username: str
    password: str = field(repr=False)


CANCELLED = Reply(501, "Authentication cancelled", "5.0.0")  # the client sent "*" (4954 4)
UNDECODABLE = Reply(501, "Cannot decode the response: base64 expected", "5.5.2")
MALFORMED = Reply(501, "Malformed authentication response", "5.5.2")


class SaslServer:
    """One AUTH exchange for ``mechanism`` (PLAIN or LOGIN)."""

    def __init__(self, mechanism: str) -> None:
        if mechanism not in ("PLAIN", "LOGIN"):
            raise ValueError(f"unsupported SASL mechanism {mechanism!r}")
        self.mechanism = mechanism
        self._username: str | None = None

    def step(self, response: str | None) -> Challenge | Credentials | Reply:
        """The next move after ``response`` (``None``: AUTH had no initial response)."""
        if response is not None and response.strip() == "*":
            return CANCELLED
        if response is None:
            # PLAIN: an empty challenge asks for the whole response (RFC 4616 2);
            # LOGIN: the traditional prompts, "Username:" then "Password:".
            return Challenge("" if self.mechanism == "PLAIN" else "Username:")
        decoded = _b64decode(response)
        if decoded is None:
            return UNDECODABLE
        if self.mechanism == "PLAIN":
            parts = decoded.split("\0")
            if len(parts) != 3 or not parts[1]:
                return MALFORMED  # authzid NUL authcid NUL passwd
            return Credentials("PLAIN", parts[1], parts[2])
        if self._username is None:
            self._username = decoded
            return Challenge("Password:")
        return Credentials("LOGIN", self._username, decoded)


def _b64decode(text: str) -> str | None:
    text = text.strip()
    if text == "=":  # an empty initial response (RFC 4954 4)
        return ""
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
