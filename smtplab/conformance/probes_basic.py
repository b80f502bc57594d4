"""Probes of the commands every SMTP server must implement and of their order (RFC 5321)."""

from __future__ import annotations

from smtplab.conformance.probe import (
    ERROR,
    FAIL,
    PASS,
    WARN,
    Probe,
    Prober,
    Verdict,
    said,
    said_all,
)
from smtplab.protocol.events import Reply


def _refused(
    reply: Reply | None, what: str, evidence: str, wanted: tuple[int, ...] = (503,)
) -> Verdict:
    """The verdict on a command that must be refused, ideally with ``wanted``."""
    if reply is None:
        return Verdict(FAIL, f"{what}: no reply", evidence)
    if reply.code == 421:
        return Verdict(ERROR, f"{what}: the server closed the session (421) instead", evidence)
    if reply.code in wanted:
        return Verdict(PASS, f"{what}: refused with {said(reply)}", evidence)
    if reply.code >= 400:
        return Verdict(
            WARN, f"{what}: refused, but with {said(reply)} rather than {wanted[0]}", evidence
        )
    return Verdict(FAIL, f"{what}: must be refused ({wanted[0]}); got {said(reply)}", evidence)


def greeting(p: Prober) -> Verdict:
    connection = p.connect()
    reply = connection.greeting()
    connection.quit()
    if reply is not None and reply.code == 220:
        return Verdict(PASS, "the server greets with 220 before the client speaks", said(reply))
    return Verdict(FAIL, f"the greeting must be 220 (or 554 to refuse service); got {said(reply)}")


def ehlo(p: Prober) -> Verdict:
    connection = p.session(ehlo=False)
    reply = connection.ehlo(p.helo)
    connection.quit()
    if reply is not None and reply.code == 250:
        keywords = ", ".join(connection.extensions) or "no extensions"
        return Verdict(PASS, f"EHLO accepted; the server offers {keywords}", said(reply))
    return Verdict(FAIL, f"EHLO must be answered 250; got {said(reply)}", said(reply))


def helo(p: Prober) -> Verdict:
    connection = p.session(ehlo=False)
    reply = connection.command(f"HELO {p.helo}")
    connection.quit()
    if reply is not None and reply.code == 250:
        return Verdict(PASS, "HELO accepted (plain SMTP still works)", said(reply))
    return Verdict(FAIL, f"HELO must be answered 250; got {said(reply)}", said(reply))


def noop(p: Prober) -> Verdict:
    connection = p.session()
    reply = connection.command("NOOP")
    connection.quit()
    if reply is not None and reply.code == 250:
        return Verdict(PASS, "NOOP answered 250", said(reply))
    return Verdict(FAIL, f"NOOP must be answered 250; got {said(reply)}", said(reply))


def rset(p: Prober) -> Verdict:
    connection = p.session()
    mail = connection.command(f"MAIL FROM:<{p.sender}>")
    reset = connection.command("RSET")
    rcpt = connection.command(f"RCPT TO:<{p.recipient}>")
    connection.quit()
    replies = said_all([mail, reset, rcpt])
    if reset is None or reset.code != 250:
        return Verdict(FAIL, f"RSET must be answered 250; got {said(reset)}", replies)
    return _refused(rcpt, "RCPT after RSET (the transaction is gone)", replies)


def vrfy(p: Prober) -> Verdict:
    connection = p.session()
    reply = connection.command("VRFY postmaster")
    connection.quit()
    if reply is not None and reply.code in (250, 251, 252):
        return Verdict(
            PASS,
            f"VRFY answered {reply.code} (250/251: verified; 252: cannot verify, will try)",
            said(reply),
        )
    if reply is not None and reply.code == 502:
        return Verdict(
            WARN,
            "VRFY is disabled (502); RFC 5321 4.5.1 lists it among the required commands, and "
            "3.5.3 and 7.3 give 252 as the answer of a server that will not verify",
            said(reply),
        )
    if reply is not None and reply.code in (550, 551, 553):
        return Verdict(
            WARN,
            "the server says postmaster is not a mailbox (RFC 5321 4.5.1 requires one)",
            said(reply),
        )
    return Verdict(FAIL, f"VRFY answered {said(reply)}", said(reply))


