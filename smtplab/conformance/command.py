"""``smtplab check HOST:PORT``: run the probes from the shell, print the verdicts."""

from __future__ import annotations

import argparse
import sys
import textwrap

from smtplab.conformance.suite import CheckReport, check, probe_names

STATUS_MARKS = {"pass": "ok  ", "fail": "FAIL", "warn": "warn", "n/a": "n/a ", "error": "ERR "}


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "check",
        help="probe an SMTP server against RFC 5321 and the ESMTP RFCs, print the verdicts",
        description="Run conformance probes against any SMTP server. Exit status: 0 when no "
        "probe failed, 1 when one did, 2 when the check could not run.",
    )
    parser.add_argument("server", help="HOST:PORT of the server to probe")
    parser.add_argument(
        "--probe",
        action="append",
        metavar="NAME",
        choices=probe_names(),
        help="run only this probe (repeatable); default: all",
    )
    parser.add_argument("--report", metavar="FILE", help="write the report (.html, .csv, .parquet)")
    parser.add_argument(
        "--recipient",
        default="postmaster",
        help="an address the server accepts mail for (default: postmaster, RFC 5321 4.5.1)",
    )
    parser.add_argument("--sender", default="probe@example.net", help="the MAIL FROM address")
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long a reply that must come may take, to its last octet (10)",
    )
    parser.add_argument(
        "--quiet-time",
        type=float,
        default=0.6,
        metavar="SECONDS",
        help="how long a silence counts as no reply (raise it for a slow server)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from smtplab.conformance.report import write_report
    from smtplab.log.frame import TABLE_FORMATS

    try:
        if args.report:  # fail before probing, not after
            _check_report_path(args.report)
    except ValueError as error:
        formats = ", ".join([".html", *TABLE_FORMATS])
        print(f"smtplab check: {error} (reports: {formats})", file=sys.stderr)
        return 2
    chosen = args.probe or probe_names()
    bars: list[tqdm] = []  # made once the first probe has run: a server that cannot be
    # probed at all gets its one line on stderr, without a progress bar before it

    def advance(name: str) -> None:
        if not bars:
            bars.append(tqdm(total=len(chosen), desc="probes", unit="probe", file=sys.stderr))
        bars[0].set_postfix_str(name)
        bars[0].update(1)

    try:
        report = check(
            args.server,
            args.probe,
            sender=args.sender,
            recipient=args.recipient,
            timeout=args.timeout,
            quiet=args.quiet_time,
            progress=advance,
        )
    except (ConnectionError, ValueError) as error:
        print(f"smtplab check: {error}", file=sys.stderr)
        return 2
    finally:
        for bar in bars:
            bar.close()
    print(format_report(report))
    if args.report:
        print(f"report written to {write_report(report, args.report)}")
    statuses = set(report.table["status"].astype(str))
    if statuses == {"error"}:
        return 2
    return 1 if "fail" in statuses else 0


def _check_report_path(path: str) -> None:
    from pathlib import Path

    from smtplab.log.frame import check_table_path

    if path.lower().endswith((".html", ".htm")):
        if not Path(path).parent.is_dir():
            raise ValueError(f"{path}: the directory {Path(path).parent} does not exist")
    else:
        check_table_path(path)


def format_report(report: CheckReport) -> str:
    """The verdicts as text, one probe a line, reasons wrapped under it."""
    lines = [f"SMTP conformance of {report.server}", ""]
    width = max(len(name) for name in report.table["probe"])
    for row in report.table.itertuples(index=False):
        mark = STATUS_MARKS.get(str(row.status), str(row.status))
        lines.append(f"{mark}  {row.probe:<{width}}  {row.rfc:<24}  {row.replies}")
        for part in textwrap.wrap(str(row.detail), 90):
            lines.append(f"{'':{width + 8}}{part}")
    counts = ", ".join(f"{n} {status}" for status, n in report.counts().items() if n)
    lines += ["", counts]
    return "\n".join(lines)
