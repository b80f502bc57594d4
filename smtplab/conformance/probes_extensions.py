"""Probes of ESMTP extensions the server advertises, and of its replies' syntax.

Each extension probe is ``n/a`` when EHLO does not list the extension: an extension is a
promise, and only a promise made can be broken.
"""

from __future__ import annotations

from smtplab.analysis.checks import oddities
from smtplab.conformance.probe import (
    FAIL,
    NOT_APPLICABLE,
    PASS,
    WARN,
    Probe,
    Prober,
    Verdict,
    said,
    said_all,
)
from smtplab.protocol.events import Reply


def pipelining(p: Prober) -> Verdict:
    connection = p.session()
    group = (
        f"MAIL FROM:<{p.sender}>\r\nRCPT TO:<{p.recipient}>\r\nRCPT TO:<{p.recipient}>\r\nDATA\r\n"
    ).encode()
    replies = connection.send(group, expect=4, wait=0.0)
    codes = [reply.code for reply in replies]
    if codes == [250, 250, 250, 354]:
        end = connection.send(b"Subject: pipelined probe\r\n\r\nhi\r\n.\r\n")
        connection.quit()
        evidence = said_all([*replies, *end])
        return Verdict(
            PASS, "MAIL, two RCPTs and DATA sent at once: four replies, in order", evidence
        )
    connection.quit()
    evidence = said_all(list(replies))
    return Verdict(
        FAIL,
        f"a pipelined group must get one reply per command, in order (250 250 250 354); got "
        f"{evidence}",
        evidence,
    )


def size(p: Prober) -> Verdict:
    limit_text = p.extensions.get("SIZE", "").strip()
    if limit_text and not (limit_text.isascii() and limit_text.isdigit()):
        return Verdict(WARN, "SIZE advertised with a parameter that is not a number (RFC 1870 4)")
    if not limit_text or int(limit_text) == 0:
        return Verdict(PASS, "SIZE advertised without a limit: nothing to exceed")
    limit = int(limit_text)
    connection = p.session()
    within = connection.command(f"MAIL FROM:<{p.sender}> SIZE={max(limit // 2, 1)}")
    connection.command("RSET")
    over = connection.command(f"MAIL FROM:<{p.sender}> SIZE={limit + 1}")
    connection.quit()
    evidence = said_all([within, over])
    if within is None or within.code != 250:
        return Verdict(
            FAIL, f"a declared size within the limit was refused ({said(within)})", evidence
        )
    if over is not None and over.code == 552:
        return Verdict(PASS, f"a declared size over {limit} octets gets 552", evidence)
    if over is not None and over.code >= 500:
        return Verdict(
            WARN, f"a size over the limit refused with {said(over)} (RFC 1870: 552)", evidence
        )
    return Verdict(
        FAIL,
        f"MAIL declaring {limit + 1} octets over a limit of {limit} got {said(over)}",
        evidence,
    )


def chunking(p: Prober) -> Verdict:
    connection = p.session()
    replies = [
        connection.command(f"MAIL FROM:<{p.sender}>"),
        connection.command(f"RCPT TO:<{p.recipient}>"),
    ]
    body = b"Subject: chunked probe\r\n\r\nhi\r\n"
    first = connection.send(b"BDAT 10\r\n" + body[:10], expect=1)
    last = connection.send(b"BDAT %d LAST\r\n" % (len(body) - 10) + body[10:], expect=1)
    connection.quit()
    replies += [first[0] if first else None, last[0] if last else None]
    evidence = said_all(replies)
    if all(reply is not None and reply.code == 250 for reply in replies):
        return Verdict(PASS, "a message in two BDAT chunks accepted, one reply per chunk", evidence)
    return Verdict(FAIL, f"BDAT chunks got {evidence}", evidence)


def starttls_injection(p: Prober) -> Verdict:
    connection = p.session()
    # A command pipelined after STARTTLS, in the same packet: it arrived in clear text and
    # must be thrown away, not run under TLS (RFC 3207 4.2; CVE-2011-0411).
    replies = connection.send(b"STARTTLS\r\nNOOP\r\n", expect=1, wait=0.0)
    if not replies or replies[0].code != 220:
        connection.quit()
        return _no_tls(replies[0] if replies else None)
    try:
        connection.start_tls()
    except ConnectionError as error:
        return Verdict(FAIL, str(error), said(replies[0]))
    injected = connection.read(expect=0)  # a reply to the NOOP would come now
    connection.quit()
    evidence = said_all([*replies, *injected])
    if injected or len(replies) > 1:
        return Verdict(
            FAIL,
            "the command sent after STARTTLS in clear text was answered: it was kept and run "
            "under TLS (the STARTTLS command injection flaw)",
            evidence,
        )
    return Verdict(PASS, "input pipelined before the TLS handshake was discarded", evidence)


