"""The client over TCP: the step-by-step :class:`~smtplab.client.session.Session` on a socket.

``smtplab.connect("127.0.0.1", 2525)`` returns the same session object a lab gives, talking
to any SMTP server - smtplab's own, aiosmtpd, Postfix - and recording the conversation from
its bytes (source ``tcp``, the client's view: a reply is stamped when it arrives)::

    session = smtplab.connect("127.0.0.1", 2525)
    session.ehlo(); session.mail("alice@example.net"); session.rcpt("bob@example.org")
    session.data(); session.message("Subject: hi\\n\\nhello\\n"); session.quit()
    session.transcript

It is a blocking client: in a notebook, run the server in a :class:`~smtplab.ServerThread`
(or use any server in another process).
"""

from __future__ import annotations

import itertools
import socket
import ssl
import time
from collections.abc import Iterable
from email.message import EmailMessage
from typing import Any

from smtplab.client.sender import SendResult, plain_message, send_message
from smtplab.client.session import Session, to_bytes
from smtplab.log.frame import to_frame
from smtplab.log.recorder import Recorder
from smtplab.log.schema import endpoint
from smtplab.log.wire import WireRecorder
from smtplab.transport.certs import unverified_client_context

_numbers = itertools.count(1)


def next_client_name() -> str:
    """A fresh session name for a client transcript: ``client-1``, ``client-2``, ..."""
    return f"client-{next(_numbers)}"


class TcpLink:
    """A blocking TCP connection that records what goes over it (a :class:`Session` link).

    ``timeout`` is a deadline per reply, not per read: from the command sent (or the reply
    before it, in a pipelined group) to the reply's last octet. A server that drips one octet
    at a time cannot hold the client longer; when it passes, the connection is closed and
    :meth:`read` raises TimeoutError. Sending is bounded by ``timeout`` as well (then the
    connection counts as lost).
    """

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float = 60.0,
        name: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        source: str = "tcp",
    ):
        self.host, self.port, self.timeout = host, port, timeout
        self.tls_context = tls_context  # for start_tls when it is given none
        self.name = name or next_client_name()
        self.recorder = Recorder(self.name, source)
        self.wire = WireRecorder(self.recorder)
        self._sock: socket.socket | None = None
        self._closed = False
        self._deadline = 0.0  # time.monotonic() by which the awaited reply must be complete

    @property
    def closed(self) -> bool:
        return self._closed

    def open(self) -> bytes:
        """Connect; return what the server says first (its greeting)."""
        self.connect()
        self.expect_reply()  # the greeting
        return self.read()

    def connect(self) -> None:
        """Open the connection (ConnectionError if it cannot be), reading nothing yet."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as error:
            raise ConnectionError(f"cannot connect to {self.host}:{self.port}: {error}") from None
        self._sock = sock
        self.recorder.client = endpoint(sock.getsockname())
        self.recorder.server = endpoint(sock.getpeername())
        self.wire.connected(time.time())

    def exchange(self, data: bytes) -> bytes:
        """Send ``data``; return what the server sends back first (maybe not all of it)."""
        if not self.send(data):
            return b""
        self.expect_reply()
        return self.read()

    def send(self, data: bytes) -> bool:
        """Send ``data`` exactly as given, reading nothing; False if the connection is gone
        (or broke while sending: then it counts as lost)."""
        if self._closed or self._sock is None:
            return False
        try:
            self._sock.settimeout(self.timeout)  # for the whole of sendall (Python 3.5+)
            self._sock.sendall(data)
        except OSError:  # a timeout too: the server took nothing in for that long
            self._lost("the connection broke while sending")
            return False
        self.wire.sent(data, time.time())
        return True

    def expect_reply(self) -> None:
        """The wait for one more reply starts now: it has ``timeout`` seconds to come whole."""
        self._deadline = time.monotonic() + self.timeout

    def read(self) -> bytes:
        """Wait for more bytes from the server (``b""``: it closed the connection); raise
        TimeoutError, closing the connection, when the awaited reply's deadline passes."""
        data = self.receive(self._deadline - time.monotonic())
        if data is None:
            self.close(f"no complete reply within {self.timeout:g} s")
            raise TimeoutError(f"no reply from {self.host}:{self.port} within {self.timeout:g} s")
        return data

    def receive(self, within: float) -> bytes | None:
        """What the server sends within ``within`` seconds: its octets (recorded), ``b""``
        when it closed (or the connection is gone), None when nothing came in time."""
        if self._closed or self._sock is None:
            return b""
        if within <= 0:
            return None
        try:
            self._sock.settimeout(within)
            data = self._sock.recv(65536)
        except TimeoutError:
            return None
        except OSError:  # ssl.SSLError included
            data = b""
        if data:
            self.wire.received(data, time.time())
        else:
            self._lost("server closed the connection")
        return data

    def start_tls(self, context: ssl.SSLContext | None = None) -> None:
        """Continue under TLS (after the server's 220 to STARTTLS)."""
        if self._sock is None or self._closed:
            raise ConnectionError("the connection is closed")
        context = context or self.tls_context
        if context is None:  # opportunistic, like smtplib: encrypted, not authenticated
            context = unverified_client_context()
        try:
            self._sock.settimeout(self.timeout)  # the handshake
            self._sock = context.wrap_socket(self._sock, server_hostname=self.host)
        except (ssl.SSLError, OSError) as error:
            self._lost(f"TLS handshake failed: {error}")
            raise ConnectionError(f"TLS with {self.host}:{self.port} failed: {error}") from None
        cipher = self._sock.cipher()
        self.recorder.tls_started(
            time.time(), f"{self._sock.version()} {cipher[0] if cipher else '?'}"
        )

    def close(self, reason: str = "") -> None:
        """Close the connection (``reason``, if any, is recorded with the close)."""
        if not self._closed and self._sock is not None:
            self._sock.close()
            self._closed = True
            self.wire.closed(time.time(), "client", reason)

    def _lost(self, text: str) -> None:
        """The server closed, or the connection broke: recorded once, as the server's doing."""
        if self._closed:
            return
        self._closed = True
        if self._sock is not None:
            self._sock.close()
        self.wire.closed(time.time(), "server", text)

    def transcript(self) -> Any:
        return to_frame(self.recorder.tuples)


