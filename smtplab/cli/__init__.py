"""The ``smtplab`` command: ``serve``, ``send``, ``check``, ``ingest``, ``scenarios``, ``course``
(:mod:`smtplab.cli.main` parses and dispatches; :mod:`smtplab.cli.serve` runs the TCP server)."""

from smtplab.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