def quit_(p: Prober) -> Verdict:
    connection = p.session()
    reply = connection.command("QUIT")
    connection.read(0)  # the server should close now
    closed = connection.closed
    connection.close()
    if reply is not None and reply.code == 221 and closed:
        return Verdict(
            PASS, "QUIT answered 221, then the server closed the connection", said(reply)
        )
    if reply is not None and reply.code == 221:
        return Verdict(
            FAIL,
            "QUIT answered 221 but the connection stayed open: the server MUST close it",
            said(reply),
        )
    return Verdict(FAIL, f"QUIT must be answered 221; got {said(reply)}", said(reply))


def transaction(p: Prober) -> Verdict:
    connection = p.session()
    steps = [
        ("MAIL", connection.command(f"MAIL FROM:<{p.sender}>"), (250,)),
        ("RCPT", connection.command(f"RCPT TO:<{p.recipient}>"), (250, 251)),
        ("DATA", connection.command("DATA"), (354,)),
    ]
    message = b"Subject: smtplab conformance probe\r\n\r\nA probe message.\r\n.\r\n"
    end = connection.send(message)
    steps.append(("the final dot", end[0] if end else None, (250,)))
    connection.quit()
    replies = said_all([reply for _, reply, _ in steps])
    end_reply = steps[-1][1]
    before_ok = all(r is not None and r.code in w for _, r, w in steps[:-1])
    if before_ok and end_reply is not None and end_reply.code >= 400:
        return Verdict(
            WARN,
            f"the message was refused after the final dot ({said(end_reply)}): allowed "
            "(RFC 5321 4.3.2), but no transaction could be completed",
            replies,
        )
    for stage, reply, wanted in steps:
        if reply is None or reply.code not in wanted:
            extra = ""
            if stage == "RCPT":
                extra = f" (RFC 5321 4.5.1: every server must accept mail for <{p.recipient}>)"
            return Verdict(FAIL, f"{stage} got {said(reply)}{extra}", replies)
    return Verdict(PASS, "MAIL, RCPT, DATA and the message accepted, one reply each", replies)


def _out_of_sequence(p: Prober, ehlo: bool, lines: list[str], what: str) -> Verdict:
    connection = p.session(ehlo=ehlo)
    replies = [connection.command(line) for line in lines]
    connection.quit()
    return _refused(replies[-1], what, said_all(replies))


def rcpt_before_mail(p: Prober) -> Verdict:
    return _out_of_sequence(p, True, [f"RCPT TO:<{p.recipient}>"], "RCPT before MAIL")


def data_before_rcpt(p: Prober) -> Verdict:
    connection = p.session()
    mail = connection.command(f"MAIL FROM:<{p.sender}>")
    data = connection.command("DATA")
    connection.quit()
    evidence = said_all([mail, data])
    return _refused(data, "DATA without a recipient", evidence, wanted=(503, 554))


def mail_before_ehlo(p: Prober) -> Verdict:
    connection = p.session(ehlo=False)
    mail = connection.command(f"MAIL FROM:<{p.sender}>")
    connection.quit()
    if mail is not None and mail.code == 250:
        return Verdict(
            WARN,
            "MAIL accepted without EHLO/HELO: RFC 5321 4.1.4 makes greeting first a client "
            "duty; many servers enforce it",
            said(mail),
        )
    return _refused(mail, "MAIL before EHLO/HELO", said(mail))


def unknown_command(p: Prober) -> Verdict:
    connection = p.session()
    reply = connection.command("XYZZY plugh")
    connection.quit()
    if reply is not None and reply.code == 502:
        return Verdict(
            WARN,
            "502 means recognised but not implemented; 500 fits an unknown verb (RFC 5321 4.2.4)",
            said(reply),
        )
    return _refused(reply, "an unknown command", said(reply), wanted=(500,))


def syntax_errors(p: Prober) -> Verdict:
    connection = p.session()
    bare = connection.command("MAIL")
    unbracketed = connection.command(f"MAIL FROM:{p.sender}")
    connection.quit()
    evidence = said_all([bare, unbracketed])
    if bare is None or bare.code != 501:
        return Verdict(FAIL, f"MAIL without its argument must get 501; got {said(bare)}", evidence)
    if unbracketed is not None and unbracketed.code == 250:
        return Verdict(
            WARN,
            "MAIL FROM without angle brackets accepted: RFC 5321 4.1.2 requires them; "
            "accepting is lenient (Postfix: strict_rfc821_envelopes)",
            evidence,
        )
    return Verdict(PASS, "syntax errors in arguments get 501", evidence)


