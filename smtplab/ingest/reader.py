"""One door for every captured format: ``smtplab.read(path)`` gives a transcript DataFrame.

The format is told from the content, not the name: a pcap or pcapng header, Postfix's syslog
lines, Exim's log lines (``mainlog``, ``rejectlog``: a ``<=``, ``=>``, ``**``, ``==``,
``Completed``, a refusal or a connection after Exim's timestamp), Sendmail's syslog lines
(``sendmail[PID]: QUEUEID: from=``, ``to=``, ``ruleset=`` ...), Zeek's ``smtp.log`` (its
``#separator`` and ``#path smtp`` header, or a JSON line with ``trans_depth``), Exchange's
message tracking log (``#Software: Microsoft Exchange Server`` and ``#Log-type: Message
Tracking Log``), a Microsoft 365 message trace (a header row naming Received, Sender address,
Recipient address, Status and Message trace ID), swaks's line markers, smtplib's
``send:``/``reply:`` lines, looked for in the first 64 KB (:data:`DETECT_WINDOW`), as a shared
``mail.log`` may start with many lines of other programs before Postfix's first. A syslog
file with no Postfix (nor Sendmail) line in that window is refused with an
:class:`IngestError` that says so, rather than read as an empty transcript: an empty
frame would claim the server saw no sessions, which the reader cannot know without reading
the whole file (``format="postfix"`` reads it all the same). Files may be gzip-compressed
(``.gz``) and a directory stands for every file under it. Each file is read as a stream, so
memory follows the rows produced, not the file's size; a progress bar follows the octets read.

Bad input loses as little as possible: unreadable packets or lines are skipped and counted, and
one :class:`IngestWarning` per file says how many and where the first ones are (file and packet
or line number). The same summary is in ``frame.attrs["skipped"]``. A line longer than
:data:`MAX_LINE` characters is skipped the same way, read in pieces so memory stays bounded; a
gzip file cut short or damaged keeps what came before the damage, noted the same way.

A file that cannot be read at all (missing, empty, binary, of no known format, a damaged gzip
file, a symbolic link loop, permission denied) is an :class:`IngestError` naming it and saying
why. As ``pandas.read_csv`` does, a single file named alone raises it. Among several inputs, or
in a directory, the bad file is skipped with an :class:`IngestWarning` naming it (listed in
``frame.attrs["skipped"]`` too) and the rest is read, as ``grep -r`` or ``tar`` go on past a
file they cannot read; only when no input at all could be read is it an :class:`IngestError`.

Special files: a FIFO or a character device named as an input is read as a stream, as ``cat``
and ``grep`` read them (``smtplab ingest <(zcat mail.log.gz)`` passes a pipe); found in a
directory, one is skipped with a warning, since reading it could block for ever (``grep -r``
skips devices too). A socket cannot be read at all.
"""

from __future__ import annotations

import datetime as dt
import gc
import io
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import chain, groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from smtplab.ingest.capture import CaptureReader
from smtplab.ingest.exchange import EXCHANGE_HEADER, ExchangeFormatError, ExchangeReader
from smtplab.ingest.exim import EXIM_EVENT, EximFormatError, EximReader
from smtplab.ingest.inputs import (
    IngestError,
    IngestWarning,
    Replayed,
    bounded_lines,
    input_files,
    input_size,
    open_input,
)
from smtplab.ingest.m365 import M365_HEADER, M365FormatError, M365Reader
from smtplab.ingest.packets import CaptureError, CaptureProblems, is_capture
from smtplab.ingest.postfix import ANY_PROGRAM_LINE, RFC3339_LINE, SYSLOG_LINE, PostfixReader
from smtplab.ingest.sendmail import SENDMAIL_EVENT, SendmailFormatError, SendmailReader
from smtplab.ingest.transcripts import (
    SMTPLIB_LINE,
    SWAKS_LINE,
    SWAKS_REPLY,
    read_smtplib,
    read_swaks,
)
from smtplab.ingest.zeek import ZEEK_JSON_LINE, ZEEK_TSV_HEADER, ZeekFormatError, ZeekReader
from smtplab.log.frame import to_frame