def _no_tls(reply: Reply | None) -> Verdict:
    if reply is not None and reply.code == 454:
        return Verdict(
            WARN, "STARTTLS advertised, but TLS is not available now (454, RFC 3207 4)", said(reply)
        )
    return Verdict(FAIL, f"STARTTLS was advertised but answered {said(reply)}", said(reply))


def starttls_reset(p: Prober) -> Verdict:
    connection = p.session()
    start = connection.command("STARTTLS")
    if start is None or start.code != 220:
        connection.quit()
        return _no_tls(start)
    try:
        connection.start_tls()
    except ConnectionError as error:
        return Verdict(FAIL, str(error), said(start))
    mail = connection.command(f"MAIL FROM:<{p.sender}>")
    connection.extensions = {}
    again = connection.ehlo(p.helo)
    connection.quit()
    evidence = said_all([start, mail, again])
    if again is None or again.code != 250:
        return Verdict(FAIL, f"EHLO after TLS must be answered 250; got {said(again)}", evidence)
    if "STARTTLS" in connection.extensions:
        return Verdict(FAIL, "STARTTLS offered again after TLS started (RFC 3207 4.2)", evidence)
    if mail is not None and mail.code == 250 and _requires_ehlo(p):
        return Verdict(
            FAIL,
            "MAIL accepted right after TLS without a new EHLO, though this server refuses MAIL "
            "before EHLO otherwise: it kept what the client said before TLS (RFC 3207 4.2)",
            evidence,
        )
    return Verdict(
        PASS, "after TLS the session starts over: EHLO again, no STARTTLS offered", evidence
    )


def _requires_ehlo(p: Prober) -> bool:
    """Whether the server refuses MAIL before EHLO/HELO in a plain session."""
    connection = p.session(ehlo=False)
    mail = connection.command(f"MAIL FROM:<{p.sender}>")
    connection.quit()
    return mail is not None and mail.code == 503


def reply_syntax(p: Prober) -> Verdict:
    """Judged on every reply the other probes received."""
    garbage = [line for c in p.connections for line in c.garbage]
    if garbage:
        return Verdict(FAIL, f"lines that are no SMTP reply: {garbage[0]}", f"{len(garbage)} lines")
    found = oddities(p.transcript())
    # (Not "reply without command": a probe's own odd bytes, a command ending in a bare LF,
    # may not read as a command, and that says nothing about the server's replies.)
    found = found[found["check"].isin(["enhanced class", "unexpected reply"])]
    if len(found):
        first = found.iloc[0]
        return Verdict(
            FAIL, f"{first['check']}: {first['detail']} ({first['rfc']})", f"{len(found)} findings"
        )
    replies = sum(len(c.replies) for c in p.connections)
    if replies == 0:
        return Verdict(NOT_APPLICABLE, "no replies to judge: run it with other probes")
    return Verdict(
        PASS,
        f"{replies} replies, all well formed (codes, multi-line, enhanced codes)",
        f"{replies} replies",
    )


PROBES = [
    Probe(
        "pipelining",
        "RFC 2920 3.1",
        "a pipelined group gets its replies in order",
        pipelining,
        "PIPELINING",
    ),
    Probe("size", "RFC 1870 6.1", "a declared size over the limit gets 552", size, "SIZE"),
    Probe("chunking", "RFC 3030 2", "a message in BDAT chunks", chunking, "CHUNKING"),
    Probe(
        "starttls-injection",
        "RFC 3207 4.2",
        "input pipelined before TLS is discarded",
        starttls_injection,
        "STARTTLS",
    ),
    Probe(
        "starttls-reset", "RFC 3207 4.2", "TLS starts the session over", starttls_reset, "STARTTLS"
    ),
]
#: Run after all the others: it judges the replies they collected.
REPLY_SYNTAX = Probe(
    "reply-syntax", "RFC 5321 4.2, RFC 3463", "every reply well formed", reply_syntax
)
