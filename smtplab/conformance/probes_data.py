"""Probes of how the server reads lines and message content (RFC 5321 2.3.8, 4.1.1.4, 4.5.2).

The rule at the heart of these: message content ends with ``<CRLF>.<CRLF>`` and nothing else,
and the server answers the message once, after it. The smuggling probes send, in one packet,
a message whose content holds a *false* end (``<LF>.<LF>`` and its cousins, from the 2023
"SMTP smuggling" research, CVE-2023-51764), a second MAIL command, and then the real end. A
server that takes the false end for the real one answers twice — once for the message, once
for the smuggled command — and that is a fail: a second message could be slipped past the
sending server's checks. Answering once, whether by keeping the bytes as content or by
refusing the message, is a pass.
"""

from __future__ import annotations

from smtplab.conformance.probe import FAIL, PASS, WARN, Probe, Prober, Verdict, said, said_all

HEADER = b"Subject: smtplab conformance probe\r\n\r\n"

#: The false ends of data sent by the smuggling probes, by probe name.
FALSE_ENDS = {
    "smuggling-lf-dot-lf": b"\n.\n",
    "smuggling-lf-dot-crlf": b"\n.\r\n",
    "smuggling-crlf-dot-lf": b"\r\n.\n",
    "smuggling-cr-dot-cr": b"\r.\r",
    "smuggling-cr-dot-crlf": b"\r.\r\n",
    "smuggling-crlf-dot-cr": b"\r\n.\r",
}


def _in_data(p: Prober):  # type: ignore[no-untyped-def]
    """A session that has just been told 354, or a Verdict saying why not.

    The connection's ``marked`` says whether the server answers an unknown command with 500
    or 502 (asked first): then the replies to a message can be counted up to the marker's."""
    connection = p.session()
    marker = connection.marker_answer()
    connection.marked = marker is not None and marker.code in (500, 502)
    replies = [
        connection.command(f"MAIL FROM:<{p.sender}>"),
        connection.command(f"RCPT TO:<{p.recipient}>"),
        connection.command("DATA"),
    ]
    if replies[-1] is None or replies[-1].code != 354:
        connection.quit()
        evidence = said_all(replies)
        return None, Verdict(FAIL, f"could not start a message ({evidence})", evidence)
    return connection, None


def _shown(octets: bytes) -> str:
    """``b"\\n.\\n"`` as ``<LF>.<LF>``."""
    return octets.decode().replace("\r", "<CR>").replace("\n", "<LF>")


def _smuggling(false_end: bytes):  # type: ignore[no-untyped-def]
    def check(p: Prober) -> Verdict:
        connection, problem = _in_data(p)
        if problem is not None:
            return problem
        payload = (
            HEADER
            + b"Before the false end."
            + false_end
            + b"MAIL FROM:<smuggled@example.net>\r\n"
            + b"RCPT TO:<smuggled@example.net>\r\n"
            + b"\r\n.\r\n"
        )
        replies = connection.send_marked(payload, connection.marked)
        closed = connection.closed
        connection.quit()
        evidence = said_all(list(replies))
        shown = _shown(false_end)
        if len(replies) >= 2:
            return Verdict(
                FAIL,
                f"the server ended the message at {shown} and answered what followed as "
                "commands: a smuggled message would be accepted",
                evidence,
            )
        if len(replies) == 1:
            kept = "kept as content" if replies[0].code == 250 else "refused"
            return Verdict(PASS, f"{shown} is not the end of data: one reply ({kept})", evidence)
        how = "closed the connection" if closed else "stayed silent"
        return Verdict(WARN, f"no reply to the message: the server {how}", evidence)

    return check


def _one_reply_to(p: Prober, content: bytes, what: str) -> Verdict:
    """Send a whole message and the final dot at once: exactly one reply must come."""
    connection, problem = _in_data(p)
    if problem is not None:
        return problem
    replies = connection.send_marked(HEADER + content + b".\r\n", connection.marked)
    connection.quit()
    evidence = said_all(list(replies))
    if len(replies) > 1:
        return Verdict(
            FAIL, f"{what}: {len(replies)} replies where one, after the final dot, is due", evidence
        )
    if not replies:
        return Verdict(
            FAIL, f"{what}: no reply to the final dot (RFC 5321 4.1.1.4 requires one)", evidence
        )
    how = "accepted" if replies[0].code == 250 else "refused, which the RFC allows"
    return Verdict(PASS, f"{what}: one reply after the final dot ({how})", evidence)


def dot_stuffing(p: Prober) -> Verdict:
    # A stuffed lone dot and a stuffed dot line (RFC 5321 4.5.2): content, not the end.
    return _one_reply_to(p, b"..\r\n..hidden\r\nlast line\r\n", "stuffed dots are content")


def silent_during_data(p: Prober) -> Verdict:
    return _one_reply_to(p, b"line one\r\nline two\r\nline three\r\n", "message lines")


def text_line_length(p: Prober) -> Verdict:
    return _one_reply_to(p, b"y" * 2000 + b"\r\n", "a 2000-octet text line")


def command_line_length(p: Prober) -> Verdict:
    connection = p.session()
    reply = connection.command("NOOP " + "x" * 600)
    alive = connection.command("NOOP")
    connection.quit()
    evidence = said_all([reply, alive])
    if reply is None:
        return Verdict(FAIL, "no reply to a 606-octet command line", evidence)
    if reply.code == 500:
        return Verdict(
            PASS, "a command line over 512 octets gets 500 (RFC 5321 4.5.3.1.4)", evidence
        )
    if reply.code < 300:
        return Verdict(PASS, "a long command line accepted: no limit, as 4.5.3.1 allows", evidence)
    return Verdict(
        WARN, f"a long command line got {said(reply)} (500 is the RFC's reply)", evidence
    )


def bare_lf_command(p: Prober) -> Verdict:
    connection = p.session()
    replies = connection.send(b"NOOP\n", expect=0)  # silence (waiting for CRLF) passes
    connection.close()
    evidence = said_all(list(replies))
    if not replies:
        return Verdict(PASS, "NOOP<LF> is not a complete line: the server waits for CRLF", evidence)
    if replies[0].code >= 500:
        return Verdict(PASS, "a command ending in a bare LF is refused", evidence)
    return Verdict(
        WARN,
        "a bare LF was taken as a line end: RFC 5321 2.3.8 says lines end with CRLF (lenient, "
        "and the root of smuggling when done inside message data)",
        evidence,
    )


_TRANSPARENCY = "RFC 5321 4.1.1.4, 4.5.2"
PROBES = [
    Probe(
        "silent-during-data",
        "RFC 5321 4.1.1.4",
        "no reply to message lines, one after the dot",
        silent_during_data,
    ),
    Probe("dot-stuffing", "RFC 5321 4.5.2", "stuffed dots are content", dot_stuffing),
    Probe(
        "command-line-length",
        "RFC 5321 4.5.3.1.4",
        "a command line over 512 octets",
        command_line_length,
    ),
    Probe(
        "text-line-length", "RFC 5321 4.5.3.1.6", "a text line over 1000 octets", text_line_length
    ),
    Probe("bare-lf-command", "RFC 5321 2.3.8", "a command ending in a bare LF", bare_lf_command),
    *(
        Probe(name, _TRANSPARENCY, f"{_shown(end)} inside data is not the end", _smuggling(end))
        for name, end in FALSE_ENDS.items()
    ),
]
