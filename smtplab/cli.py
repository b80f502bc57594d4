"""The ``smtplab`` command line.

``smtplab demo`` runs the first transaction of the course in-process (one message to two
recipients, one of them unknown) and prints its transcript.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from smtplab.protocol.events import Reply


def _demo(args: argparse.Namespace) -> int:
    from smtplab.lab import Lab

    lab = Lab()
    recipients = args.to or ["bob@example.org", "nobody@example.org"]
    result = lab.send(args.sender, recipients, subject=args.subject)
    print(format_transcript(lab.transcript()))
    print()
    if result.delivered:
        print(f"Delivered to {', '.join(result.accepted)}: {result.reply}")
    else:
        print(f"Not delivered: {result.reply}")
    for address, reply in result.refused.items():
        print(f"Refused {address}: {reply}")
    return 0


def format_transcript(frame) -> str:  # type: ignore[no-untyped-def]
    """A transcript as a terminal table: time, who, what was said."""
    lines = []
    start = frame["time"].iloc[0] if len(frame) else None
    for row in frame.itertuples(index=False):
        offset = (row.time - start).total_seconds() * 1000
        if row.kind == "command":
            said = f"{row.verb} {row.argument}".rstrip()
        elif row.kind == "reply":
            enhanced = row.enhanced if isinstance(row.enhanced, str) else None
            wire = str(Reply(int(row.code), str(row.text), enhanced))  # "250-..." lines
            said = wire.replace("\n", "\n" + " " * 23)
        elif row.kind == "data":
            said = f"<message: {row.size} octets, {row.lines} lines> then <CRLF>.<CRLF>"
        elif row.kind == "connect":
            said = f"<connect {row.client} -> {row.server}>"
        else:
            said = f"<{row.kind}{': ' + row.text if isinstance(row.text, str) else ''}>"
        arrow = "C:" if row.sender == "client" else "S:"
        lines.append(f"{row.session:>8} {offset:8.1f}ms {arrow} {said}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smtplab", description="SMTP protocol workbench: run, record and explain SMTP."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run one in-process mail transaction, print it")
    demo.add_argument("--from", dest="sender", default="alice@example.net")
    demo.add_argument("--to", action="append", help="a recipient (repeat for more)")
    demo.add_argument("--subject", default="Hello")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # e.g. `smtplab demo | head`: the reader has all it wanted
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