def unknown_parameter(p: Prober) -> Verdict:
    connection = p.session()
    reply = connection.command(f"MAIL FROM:<{p.sender}> XFOO=BAR")
    connection.quit()
    if reply is not None and reply.code == 555:
        return Verdict(PASS, "an unknown MAIL parameter gets 555", said(reply))
    if reply is not None and reply.code == 501:
        return Verdict(
            WARN, "refused with 501; RFC 5321 4.1.1.11 has 555 for unknown parameters", said(reply)
        )
    return Verdict(
        FAIL, f"an unknown MAIL parameter must be refused (555); got {said(reply)}", said(reply)
    )


def ehlo_resets(p: Prober) -> Verdict:
    connection = p.session()
    mail = connection.command(f"MAIL FROM:<{p.sender}>")
    again = connection.ehlo(p.helo)
    rcpt = connection.command(f"RCPT TO:<{p.recipient}>")
    connection.quit()
    evidence = said_all([mail, again, rcpt])
    return _refused(rcpt, "RCPT after a second EHLO (the transaction is gone)", evidence)


def hundred_recipients(p: Prober) -> Verdict:
    connection = p.session()
    mail = connection.command(f"MAIL FROM:<{p.sender}>")
    refused = None
    for number in range(1, 101):
        reply = connection.command(f"RCPT TO:<{p.recipient}>")
        if reply is None or reply.code not in (250, 251):
            refused = (number, reply)
            break
    connection.quit()
    if mail is None or mail.code != 250:
        return Verdict(FAIL, f"MAIL was refused ({said(mail)})", said(mail))
    if refused is None:
        return Verdict(PASS, "100 recipients accepted in one transaction", "250 × 100")
    number, reply = refused
    return Verdict(
        FAIL,
        f"recipient {number} of 100 got {said(reply)}; at least 100 must be accepted",
        said(reply),
    )


PROBES = [
    Probe("greeting", "RFC 5321 3.1, 4.3.1", "the server speaks first, with 220", greeting),
    Probe("ehlo", "RFC 5321 4.1.1.1", "EHLO is accepted", ehlo),
    Probe("helo", "RFC 5321 4.1.1.1", "HELO is accepted", helo),
    Probe("noop", "RFC 5321 4.1.1.9", "NOOP gets 250", noop),
    Probe("rset", "RFC 5321 4.1.1.5", "RSET clears the transaction", rset),
    Probe("vrfy", "RFC 5321 3.5.3, 4.5.1, 7.3", "VRFY is implemented", vrfy),
    Probe("transaction", "RFC 5321 3.3", "a whole mail transaction", transaction),
    Probe("quit", "RFC 5321 4.1.1.10", "QUIT gets 221 and the server closes", quit_),
    Probe("rcpt-before-mail", "RFC 5321 3.3, 4.1.4", "RCPT before MAIL gets 503", rcpt_before_mail),
    Probe(
        "data-before-rcpt", "RFC 5321 3.3", "DATA without a recipient is refused", data_before_rcpt
    ),
    Probe("mail-before-ehlo", "RFC 5321 4.1.4", "MAIL before EHLO/HELO", mail_before_ehlo),
    Probe("unknown-command", "RFC 5321 4.2.4", "an unknown command gets 500", unknown_command),
    Probe(
        "syntax-errors", "RFC 5321 4.1.2, 4.3.2", "argument syntax errors get 501", syntax_errors
    ),
    Probe(
        "unknown-parameter",
        "RFC 5321 4.1.1.11",
        "an unknown MAIL parameter gets 555",
        unknown_parameter,
    ),
    Probe("ehlo-resets", "RFC 5321 4.1.4", "a repeated EHLO resets the transaction", ehlo_resets),
    Probe(
        "hundred-recipients",
        "RFC 5321 4.5.3.1.8",
        "100 recipients in one transaction",
        hundred_recipients,
    ),
]
