"""Transports: the edges that move bytes between a client and a server."""

from smtplab.transport.memory import DEFAULT_START, InProcessLink, VirtualClock

__all__ = ["DEFAULT_START", "InProcessLink", "VirtualClock"]
