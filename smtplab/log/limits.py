"""How much of what a peer or a file sent a transcript row keeps: every text field is bounded.

A row is kept for as long as its transcript, so nothing a client, a server or a damaged file
sends may make one grow without bound: a 10 MB message or BDAT chunk whose first line has no
line end, a 1 MB command line, a reply of 1000 lines of 64 KB, a huge log line. A row keeps at
most these many characters of each field; a field that was cut ends in :data:`CUT`, and the
true size of a message block stays in its row's ``size`` (octets) and ``lines``.
"""

from __future__ import annotations

#: Lines of a message block (DATA, or a BDAT chunk) shown in its row's ``text``.
PREVIEW_LINES = 3
#: Characters of those lines at most, the line breaks (``\\n``) included.
PREVIEW_CHARS = 300
#: Octets of a block's start that its preview looks at (a UTF-8 character has at most 4).
PREVIEW_OCTETS = PREVIEW_CHARS * 4
#: Characters of a command's ``argument`` (a legal command line has at most 512 octets).
MAX_ARGUMENT = 1024
#: Characters of any other ``text``: a reply's lines, a note, a close or TLS row.
MAX_TEXT = 4096
#: The mark at the end of a field that was cut.
CUT = "…"

_CRLF = b"\r\n"


def clip(text: str, limit: int) -> str:
    """``text``, or its first ``limit - 1`` characters and :data:`CUT` when it is longer."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + CUT


def preview(content: bytes) -> str:
    """The first lines of message content, as text for the ``text`` column, at most
    :data:`PREVIEW_CHARS` characters of at most :data:`PREVIEW_LINES` lines.

    Only the first :data:`PREVIEW_OCTETS` octets of ``content`` are looked at, so the cost and
    the result stay small whatever the content's size, and a reader that keeps only those and
    one more (to tell that there is more) gets the same preview.
    """
    head = content[:PREVIEW_OCTETS]
    lines = head.split(_CRLF, PREVIEW_LINES)
    # The first lines are all there when a line end follows the last of them, or when the
    # content ends within the head.
    whole = len(lines) > PREVIEW_LINES or len(head) == len(content)
    lines = lines[:PREVIEW_LINES]
    if len(lines) > 1 and not lines[-1]:
        del lines[-1]  # the CRLF that ends the last line opens no new one
    text = "\n".join(line.decode("utf-8", "replace") for line in lines)
    if whole:
        return clip(text, PREVIEW_CHARS)
    return text[: PREVIEW_CHARS - 1] + CUT
