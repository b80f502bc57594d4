"""Protocol settings of a server connection: limits, extensions, bare line-end handling.

Settings are what a user writes (``ServerConfig(line_endings="normalize")``); the connection
logic that obeys them is :mod:`smtplab.protocol.server`.
"""

from __future__ import annotations

from dataclasses import dataclass

from smtplab.protocol.framing import LineEndings

DEFAULT_EXTENSIONS = frozenset(
    {"PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN", "CHUNKING"}
)


@dataclass(frozen=True)
class ServerConfig:
    """Protocol settings of a server connection (policy lives elsewhere).

    ``extensions`` are the EHLO keywords the server supports (beyond the defaults it knows
    ``STARTTLS``, ``AUTH`` and ``BINARYMIME``, RFC 3030 3, which is off by default as in
    Postfix); ``max_message_size`` is the SIZE limit (RFC 1870), ``None`` for none.
    """

    max_command_line: int = 512  # octets with CRLF, RFC 5321 4.5.3.1.4
    max_text_line: int = 1000  # octets with CRLF, RFC 5321 4.5.3.1.6
    max_message_size: int | None = 10 * 1024 * 1024
    max_recipients: int | None = 1000  # RFC 5321 4.5.3.1.8 asks for at least 100
    line_endings: LineEndings = LineEndings.REJECT
    extensions: frozenset[str] = DEFAULT_EXTENSIONS
    enhanced_status_codes: bool = True
    # AUTH (RFC 4954), when "AUTH" is among the extensions: offered under TLS only, unless
    # auth_without_tls says a plaintext lab may (RFC 4954 4 warns against it).
    auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN")
    auth_without_tls: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.line_endings, LineEndings):
            object.__setattr__(self, "line_endings", LineEndings(self.line_endings))
        extensions = frozenset(e.upper() for e in self.extensions)
        if not self.enhanced_status_codes:  # the flag is a shorthand for leaving the keyword out
            extensions -= {"ENHANCEDSTATUSCODES"}
        object.__setattr__(self, "extensions", extensions)
        if self.max_command_line < 512 or self.max_text_line < 1000:
            raise ValueError("RFC 5321 4.5.3.1 requires limits of at least 512 and 1000 octets")
        if "BINARYMIME" in extensions and not {"CHUNKING", "8BITMIME"} <= extensions:
            raise ValueError("BINARYMIME needs CHUNKING and 8BITMIME too (RFC 3030 3)")
        if self.max_recipients is not None and self.max_recipients < 100:
            raise ValueError("RFC 5321 4.5.3.1.8 requires accepting at least 100 recipients")

    def ehlo_keywords(self) -> list[str]:
        """The EHLO reply lines after the first, in a stable order (RFC 5321 4.1.1.1)."""
        keywords = []
        for name in sorted(self.extensions):
            if name == "SIZE" and self.max_message_size is not None:
                keywords.append(f"SIZE {self.max_message_size}")
            elif name == "AUTH":
                keywords.append(" ".join(["AUTH", *self.auth_mechanisms]))
            else:
                keywords.append(name)
        return keywords
