"""Transports: the edges that move bytes between a client and a server."""

from smtplab.transport.memory import DEFAULT_START, InProcessLink, VirtualClock
from smtplab.transport.tcp_server import ServerThread, TcpServer

__all__ = ["DEFAULT_START", "InProcessLink", "ServerThread", "TcpServer", "VirtualClock"]
