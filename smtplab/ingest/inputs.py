"""Opening what ``smtplab.read`` is given: paths, directories walked, gzip (even cut or
damaged), FIFOs and devices read as streams; every line bounded; for a file that cannot be read,
its true reason (an empty file, a symbolic link loop, permission denied, a socket ...).
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import stat
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from smtplab.ingest.packets import CaptureProblems

#: Characters of a log or transcript line at most; a longer line is skipped (Postfix's own
#: lines stay under 2 KB, syslog's usual limit is 8 KB).
MAX_LINE = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


class IngestError(ValueError):
    """A file that cannot be read at all; the message names it and says why."""


class IngestWarning(UserWarning):
    """Parts of a file were skipped; the message says how many and where."""


def input_files(
    paths: str | Path | Iterable[str | Path],
) -> Iterator[tuple[Path, bool, str | None]]:
    """Each file to read, whether it was named (not found in a directory), and why it cannot
    be read (None: it can be tried)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    for item in paths:
        path = Path(item)
        mode, problem = _mode(path)
        if problem is not None or not stat.S_ISDIR(mode):
            if problem is None and stat.S_ISSOCK(mode):
                problem = "a socket, not a file: it cannot be read"
            yield path, True, problem
            continue
        found = False
        for inner in _walk(path):
            found = True
            yield inner
        if not found:
            yield path, True, "a directory with no files in it"


def _walk(directory: Path) -> Iterator[tuple[Path, bool, str | None]]:
    """The files under ``directory``, in name order, and why each cannot be read (a FIFO, a
    device or a socket is not read: it could block; a symbolic link to a directory is not
    followed, so a link loop cannot make the walk endless)."""
    unreadable: list[OSError] = []
    for top, directories, names in os.walk(directory, onerror=unreadable.append):
        directories.sort()
        for error in unreadable:
            yield Path(error.filename or top), False, _reason(error)
        unreadable.clear()
        for name in sorted(names):
            path = Path(top, name)
            mode, problem = _mode(path)
            if problem is None and not stat.S_ISREG(mode):
                problem = (
                    f"not a regular file ({_special(mode)}): not read from a directory, where "
                    "reading it could block; name it to read it as a stream"
                )
            yield path, False, problem
    for error in unreadable:  # the directory itself could not be listed
        yield Path(error.filename or directory), False, _reason(error)


def _mode(path: Path) -> tuple[int, str | None]:
    """The file type bits of ``path`` (links followed), or why it has none."""
    try:
        return path.stat().st_mode, None
    except FileNotFoundError:
        if path.is_symlink():
            return 0, f"a broken symbolic link (to {os.readlink(path)}): no such file"
        return 0, "no such file or directory"
    except OSError as error:
        return 0, _reason(error)


def _reason(error: OSError) -> str:
    """Why ``error`` stopped a file being read, in words."""
    if error.errno == errno.ELOOP:
        return "a symbolic link loop (too many levels of symbolic links)"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.ENOENT:
        return "no such file or directory"
    return f"cannot be read: {error.strerror or error}"


def _special(mode: int) -> str:
    """What kind of special file ``mode`` is."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"


def input_size(path: Path) -> int:
    """Octets of a regular file, for the progress bar (0: a stream, or not known)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


@contextmanager
def open_input(
    path: Path,
    bar: tqdm,  # type: ignore[type-arg]
    problems: CaptureProblems,
) -> Iterator[io.BufferedReader]:
    """``path`` as a buffered stream, unpacked if it is gzip-compressed. It is read from the
    start and never sought, so a FIFO (a shell's ``<(...)``) works as a file does."""
    try:
        raw = path.open("rb")
    except OSError as error:
        raise IngestError(f"{path}: {_reason(error)}") from None
    stream: io.BufferedReader = io.BufferedReader(_Counted(raw, bar))  # type: ignore[arg-type]
    try:
        if stream.peek(len(_GZIP_MAGIC))[: len(_GZIP_MAGIC)] == _GZIP_MAGIC:
            with gzip.open(stream) as unpacked:  # type: ignore[arg-type]
                yield io.BufferedReader(_CutShort(unpacked, path, problems))  # type: ignore[arg-type]
        else:
            yield stream
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
        raise IngestError(f"{path}: cannot be read: {error}") from None
    finally:
        raw.close()


def bounded_lines(text: IO[str], name: str, problems: CaptureProblems) -> Iterator[str]:
    """The lines of ``text``, each at most :data:`MAX_LINE` characters. A longer line is read
    in pieces and dropped (memory stays bounded), counted with its number; an empty line
    stands in for it, so the readers number the lines after it right."""
    readline = text.readline
    number = 0
    while line := readline(MAX_LINE):
        number += 1
        if len(line) < MAX_LINE or line[-1] in "\r\n":
            yield line
            continue
        while line and line[-1] not in "\r\n":  # the rest of the long line: dropped
            line = readline(MAX_LINE)
        problems.add(f"line longer than {MAX_LINE} characters", f"{name} line {number}")
        yield "\n"


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


class Replayed(io.RawIOBase):
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
    """A gzip stream whose premature end or damaged data is the end of the data, noted: what
    came before it is kept, as for an uncompressed file cut short."""

    def __init__(self, unpacked: IO[bytes], path: Path, problems: CaptureProblems) -> None:
        self._unpacked, self._path, self._problems = unpacked, path, problems
        self._octets = 0  # of content read so far
        self._over = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._over:
            return 0
        try:
            # read1: one step of decompression at a time, so that the octets before a cut or
            # damage are handed on (a readinto filling the whole buffer would drop them).
            data = self._unpacked.read1(len(buffer))  # type: ignore[attr-defined]
        except EOFError:
            what = (
                f"compressed file cut short after {self._octets} octets of content: "
                "the rest is lost"
                if self._octets
                else "not a readable gzip file: cut short before any content"
            )
        except (gzip.BadGzipFile, zlib.error) as error:
            if not self._octets:
                what = f"not a readable gzip file ({error})"
            else:
                what = (
                    f"compressed data damaged after {self._octets} octets of content "
                    f"({error}): the rest is lost"
                )
        else:
            count = len(data)
            buffer[:count] = data
            self._octets += count
            return count
        self._over = True
        self._problems.add(what, str(self._path))
        return 0
