"""One door for every captured format: ``smtplab.read(path)`` gives a transcript DataFrame.

The format is told from the content, not the name: a pcap or pcapng header, Postfix's syslog
lines, swaks's line markers, smtplib's ``send:``/``reply:`` lines, looked for in the first
64 KB (:data:`DETECT_WINDOW`), as a shared ``mail.log`` may start with many lines of other
programs before Postfix's first. A syslog file with no Postfix line in that window is refused
with an :class:`IngestError` that says so, rather than read as an empty transcript: an empty
frame would claim the server saw no sessions, which the reader cannot know without reading
the whole file (``format="postfix"`` reads it all the same). Files may be gzip-compressed
(``.gz``) and a directory stands for every file under it. Each file is read as a stream, so
memory follows the rows produced, not the file's size; a progress bar follows the octets read.

Bad input loses as little as possible: unreadable packets or lines are skipped and counted, and
one :class:`IngestWarning` per file says how many and where the first ones are (file and packet
or line number). The same summary is in ``frame.attrs["skipped"]``. A file that cannot be read
at all (missing, binary, of no known format) raises :class:`IngestError` naming it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from smtplab.ingest.capture import CaptureReader
from smtplab.ingest.packets import CaptureError, CaptureProblems, is_capture
from smtplab.ingest.postfix import ANY_PROGRAM_LINE, RFC3339_LINE, SYSLOG_LINE, PostfixReader
from smtplab.ingest.transcripts import (
    SMTPLIB_LINE,
    SWAKS_LINE,
    SWAKS_REPLY,
    read_smtplib,
    read_swaks,
)
from smtplab.log.columns import LogColumns
from smtplab.log.frame import to_frame

FORMATS = ("pcap", "postfix", "swaks", "smtplib")
#: How much of a file's start :func:`detect` looks at, in octets (the binary test: 4 KB).
DETECT_WINDOW = 64 * 1024
_BINARY_WINDOW = 4096


class IngestError(ValueError):
    """A file that cannot be read at all; the message names it and says why."""


class IngestWarning(UserWarning):
    """Parts of a file were skipped; the message says how many and where."""


def read(
    paths: str | Path | Iterable[str | Path],
    format: str = "auto",
    *,
    year: int | None = None,
    day: dt.date | None = None,
    progress: bool | None = None,
) -> Any:
    """Read captures, logs or transcripts into one transcript DataFrame.

    ``format`` is ``auto`` (told from each file's content) or one of :data:`FORMATS`.
    ``year`` is the year of classic syslog timestamps, which have none (default: the file's
    modification year); ``day`` the date of ``smtplib`` debug level 2 times of day (default:
    none, and the time column stays missing). ``progress`` shows a bar (default: for inputs
    over 10 MB).
    """
    if format != "auto" and format not in FORMATS:
        raise ValueError(f"format must be 'auto' or one of {', '.join(FORMATS)}, not {format!r}")
    files = list(_files(paths))
    total = sum(path.stat().st_size for path, _ in files)
    show = progress if progress is not None else total > 10_000_000
    parts: list[list[tuple] | LogColumns] = []  # type: ignore[type-arg]  # one per file
    skipped: dict[str, dict[str, Any]] = {}
    prefixes: dict[str, int] = {}
    with tqdm(total=total, unit="B", unit_scale=True, disable=not show, desc="smtplab") as bar:
        for path, named in files:
            prefix = _prefix(path, prefixes)
            problems = CaptureProblems()
            try:
                parts.append(_read_one(path, format, prefix, problems, year, day, bar))
            except IngestError as error:
                if named:
                    raise
                # A file in a directory that is none of ours (a README, a script): say so.
                warnings.warn(f"skipped {error}", IngestWarning, stacklevel=2)
                skipped[str(path)] = {"counts": {"unknown format": 1}, "examples": [str(error)]}
                continue
            if problems.total:
                skipped[str(path)] = {"counts": problems.counts, "examples": problems.examples}
                first = "; ".join(problems.examples[:3])
                warnings.warn(
                    f"{path}: skipped {problems.total} unreadable part(s) ({first})",
                    IngestWarning,
                    stacklevel=2,
                )
    if len(parts) == 1 and isinstance(parts[0], LogColumns):
        frame = parts[0].to_frame()  # a log alone: built column by column
    else:
        rows: list[tuple] = []  # type: ignore[type-arg]
        for part in parts:
            rows += part.tuples() if isinstance(part, LogColumns) else part
        frame = to_frame(rows)
    frame.attrs["skipped"] = skipped
    return frame


def _read_one(
    path: Path,
    format: str,
    prefix: str,
    problems: CaptureProblems,
    year: int | None,
    day: dt.date | None,
    bar: tqdm,  # type: ignore[type-arg]
) -> list[tuple] | LogColumns:  # type: ignore[type-arg]
    with _open(path, bar, problems) as stream:
        head = stream.peek(_BINARY_WINDOW)[:_BINARY_WINDOW]
        if not head and problems.total:
            raise IngestError(f"{path}: {problems.examples[0].split(': ', 1)[-1]}")
        kind = format
        if kind == "auto":
            if is_capture(head):
                kind = "pcap"
            else:  # read the detection window, then give it back to the reader
                window = stream.read(DETECT_WINDOW)
                stream = io.BufferedReader(_Replayed(window, stream), DETECT_WINDOW)
                kind = detect(path, window)
        if kind == "pcap":
            try:
                return CaptureReader(str(path), prefix, problems).read(stream)
            except CaptureError as error:
                raise IngestError(str(error)) from None
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
        if kind == "postfix":
            if year is not None:
                return PostfixReader(str(path), prefix, problems, year).read(text)
            written = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
            reader = PostfixReader(str(path), prefix, problems, written.year, written.month)
            return reader.read(text)
        if kind == "swaks":
            return read_swaks(text, str(path), prefix, problems)
        return read_smtplib(text, str(path), prefix, problems, day)


def detect(path: Path, head: bytes) -> str:
    """The format of a file from its first octets, up to :data:`DETECT_WINDOW` of them (see
    the module docstring)."""
    if is_capture(head):
        return "pcap"
    start = head[:_BINARY_WINDOW]
    if b"\0" in start or (start and sum(b < 9 or 13 < b < 32 for b in start) > len(start) // 20):
        raise IngestError(
            f"{path}: a binary file that is not a pcap or pcapng capture; "
            "smtplab reads captures, Postfix logs, swaks and smtplib transcripts"
        )
    syslog = False  # a syslog line of some program seen
    for line in head.decode("utf-8", "replace").splitlines():
        if (line.startswith("=== ") and SWAKS_LINE.match(line)) or SWAKS_REPLY.match(line):
            return "swaks"
        if SMTPLIB_LINE.match(line):
            return "smtplib"
        match = SYSLOG_LINE.match(line) or RFC3339_LINE.match(line)
        if match and match["program"].startswith("postfix"):
            return "postfix"
        syslog = syslog or ANY_PROGRAM_LINE.match(line) is not None
    if syslog:
        raise IngestError(
            f"{path}: a syslog file with no Postfix line in its first "
            f"{min(len(head), DETECT_WINDOW) // 1024 or 1} KB; if Postfix logs further on, "
            "read it with format='postfix'"
        )
    raise IngestError(
        f"{path}: cannot tell its format from its first lines: not a pcap or pcapng capture, "
        "Postfix log, swaks or smtplib transcript; name one with format="
    )


def _files(paths: str | Path | Iterable[str | Path]) -> Iterator[tuple[Path, bool]]:
    """Each file to read, and whether it was named (not found in a directory)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    for item in paths:
        path = Path(item)
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                yield found, False
        elif path.is_file():
            yield path, True
        else:
            raise IngestError(f"{path}: no such file or directory")


@contextmanager
def _open(
    path: Path,
    bar: tqdm,  # type: ignore[type-arg]
    problems: CaptureProblems,
) -> Iterator[io.BufferedReader]:
    try:
        raw = path.open("rb")
    except OSError as error:
        raise IngestError(f"{path}: cannot be read: {error.strerror}") from None
    counted = _Counted(raw, bar)
    try:
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            with gzip.open(counted) as unpacked:  # type: ignore[arg-type]
                yield io.BufferedReader(_CutShort(unpacked, path, problems))  # type: ignore[arg-type]
        else:
            raw.seek(0)
            yield io.BufferedReader(counted)  # type: ignore[arg-type]
    except (EOFError, gzip.BadGzipFile, OSError) as error:
        raise IngestError(f"{path}: cannot be read: {error}") from None
    finally:
        raw.close()


class _Counted(io.RawIOBase):
    """A file whose reads move a progress bar."""

    def __init__(self, raw: IO[bytes], bar: tqdm) -> None:  # type: ignore[type-arg]
        self._raw, self._bar = raw, bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        self._bar.update(count or 0)
        return count or 0


class _Replayed(io.RawIOBase):
    """A stream whose first octets were read already (``head``), given back before the rest."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head, self._rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        return self._rest.readinto(buffer)  # type: ignore[attr-defined,no-any-return]


class _CutShort(io.RawIOBase):
    """A gzip stream whose premature end is the end of the data, noted: what came before it
    is kept, as for an uncompressed file cut short."""

    def __init__(self, unpacked: IO[bytes], path: Path, problems: CaptureProblems) -> None:
        self._unpacked, self._path, self._problems = unpacked, path, problems

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._unpacked.readinto(buffer) or 0  # type: ignore[attr-defined]
        except EOFError:
            self._problems.add("compressed file cut short: the rest is lost", str(self._path))
            return 0


def _prefix(path: Path, used: dict[str, int]) -> str:
    """The session id prefix for a file: its name without extensions, made unique."""
    stem = path.name.split(".")[0] or "capture"
    used[stem] = used.get(stem, 0) + 1
    return stem if used[stem] == 1 else f"{stem}{used[stem]}"