FORMATS = ("pcap", "postfix", "exim", "sendmail", "zeek", "exchange", "m365", "swaks", "smtplib")
#: How much of a file's start :func:`detect` looks at, in octets (the binary test: 4 KB).
DETECT_WINDOW = 64 * 1024
_BINARY_WINDOW = 4096
#: Sessions streamed between two runs of the (otherwise paused) garbage collector: a safety net,
#: as the readers make no reference cycles (a 100 MB log and a capture left none to collect).
_COLLECT_EVERY = 100_000
#: Bad files named in the error when no input could be read.
_LISTED = 3


def read(
    paths: str | Path | Iterable[str | Path],
    format: str = "auto",
    *,
    year: int | None = None,
    day: dt.date | None = None,
    progress: bool | None = None,
) -> Any:
    """Read captures, logs or transcripts into one transcript DataFrame.

    ``format`` is ``auto`` (told from each file's content) or one of :data:`FORMATS`:
    ``pcap`` (pcap or pcapng), ``postfix`` (its syslog lines), ``exim`` (its ``mainlog`` or
    ``rejectlog``), ``sendmail`` (its syslog lines), ``zeek`` (Zeek's ``smtp.log``, TSV or
    JSON), ``exchange`` (Exchange Server's message tracking log), ``m365`` (a Microsoft 365
    message trace exported as CSV), ``swaks`` (its output), ``smtplib`` (``set_debuglevel``
    output).
    ``year`` is the year of classic syslog timestamps, which have none (default: the file's
    modification year); ``day`` the date of ``smtplib`` debug level 2 times of day (default:
    none, and the time column stays missing). ``progress`` shows a bar (default: for inputs
    over 10 MB).

    A file named alone that cannot be read raises :class:`IngestError`; among several inputs
    or in a directory it is skipped with an :class:`IngestWarning` (see the module docstring).
    """
    files = _checked(paths, format)
    with _collector_paused():
        parts, skipped = _readinput_files(files, format, year, day, progress, _prefixes())
        frame = to_frame(parts[0] if len(parts) == 1 else list(chain.from_iterable(parts)))
        parts.clear()  # the rows go now, by reference counting, before the collector is back
    frame.attrs["skipped"] = skipped
    return frame


#: Takes the rows of one whole session (a reader streaming its sessions as they end).
SessionSink = Callable[[list[tuple]], None]  # type: ignore[type-arg]


def read_sessions(
    paths: str | Path | Iterable[str | Path],
    ended: SessionSink,
    prefix: Callable[[Path], str],
    format: str = "auto",
    *,
    year: int | None = None,
    day: dt.date | None = None,
    progress: bool | None = None,
) -> dict[str, dict[str, Any]]:
    """Read as :func:`read` does, but hand each session's rows to ``ended`` as soon as they are
    complete rather than build a frame: memory follows the sessions open at once, not the
    input's size. ``prefix`` names a file's sessions (``PREFIX-1``, ...; a Postfix session
    is named for its host too: ``HOST/PREFIX-1``). Captures hand a session on when its
    connection closes, Postfix logs :data:`~smtplab.ingest.postfix.LATE_LINES` seconds of
    log time after its disconnect (its queue's lines come later), client transcripts (small)
    when the file is read. Returns what was skipped, as ``frame.attrs["skipped"]``."""
    files = _checked(paths, format)
    handed_on = 0

    def hand_on(rows: list[tuple]) -> None:  # type: ignore[type-arg]
        nonlocal handed_on
        ended(rows)
        handed_on += 1
        if handed_on % _COLLECT_EVERY == 0:
            gc.collect()  # the collector is paused (see _collector_paused): any cycles go now

    with _collector_paused():
        return _readinput_files(files, format, year, day, progress, prefix, hand_on)[1]


def _checked(
    paths: str | Path | Iterable[str | Path], format: str
) -> list[tuple[Path, bool, str | None]]:
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"format must be 'auto' or one of {', '.join(FORMATS)}, not {format!r}")
    return list(input_files(paths))