def connect(
    host: str,
    port: int = 25,
    *,
    client_name: str = "client.example.net",
    timeout: float = 60.0,
    name: str | None = None,
) -> Session:
    """Open a recorded client session to the SMTP server at ``host:port``."""
    link = TcpLink(host, port, timeout, name)
    session = Session(link, name=link.name, client_name=client_name, transcript=link.transcript)
    return session


def send(
    server: str,
    mail_from: str,
    recipients: str | Iterable[str],
    subject: str = "Hello",
    body: str = "Hello from smtplab.\n",
    *,
    message: str | bytes | EmailMessage | None = None,
    client_name: str = "client.example.net",
    follow_redirects: bool = False,
    retries: int = 0,
    retry_delay: float = 300.0,
    timeout: float = 60.0,
    starttls: bool = False,
    tls_context: ssl.SSLContext | None = None,
    auth: tuple[str, str] | None = None,
    pipelining: bool = False,
    chunking: bool = False,
    chunk_size: int | None = None,
) -> SendResult:
    """Send one message to the SMTP server at ``server`` (``host:port``), as ``Lab.send`` does
    in-process: refusals reported, 551 followed on request, 4xx retried (in real time)."""
    host, _, port_text = server.rpartition(":")
    if not host or not port_text.isdigit():
        raise ValueError(f"server must be host:port, not {server!r}")
    host = host.strip("[]")  # [::1]:25
    if isinstance(recipients, str):
        recipients = [recipients]
    recipients = list(recipients)
    links: list[TcpLink] = []

    def open_session() -> Session:
        link = TcpLink(host, int(port_text), timeout, tls_context=tls_context)
        links.append(link)
        return Session(link, name=link.name, client_name=client_name, transcript=link.transcript)

    def content() -> bytes:
        return to_bytes(message or plain_message(mail_from, recipients, subject, body))

    return send_message(
        open_session,
        mail_from,
        recipients,
        content,
        follow_redirects=follow_redirects,
        retries=retries,
        retry_delay=retry_delay,
        wait=time.sleep,
        transcript=lambda: to_frame(row for link in links for row in link.recorder.tuples),
        starttls=starttls,
        auth=auth,
        pipelining=pipelining,
        chunking=chunking,
        chunk_size=chunk_size,
    )
