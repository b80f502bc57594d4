"""Clients: the step-by-step session used in notebooks."""

from smtplab.client.session import Link, Session

__all__ = ["Link", "Session"]
