"""Clients: the step-by-step session, whatever carries its bytes (in-process or TCP)."""

from smtplab.client.session import Link, Session

__all__ = ["Link", "Session"]
