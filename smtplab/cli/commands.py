"""The ``smtplab`` command line.

``smtplab demo`` runs the first transaction of the course in-process (one message to two
recipients, one of them unknown) and prints its transcript. ``smtplab scenarios`` lists the
teaching scenarios, one line each; ``smtplab scenario NAME`` runs one and prints its
explanation, transcript and what the server stored. ``smtplab serve`` runs the server on a TCP
port for real clients (see :mod:`smtplab.cli.serve`); ``smtplab send`` sends one message to any
SMTP server over TCP and prints the transcript, exiting 1 when it was not accepted for every
recipient and 2 when it could not be sent (a bad option, a server that cannot be reached, does
not reply in time or does not speak SMTP; one line on stderr says which).
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Sequence
from datetime import date
from numbers import Integral
from pathlib import Path

from smtplab.conformance import command as conformance_command
from smtplab.ingest.reader import FORMATS as INGEST_FORMATS
from smtplab.protocol.errors import RemoteProtocolError
from smtplab.protocol.events import Reply


def _demo(args: argparse.Namespace) -> int:
    from smtplab.teaching.lab import Lab

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


def _scenarios(args: argparse.Namespace) -> int:
    from smtplab.teaching.scenarios import SCENARIOS

    width = max(map(len, SCENARIOS))
    for name, scenario in SCENARIOS.items():
        print(f"{name:<{width}}  {scenario.title}")
    return 0


def plain_text(markdown: str) -> str:
    """A scenario's explanation (Markdown, for the notebooks) as a terminal shows it: no
    emphasis marks or code quotes (``**transient**`` reads "transient")."""
    text = re.sub(r"\*\*(.+?)\*\*|\*(.+?)\*", lambda found: found[1] or found[2], markdown)
    return text.replace("`", "")


def _scenario(args: argparse.Namespace) -> int:
    from smtplab.teaching.scenarios import SCENARIOS

    if args.name not in SCENARIOS:
        print(
            f"smtplab: no scenario {args.name!r}; `smtplab scenarios` lists them: "
            + ", ".join(SCENARIOS),
            file=sys.stderr,
        )
        return 2
    run = SCENARIOS[args.name].run()
    scenario = run.scenario
    print(f"{scenario.name}: {scenario.title}")
    print(textwrap.fill(plain_text(scenario.explanation), width=96))
    print(f"Read: {scenario.rfc}")
    print()
    print(format_transcript(run.transcript))
    print()
    stored = run.lab.messages
    print(f"Stored {len(stored)} message{'s' if len(stored) != 1 else ''}:")
    for message in stored:
        recipients = ", ".join(message.recipients)
        if len(message.recipients) > 3:
            recipients = (
                f"{', '.join(message.recipients[:3])} and {len(message.recipients) - 3} more"
            )
        print(f"  {message.id} from <{message.mail_from}> to {recipients} ({message.size} octets)")
    return 0


def format_transcript(frame) -> str:  # type: ignore[no-untyped-def]
    """A transcript as a terminal table: session, milliseconds since the start, who, what."""
    if not len(frame):
        return ""
    offsets = (frame["time"] - frame["time"].iloc[0]).dt.total_seconds() * 1000
    session_width = max(len(str(s)) for s in frame["session"])
    time_width = len(f"{offsets.max():.1f}")
    lines = []
    for row, offset in zip(frame.itertuples(index=False), offsets, strict=True):
        prefix = f"{row.session!s:>{session_width}} {offset:{time_width}.1f}ms "
        prefix += "C: " if row.sender == "client" else "S: "
        if row.kind == "command":
            said = f"{row.verb} {row.argument}".rstrip()
            if row.verb == "BDAT" and isinstance(row.size, Integral):
                said += f" then <chunk: {row.size} octets>"
        elif row.kind == "reply":
            enhanced = row.enhanced if isinstance(row.enhanced, str) else None
            said = str(Reply(int(row.code), str(row.text), enhanced))  # "250-..." lines
        elif row.kind == "data":
            said = f"<message: {row.size} octets, {row.lines} lines> then <CRLF>.<CRLF>"
        elif row.kind == "connect":
            said = f"<connect {row.client} -> {row.server}>"
        else:
            said = f"<{row.kind}{': ' + row.text if isinstance(row.text, str) else ''}>"
        lines.append(prefix + said.replace("\n", "\n" + " " * len(prefix)))
    return "\n".join(lines)


def one_line(error: BaseException, width: int = 300) -> str:
    """An error message as one line of at most ``width`` characters (for stderr)."""
    text = " ".join(str(error).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _version() -> str:
    """The installed version (the package's own when run from a clone without installing)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("smtplab")
    except PackageNotFoundError:
        from smtplab import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smtplab", description="SMTP protocol workbench: run, record and explain SMTP."
    )
    parser.add_argument("--version", action="version", version=f"smtplab {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run one in-process mail transaction, print it")
    demo.add_argument("--from", dest="sender", default="alice@example.net")
    demo.add_argument("--to", action="append", help="a recipient (repeat for more)")
    demo.add_argument("--subject", default="Hello")
    demo.set_defaults(func=_demo)
    listing = commands.add_parser("scenarios", help="list the teaching scenarios")
    listing.set_defaults(func=_scenarios)
    one = commands.add_parser("scenario", help="run one teaching scenario, print its transcript")
    one.add_argument("name", help="a name from `smtplab scenarios`")
    one.set_defaults(func=_scenario)
    serve = commands.add_parser(
        "serve", help="run an SMTP server on a TCP port until Ctrl-C, recording every session"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=2525, help="TCP port (2525)")
    serve.add_argument("--scenario", help="serve a teaching scenario's server settings")
    serve.add_argument("--maildir", help="store messages in this Maildir (default: memory)")
    serve.add_argument(
        "--transcript",
        help="append each finished session's rows here, in batches (.csv, .parquet); "
        "the rest is written on stop",
    )
    serve.add_argument(
        "--tls", action="store_true", help="offer STARTTLS with the lab certificate (RFC 3207)"
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=300.0,
        help="seconds for each command, from the previous reply; then 421 4.4.2 (300)",
    )
    serve.add_argument(
        "--data-timeout",
        type=float,
        default=600.0,
        help="seconds for a whole message, from its 354 to the final dot; then 421 4.4.2 (600)",
    )
    serve.add_argument(
        "--max-sessions", type=int, default=100, help="sessions at once; more get 421 (100)"
    )
    serve.add_argument(
        "--max-sessions-per-client",
        type=_limit,
        default=20,
        metavar="N",
        help="sessions at once from one client address; more get 421 4.7.0 (20; 0: no limit)",
    )
    serve.add_argument(
        "--max-commands",
        type=_limit,
        default=10_000,
        metavar="N",
        help="commands in one session; then 421 4.7.0, the client reconnects (10000; 0: none)",
    )
    serve.add_argument(
        "--keep-sessions",
        type=int,
        default=1000,
        metavar="N",
        help="finished sessions kept in memory (1000); --transcript writes them all",
    )
    serve.add_argument(
        "--keep-messages",
        type=int,
        default=1000,
        metavar="N",
        help="messages kept in memory without --maildir, the last N (1000)",
    )
    serve.add_argument(
        "--transcript-batch",
        type=int,
        default=1000,
        metavar="ROWS",
        help="rows collected before --transcript appends them to the file (1000)",
    )
    serve.set_defaults(func=_serve)
    send = commands.add_parser(
        "send", help="send one message to an SMTP server over TCP and print the transcript"
    )
    send.add_argument("--server", required=True, help="host:port of the SMTP server")
    send.add_argument("--from", dest="sender", required=True, help="the envelope sender")
    send.add_argument("--to", action="append", required=True, help="a recipient (repeat)")
    send.add_argument("--subject", default="Hello")
    body = send.add_mutually_exclusive_group()
    body.add_argument("--body", default="Hello from smtplab.\n", help="the message text")
    body.add_argument("--body-file", help="send this file as the whole message (headers too)")
    send.add_argument("--transcript", help="also write the transcript here (.csv, .parquet)")
    send.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a reply")
    send.add_argument(
        "--starttls", action="store_true", help="require STARTTLS (not verified, like swaks)"
    )
    send.add_argument("--auth", metavar="USER:PASS", help="AUTH PLAIN with these credentials")
    send.add_argument(
        "--pipelining",
        action="store_true",
        help="send MAIL, RCPT and DATA (or BDAT) as one group if the server offers PIPELINING",
    )
    send.add_argument(
        "--chunking",
        action="store_true",
        help="send the message with BDAT if the server offers CHUNKING (RFC 3030)",
    )
    send.add_argument(
        "--chunk-size", type=int, metavar="OCTETS", help="octets per BDAT (implies --chunking)"
    )
    send.set_defaults(func=_send)
    ingest = commands.add_parser(
        "ingest",
        aliases=["read"],  # smtplab.read in Python
        help="read captures, Postfix, Exim or Sendmail logs, Zeek's smtp.log, Exchange message "
        "tracking logs, Microsoft 365 message traces, swaks or smtplib transcripts into one "
        "table (also: smtplab read)",
    )
    ingest.add_argument("files", nargs="+", help="files or directories (.gz works too)")
    into = ingest.add_mutually_exclusive_group(required=True)
    into.add_argument("-o", "--output", help="the table to write (.csv, .parquet)")
    into.add_argument(
        "--dataset",
        metavar="DIR",
        help="stream into a Parquet dataset directory, partitioned by source and day "
        "(bounded memory; add more inputs later)",
    )
    ingest.add_argument("--format", default="auto", choices=["auto", *INGEST_FORMATS])
    ingest.add_argument(
        "--year",
        type=int,
        help="year of Postfix or Sendmail syslog timestamps (default: the file's)",
    )
    ingest.add_argument(
        "--day", type=date.fromisoformat, help="date of smtplib level-2 times (YYYY-MM-DD)"
    )
    ingest.set_defaults(func=_ingest)
    conformance_command.add_parser(commands)
    course = commands.add_parser("course", help="the notebook course: build it as a web site")
    course_commands = course.add_subparsers(dest="course_command", required=True)
    build = course_commands.add_parser(
        "build",
        help="execute every notebook and write a static HTML site with an index; or, with "
        "--student or --instructor, write that edition's notebooks to hand out",
    )
    build.add_argument("output", help="the directory to write the site (or edition) into")
    build.add_argument(
        "--only", action="append", metavar="TEXT", help="only notebooks whose name contains TEXT"
    )
    edition = build.add_mutually_exclusive_group()
    edition.add_argument(
        "--student",
        dest="edition",
        action="store_const",
        const="student",
        help="the notebooks with every solution replaced by an 'answer = ...' placeholder",
    )
    edition.add_argument(
        "--instructor",
        dest="edition",
        action="store_const",
        const="instructor",
        help="the notebooks with their solutions",
    )
    build.set_defaults(func=_course_build)
    grade = course_commands.add_parser(
        "grade",
        help="run students' notebooks and write one row per student and exercise",
        description="Each SUBMISSION is a folder named for a student, holding the course "
        "notebooks they worked in, or one notebook (the student is its folder's name). Each "
        "runs in a fresh kernel; each exercise's check says right, wrong, unanswered or error.",
    )
    grade.add_argument("submissions", nargs="+", metavar="SUBMISSION")
    grade.add_argument("-o", "--output", required=True, help="grades.csv: student x exercise")
    grade.add_argument(
        "--wide", metavar="FILE", help="also one row per student, a column per exercise "
        "(otter-grader's final_grades.csv layout)",
    )  # fmt: skip
    grade.add_argument("--timeout", type=int, default=120, help="seconds a cell may take (120)")
    grade.set_defaults(func=_course_grade)
    return parser


