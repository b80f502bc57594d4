"""The two kinds of protocol error, following h11's rule.

* :class:`LocalProtocolError` - *you* (the code driving a connection) did something the
  protocol forbids, e.g. sending DATA before any recipient was accepted, or answering 250 to a
  command the protocol requires to be rejected. Raised by ``send``-side methods.
* :class:`RemoteProtocolError` - the *peer* did something the protocol forbids that cannot be
  answered with an SMTP reply (a server sending a reply that is not a reply). Raised by
  ``receive_data``/``next_event``.

A client's mistakes that a server can answer (a bad command, a wrong sequence) are *not*
exceptions on the server side: they arrive as command events whose ``error`` field holds the
reply RFC 5321 requires, because an SMTP session goes on after such an error.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of smtplab's protocol errors."""


class LocalProtocolError(ProtocolError):
    """This side tried to do something the SMTP protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that is not valid SMTP and cannot be answered."""
