"""A raw, recorded SMTP conversation for probing a server: exact bytes out, replies in.

A probe must be able to send what a well-behaved client never would — a bare LF, a command
before the greeting, MAIL and the end of data in one packet — and see exactly what comes back,
including *nothing*. So :meth:`ProbeConnection.send` writes the bytes as given, then reads
until it has the number of replies it expects, the server closes, or the server stays quiet
for a moment (``quiet`` seconds): silence is an answer too (a server must not reply to message
lines, RFC 5321 4.1.1.4). The connection is the blocking client transport's
(:class:`~smtplab.transport.tcp_client.TcpLink`), which records everything from the bytes into
the usual transcript rows (source ``probe``), so a probe's evidence is a transcript.
"""

from __future__ import annotations

import time
from typing import Any

from smtplab.protocol.client import ehlo_extensions
from smtplab.protocol.errors import RemoteProtocolError
from smtplab.protocol.events import Reply
from smtplab.protocol.replies import ReplyParser
from smtplab.transport.certs import unverified_client_context
from smtplab.transport.tcp_client import TcpLink

MAX_GARBAGE = 20  # non-reply lines kept as evidence
#: Replies one connection takes: no probe needs a tenth of it, and a server that floods
#: replies is cut off there (the connection is closed), so the transcript stays bounded.
MAX_REPLIES = 10_000
#: A command no server knows, sent after a payload: its reply (500 or 502) marks the end of
#: the replies the payload brought, however slowly they come.
MARKER = b"XSMTPLAB-MARKER\r\n"


class ProbeConnection:
    """One TCP connection to the server under test, recorded as session ``name``."""

    def __init__(
        self, host: str, port: int, name: str, timeout: float = 10.0, quiet: float = 0.6
    ) -> None:
        self.host, self.port, self.name = host, port, name
        self.timeout = timeout  # how long to wait for a reply that must come
        self.quiet = quiet  # how long a silence must last to count as "no more replies"
        self.link = TcpLink(host, port, timeout, name, source="probe")
        self.recorder = self.link.recorder
        self.parser = ReplyParser()
        self.replies: list[Reply] = []  # every reply so far, in order
        self.garbage: list[str] = []  # lines from the server that were no SMTP reply
        self.extensions: dict[str, str] = {}
        self.marked = False  # the server answers MARKER with 500 or 502 (see marker_answer)
        self.link.connect()

    @property
    def closed(self) -> bool:
        return self.link.closed

    def read(self, expect: int = 1, wait: float | None = None) -> list[Reply]:
        """Read until ``expect`` more replies came, the server closed, or it went quiet.

        The ``expect`` replies have ``timeout`` seconds in all (a deadline, not a time per
        read: a server dripping octets cannot stretch it); after them, or when ``expect`` is
        0, the connection is watched for ``wait`` (default ``quiet``) seconds more, so that a
        reply that should not have come is seen too.
        """
        got: list[Reply] = []
        deadline = time.monotonic() + self.timeout
        linger = self.quiet if wait is None else wait
        watch_until: float | None = None  # the end of the watch, once it has begun
        while not self.closed:
            if len(got) >= expect:
                if linger <= 0:
                    break
                if watch_until is None:
                    watch_until = time.monotonic() + linger
                budget = watch_until - time.monotonic()
            else:
                budget = deadline - time.monotonic()
            data = self.link.receive(budget)
            if not data:  # nothing in time (None), or the server closed (recorded as lost)
                break
            got.extend(self._parse(data))
            if len(self.replies) + len(got) > MAX_REPLIES:
                self.close(f"the server sent more than {MAX_REPLIES} replies")
        self.replies.extend(got)
        return got

    def send(self, data: bytes, expect: int = 1, wait: float | None = None) -> list[Reply]:
        """Send ``data`` exactly as given; return the replies it brought (see :meth:`read`)."""
        if not self.link.send(data):
            return []
        return self.read(expect, wait)

    def marker_answer(self) -> Reply | None:
        """Send :data:`MARKER` alone and return the reply (learn how this server answers it)."""
        replies = self.send(MARKER, expect=1, wait=0.0)
        return replies[0] if replies else None

    def send_marked(self, data: bytes, marked: bool = True) -> list[Reply]:
        """Send ``data`` then :data:`MARKER`; return the replies ``data`` brought.

        Replies come in order (RFC 5321 4.1.1, RFC 2920 3.1), so when the server answers the
        marker with 500 or 502 (``marked``; see :meth:`marker_answer`) every reply before that
        one belongs to ``data``, however late it comes: no silence has to be guessed at. A
        server that answers anything with 250 cannot be read that way; then the replies are
        read until the server has been quiet for a moment, and the last is the marker's."""
        if not self.link.send(data + MARKER):
            return []
        got: list[Reply] = []
        owed = len(data.splitlines()) + 2  # at most a reply a line, the marker's, and a 421
        while not self.closed and len(got) <= owed:
            if marked:
                more = self.read(1, wait=0.0)
            else:
                more = self.read(1, wait=0.0) if not got else self.read(0)
            if not more:
                break
            got.extend(more)
            if marked and len(got) >= 2 and got[-1].code in (500, 502):
                return got[:-1]
        return got[:-1] if len(got) >= 2 or (got and not marked) else got

    def command(self, line: str, wait: float = 0.0) -> Reply | None:
        """Send one command line (CRLF added); its reply, or None if none came."""
        replies = self.send(line.encode("utf-8", "surrogateescape") + b"\r\n", 1, wait)
        return replies[0] if replies else None

    def greeting(self) -> Reply | None:
        replies = self.read(1, wait=0.0)
        return replies[0] if replies else None

    def ehlo(self, name: str = "probe.example.net") -> Reply | None:
        """EHLO, remembering the extensions the reply lists (keyword -> parameters)."""
        reply = self.command(f"EHLO {name}")
        if reply is not None and reply.code == 250:
            self.extensions = ehlo_extensions(reply.text)
        return reply

    def start_tls(self) -> None:
        """Continue under TLS (after a 220 to STARTTLS); the certificate is not checked."""
        self.link.start_tls(unverified_client_context())
        self.parser = ReplyParser()  # RFC 3207 4.2: nothing from before TLS carries over

    def close(self, reason: str = "") -> None:
        """Close the connection (``reason``, if any, is recorded with the close)."""
        self.link.close(reason)

    def quit(self) -> None:
        """QUIT if the connection is still open, then close.

        The reply is not waited for long: a probe is done by now, and a broken server may
        still be reading a message and never answer."""
        if not self.closed:
            patience, self.timeout = self.timeout, min(self.timeout, 2 * self.quiet)
            try:
                self.command("QUIT")
            finally:
                self.timeout = patience
        self.close()

    def transcript(self) -> Any:
        return self.link.transcript()

    def _parse(self, data: bytes) -> list[Reply]:
        self.parser.feed(data)
        replies: list[Reply] = []
        while True:
            try:
                reply = self.parser.next_reply()
            except RemoteProtocolError as error:
                if len(self.garbage) < MAX_GARBAGE:
                    self.garbage.append(str(error))
                continue
            if reply is None:
                return replies
            replies.append(reply)