def _course_grade(args: argparse.Namespace) -> int:
    from smtplab.teaching.grading import grade, wide

    try:
        grades = grade(args.submissions, timeout=args.timeout)
    except ValueError as error:
        print(f"smtplab course grade: {error}", file=sys.stderr)
        return 2
    grades.to_csv(args.output, index=False)
    if args.wide:
        wide(grades).to_csv(args.wide, index=False)
    right = int(grades["points"].sum())
    students = grades["student"].nunique()
    print(f"{students} student(s), {len(grades)} graded exercises, {right} right -> {args.output}")
    return 0


def _course_build(args: argparse.Namespace) -> int:
    from smtplab.teaching.course import build_site
    from smtplab.teaching.editions import write_edition

    try:
        if args.edition:
            written = write_edition(args.output, args.edition)
            where = Path(args.output) / "notebooks"
            print(f"the {args.edition} edition: {len(written)} notebooks in {where}/")
            return 0
        index = build_site(args.output, only=args.only)
    except (ValueError, RuntimeError) as error:
        print(f"smtplab course build: {error}", file=sys.stderr)
        return 1
    print(f"the course is in {index.parent}/ (open {index})")
    return 0


def _ingest(args: argparse.Namespace) -> int:
    import warnings

    from smtplab.ingest import IngestError, IngestWarning, read
    from smtplab.log.frame import check_table_path, write_table

    if args.dataset is not None:
        return _ingest_dataset(args)
    try:
        output = check_table_path(args.output)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", IngestWarning)
            frame = read(args.files, args.format, year=args.year, day=args.day)
    except (IngestError, ValueError) as error:
        print(f"smtplab ingest: {error}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"smtplab ingest: {warning.message}", file=sys.stderr)
    write_table(frame, output)
    sessions = frame.groupby("source", observed=True)["session"].nunique()
    summary = ", ".join(f"{count} {source}" for source, count in sessions.items())
    print(f"{len(frame)} rows, {frame['session'].nunique()} sessions ({summary}) -> {output}")
    return 0


def _ingest_dataset(args: argparse.Namespace) -> int:
    import warnings

    from smtplab.ingest import IngestError, IngestWarning
    from smtplab.ingest.dataset import write_dataset

    def say(message: object, *_: object) -> None:
        print(f"smtplab ingest: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():  # (restores showwarning after)
            warnings.simplefilter("always", IngestWarning)
            # Each as it comes: a long run should not keep quiet.
            warnings.showwarning = say  # type: ignore[assignment]
            report = write_dataset(
                args.files, args.dataset, args.format, year=args.year, day=args.day
            )
    except (IngestError, ValueError, OSError) as error:
        say(error)
        return 2
    print(report)
    return 0


def _send(args: argparse.Namespace) -> int:
    from smtplab.log.frame import check_table_path, write_table
    from smtplab.transport.tcp_client import send

    try:
        transcript = check_table_path(args.transcript) if args.transcript else None
        message = Path(args.body_file).read_bytes() if args.body_file else None
        auth = None
        if args.auth is not None:
            user, colon, password = args.auth.partition(":")
            if not colon:
                raise ValueError("--auth takes USER:PASS")
            auth = (user, password)
        result = send(
            args.server,
            args.sender,
            args.to,
            args.subject,
            args.body,
            message=message,
            timeout=args.timeout,
            starttls=args.starttls,
            auth=auth,
            pipelining=args.pipelining,
            chunking=args.chunking or args.chunk_size is not None,
            chunk_size=args.chunk_size,
        )
    except (ValueError, OSError) as error:  # a bad address or file, no server, no reply
        print(f"smtplab send: {one_line(error)}", file=sys.stderr)
        return 2
    except RemoteProtocolError as error:  # what the server sent cannot be SMTP
        reason = f"{args.server} broke the SMTP protocol: {one_line(error)}"
        print(f"smtplab send: {reason}", file=sys.stderr)
        return 2
    frame = result.transcript
    print(format_transcript(frame))
    print()
    if transcript is not None:
        write_table(frame, transcript)
    if args.pipelining and not result.pipelined:
        print("Note: the server did not offer PIPELINING; commands went one at a time.")
    if (args.chunking or args.chunk_size) and not result.chunked:
        print("Note: the server did not offer CHUNKING; the message went with DATA.")
    if result.delivered:
        print(f"Accepted for {', '.join(result.accepted)}: {result.reply}")
    for address, reply in result.refused.items():
        print(f"Refused {address}: {reply}")
    return 0 if result.delivered and not result.refused else 1


def _limit(text: str) -> int | None:
    """A count for a limit option: a positive number, or 0 for no limit."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, not {value}")
    return value or None


def _serve(args: argparse.Namespace) -> int:
    from smtplab.cli.serve import main as serve_main

    return serve_main(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # e.g. `smtplab demo | head`: the reader has all it wanted
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
