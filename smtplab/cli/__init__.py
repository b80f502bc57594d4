"""The ``smtplab`` command: ``demo``, ``scenarios``, ``serve``, ``send``, ``check``, ``ingest``,
``course``. :mod:`smtplab.cli.commands` parses and dispatches; :mod:`smtplab.cli.serve` runs
the TCP server."""

from smtplab.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