def _readinput_files(
    files: list[tuple[Path, bool, str | None]],
    format: str,
    year: int | None,
    day: dt.date | None,
    progress: bool | None,
    prefix: Callable[[Path], str],
    ended: SessionSink | None = None,
) -> tuple[list[list[tuple]], dict[str, dict[str, Any]]]:  # type: ignore[type-arg]
    """Every file's rows (none when streaming to ``ended``) and what was skipped."""
    alone = len(files) == 1 and files[0][1]  # one file, named: its error is raised
    total = sum(input_size(path) for path, _, problem in files if problem is None)
    show = progress if progress is not None else total > 10_000_000
    parts: list[list[tuple]] = []  # type: ignore[type-arg]  # one per file
    skipped: dict[str, dict[str, Any]] = {}
    failed: list[str] = []  # the files that could not be read at all
    with tqdm(total=total, unit="B", unit_scale=True, disable=not show, desc="smtplab") as bar:
        for path, _, problem in files:
            problems = CaptureProblems()
            try:
                if problem is not None:
                    raise IngestError(f"{path}: {problem}")
                reading = _Reading(path, format, prefix(path), problems, year, day, bar, ended)
                parts.append(_read_one(reading))
            except IngestError as error:
                if alone:
                    raise
                # A bad file among others (or a README in a directory): say so, read the rest.
                warnings.warn(f"skipped {error}", IngestWarning, stacklevel=3)
                skipped[str(path)] = {"counts": {"file not read": 1}, "examples": [str(error)]}
                failed.append(str(error))
                continue
            if problems.total:
                skipped[str(path)] = {"counts": problems.counts, "examples": problems.examples}
                first = "; ".join(problems.examples[:3])
                warnings.warn(
                    f"{path}: skipped {problems.total} unreadable part(s) ({first})",
                    IngestWarning,
                    stacklevel=3,
                )
    if not parts and failed:
        more = f"; and {len(failed) - _LISTED} more" if len(failed) > _LISTED else ""
        raise IngestError("nothing could be read: " + "; ".join(failed[:_LISTED]) + more)
    return parts, skipped


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused, as for any bulk load: reading a log makes
    hundreds of thousands of rows and session recorders that all live on, and the collector
    would walk them again and again (a third of the read's time) to find no cycle in them.
    Memory is still freed as usual (reference counting); the collector runs again after,
    when the rows are gone into the frame's columns."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Reading(NamedTuple):
    """One file to read, and how."""

    path: Path
    format: str
    prefix: str
    problems: CaptureProblems
    year: int | None
    day: dt.date | None
    bar: tqdm  # type: ignore[type-arg]
    ended: SessionSink | None  # streaming: sessions go here as they end


def _read_one(reading: _Reading) -> list[tuple]:  # type: ignore[type-arg]
    """The rows of one file (none when streaming: they went to ``reading.ended``)."""
    path, format, prefix, problems, year, day, bar, ended = reading
    with open_input(path, bar, problems) as stream:
        head = stream.peek(_BINARY_WINDOW)[:_BINARY_WINDOW]
        if not head and problems.total:
            raise IngestError(f"{path}: {problems.examples[0].split(': ', 1)[-1]}")
        if not head and format == "auto":
            raise IngestError(f"{path}: an empty file: nothing to read")
        kind = format
        if kind == "auto":
            if is_capture(head):
                kind = "pcap"
            else:  # read the detection window, then give it back to the reader
                window = stream.read(DETECT_WINDOW)
                stream = io.BufferedReader(Replayed(window, stream), DETECT_WINDOW)
                kind = detect(path, window)
        if kind == "pcap":
            try:
                return CaptureReader(str(path), prefix, problems, ended).read(stream)
            except CaptureError as error:
                raise IngestError(str(error)) from None
        wrapper = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
        text = bounded_lines(wrapper, str(path), problems)
        last_month = None
        if year is None and kind in ("postfix", "sendmail"):
            # the file's year, and a line of a later month is of the year before
            written = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
            year, last_month = written.year, written.month
        if kind == "postfix":
            assert year is not None
            # Streamed sessions are on their way to a dataset that gathers many hosts' logs:
            # their names say the host.
            reader = PostfixReader(
                str(path), prefix, problems, year, last_month, ended, host_in_names=bool(ended)
            )
            return reader.read(text)
        if kind == "swaks":
            rows = read_swaks(text, str(path), prefix, problems)
        elif kind == "exim":
            try:
                rows = EximReader(str(path), prefix, problems).read(text)
            except EximFormatError as error:
                raise IngestError(str(error)) from None
        elif kind in _CSV_READERS:
            reader, error_type = _CSV_READERS[kind]
            try:
                rows = reader(str(path), prefix, problems).read(text)
            except error_type as error:
                raise IngestError(str(error)) from None
        elif kind == "zeek":
            try:
                rows = ZeekReader(str(path), prefix, problems).read(text)
            except ZeekFormatError as error:
                raise IngestError(str(error)) from None
        elif kind == "sendmail":
            assert year is not None
            try:
                rows = SendmailReader(str(path), prefix, problems, year, last_month).read(text)
            except SendmailFormatError as error:
                raise IngestError(str(error)) from None
        else:
            rows = read_smtplib(text, str(path), prefix, problems, day)
        if ended is not None:  # a client's transcript is small: its sessions go on at its end
            # (an Exim or Sendmail log too: a message's lines may come long after its session)
            for _, session in groupby(rows, key=itemgetter(0)):
                ended(list(session))
            return []
        return rows


#: The readers of Microsoft's CSV files, and the error each raises for another format.
_CSV_READERS: dict[str, tuple[Any, type[ValueError]]] = {
    "exchange": (ExchangeReader, ExchangeFormatError),
    "m365": (M365Reader, M365FormatError),
}


def detect(path: Path, head: bytes) -> str:
    """The format of a file from its first octets, up to :data:`DETECT_WINDOW` of them (see
    the module docstring)."""
    if is_capture(head):
        return "pcap"
    start = head[:_BINARY_WINDOW]
    if b"\0" in start or (start and sum(b < 9 or 13 < b < 32 for b in start) > len(start) // 20):
        raise IngestError(
            f"{path}: a binary file that is not a pcap or pcapng capture; "
            "smtplab reads captures, Postfix, Exim and Sendmail logs, Zeek's smtp.log, "
            "Exchange and Microsoft 365 message traces, swaks and smtplib transcripts"
        )
    window = head.decode("utf-8", "replace")
    if ZEEK_TSV_HEADER.search(window) or ZEEK_JSON_LINE.match(window.lstrip()):
        return "zeek"
    if EXCHANGE_HEADER.search(window):
        return "exchange"
    if M365_HEADER.search(window):
        return "m365"
    syslog = False  # a syslog line of some program seen
    for line in window.splitlines():
        if (line.startswith("=== ") and SWAKS_LINE.match(line)) or SWAKS_REPLY.match(line):
            return "swaks"
        if SMTPLIB_LINE.match(line):
            return "smtplib"
        if EXIM_EVENT.match(line):
            return "exim"
        if SENDMAIL_EVENT.match(line):
            return "sendmail"
        match = SYSLOG_LINE.match(line) or RFC3339_LINE.match(line)
        if match and match["program"].startswith("postfix"):
            return "postfix"
        syslog = syslog or ANY_PROGRAM_LINE.match(line) is not None
    if syslog:
        raise IngestError(
            f"{path}: a syslog file with no Postfix line in its first "
            f"{min(len(head), DETECT_WINDOW) // 1024 or 1} KB, nor a Sendmail one; if Postfix or "
            "Sendmail logs "
            "further on, read it with format='postfix' or format='sendmail' (on the command "
            "line: --format postfix)"
        )
    raise IngestError(
        f"{path}: cannot tell its format from its first lines: not a pcap or pcapng capture, "
        "Postfix, Exim or Sendmail log, Zeek smtp.log, Exchange message tracking log or "
        "Microsoft 365 message trace, swaks or smtplib transcript; name one "
        "with format='...' "
        "(on the command line: --format ...)"
    )


def _prefixes() -> Callable[[Path], str]:
    """Session id prefixes for the files of one read: a file's name without extensions, made
    unique (``maillog``, ``maillog2``, ...)."""
    used: dict[str, int] = {}

    def prefix(path: Path) -> str:
        stem = path.name.split(".")[0] or "capture"
        used[stem] = used.get(stem, 0) + 1
        return stem if used[stem] == 1 else f"{stem}{used[stem]}"

    return prefix
