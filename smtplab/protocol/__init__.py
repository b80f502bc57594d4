"""The sans-IO SMTP core: bytes in, events out; replies in, bytes out. No I/O, no clocks."""

from smtplab.protocol.client import ClientConnection
from smtplab.protocol.config import ServerConfig
from smtplab.protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from smtplab.protocol.events import (
    NEED_DATA,
    PAUSED,
    Command,
    ConnectionClosed,
    DataCommand,
    Event,
    Expand,
    Hello,
    Help,
    MailFrom,
    MessageReceived,
    Noop,
    Quit,
    RcptTo,
    Reply,
    ReplyReceived,
    Reset,
    UnknownCommand,
    Verify,
)
from smtplab.protocol.framing import LineEndings, dot_stuff
from smtplab.protocol.replies import parse_reply
from smtplab.protocol.server import ServerConnection
from smtplab.protocol.states import ON_REFUSAL, TRANSITIONS, State, Step

__all__ = [
    "NEED_DATA",
    "ON_REFUSAL",
    "PAUSED",
    "TRANSITIONS",
    "ClientConnection",
    "Command",
    "ConnectionClosed",
    "DataCommand",
    "Event",
    "Expand",
    "Hello",
    "Help",
    "LineEndings",
    "LocalProtocolError",
    "MailFrom",
    "MessageReceived",
    "Noop",
    "ProtocolError",
    "Quit",
    "RcptTo",
    "RemoteProtocolError",
    "Reply",
    "ReplyReceived",
    "Reset",
    "ServerConfig",
    "ServerConnection",
    "State",
    "Step",
    "UnknownCommand",
    "Verify",
    "dot_stuff",
    "parse_reply",
]
