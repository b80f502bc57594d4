"""What the hostile-log tests of every reader share: the file they read, and how they read it."""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

import smtplab
from smtplab.log.limits import MAX_ARGUMENT, MAX_TEXT

FIXTURES = Path(__file__).parents[1] / "fixtures"


def hostile_log(
    path: Path, fixture: str, lines: list[str], overlong: bytes, after: bytes = b""
) -> Path:
    """The fixture (so detection sees its format), then ``lines``, 20,000 octets of binary junk
    (no NUL: the file still reads as text), the ``overlong`` line past the reader's bound, and
    ``after``."""
    junk = random.Random(18)
    binary = bytes(junk.randrange(256) for _ in range(20_000)).replace(b"\0", b"\1")
    with path.open("wb") as out:
        out.write((FIXTURES / fixture).read_bytes())
        for line in lines:
            out.write(line.encode())
        out.write(binary + b"\n")
        out.write(overlong + b"\n")
        out.write(after)
    return path


def read_warned(path: Path, **options: Any) -> tuple[pd.DataFrame, list[warnings.WarningMessage]]:
    """``smtplab.read(path, **options)`` and the IngestWarnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = smtplab.read(path, **options)
    return frame, [w for w in caught if issubclass(w.category, smtplab.IngestWarning)]


def assert_rows_bounded(frame: pd.DataFrame) -> None:
    """Every text and argument within its bound (cut ones end in "…")."""
    for column, bound in (("text", MAX_TEXT), ("argument", MAX_ARGUMENT)):
        assert (frame[column].dropna().str.len() <= bound + 1).all(), column
