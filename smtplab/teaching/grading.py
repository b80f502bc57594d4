"""Grading students' notebooks: each one run in a fresh kernel, each exercise's check read back.

A submission is a folder named for the student, holding the course notebooks they worked in
(any of them), or a single notebook (the student is then its folder's name). Every notebook
runs top to bottom (nbclient, ``timeout`` seconds a cell, errors allowed so that one wrong
answer does not hide the rest) in a temporary copy of the course's layout, beside the
fixtures it reads; the in-process lab needs no network. Each check cell (tagged ``check``, see
:mod:`smtplab.teaching.editions`) then says how its exercise went:

* ``right``: its output starts with ✔;
* ``wrong``: it raised the check's :class:`~smtplab.teaching.exercises.NotYet` (the hint);
* ``unanswered``: the placeholder was left (``answer = ...``);
* ``error``: anything else went wrong (the student's code raised, a cell timed out); the
  feedback says what.

The exercise of the n-th check cell of notebook ``NN-...`` is ``NN-n``, as the checks name it.
Student code runs with the grader's rights: grade on a machine or container meant for it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from smtplab.teaching.course import NOTEBOOKS

COLUMNS = ["student", "notebook", "exercise", "status", "points", "feedback"]
_NUMBERED = re.compile(r"^(\d\d)-.*\.ipynb$")


def grade(
    submissions: Iterable[str | Path],
    *,
    timeout: int = 120,
    fixtures: str | Path = NOTEBOOKS.parent / "tests" / "fixtures",
    progress: bool = True,
) -> pd.DataFrame:
    """One row per student and exercise: status, points (1 or 0) and the check's feedback."""
    from tqdm.auto import tqdm

    work = list(_notebooks(submissions))  # every submission checked before any runs
    rows: list[list[object]] = []
    for student, path in tqdm(work, desc="notebooks", unit="notebook", disable=not progress):
        rows += [[student, path.name, *result] for result in _run(path, Path(fixtures), timeout)]
    return pd.DataFrame(rows, columns=COLUMNS)


def wide(grades: pd.DataFrame) -> pd.DataFrame:
    """One row per student, one column per exercise (points), then ``total`` and
    ``percent_correct``: the layout of otter-grader's ``final_grades.csv``."""
    table = grades.pivot_table(
        index="student", columns="exercise", values="points", aggfunc="sum", fill_value=0
    )
    table["total"] = table.sum(axis=1)
    table["percent_correct"] = (100 * table["total"] / (len(table.columns) - 1)).round(1)
    return table.reset_index().rename(columns={"student": "file"})


def _notebooks(submissions: Iterable[str | Path]) -> Iterable[tuple[str, Path]]:
    for submission in map(Path, submissions):
        if submission.is_dir():
            found = sorted(p for p in submission.rglob("*.ipynb") if _NUMBERED.match(p.name))
            if not found:
                raise ValueError(f"{submission}: no course notebook (NN-name.ipynb) in it")
            yield from ((submission.name, path) for path in found)
        elif submission.is_file() and _NUMBERED.match(submission.name):
            yield submission.resolve().parent.name, submission
        else:
            raise ValueError(f"{submission}: not a folder of notebooks nor a course notebook")


def _run(path: Path, fixtures: Path, timeout: int) -> list[tuple[str, str, int, str]]:
    """(exercise, status, points, feedback) for each check cell of the notebook at ``path``."""
    import nbformat
    from nbclient import NotebookClient

    prefix = path.name[:2]
    notebook = nbformat.read(path, as_version=4)
    checks = [cell for cell in notebook.cells if "check" in cell.metadata.get("tags", [])]
    with tempfile.TemporaryDirectory(prefix="smtplab-grading-") as place:
        layout = Path(place)
        (layout / "notebooks").mkdir()
        if fixtures.is_dir():
            shutil.copytree(fixtures, layout / "tests" / "fixtures")
        client = NotebookClient(  # run in notebooks/, where its relative paths lead
            notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
            resources={"metadata": {"path": str(layout / "notebooks")}},
        )  # fmt: skip
        try:
            client.execute()
        except Exception as error:  # the kernel died, or would not start: every check says so
            failure = f"the notebook could not run: {type(error).__name__}: {error}"
            return [(f"{prefix}-{n}", "error", 0, failure) for n in range(1, len(checks) + 1)]
    return [(f"{prefix}-{n}", *_verdict(cell)) for n, cell in enumerate(checks, 1)]


def _verdict(cell: dict) -> tuple[str, int, str]:  # type: ignore[type-arg]
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        error = errors[0]
        if error.get("ename") == "NotYet":
            return "wrong", 0, str(error.get("evalue", "")).splitlines()[0]
        return "error", 0, f"{error.get('ename')}: {error.get('evalue')}"
    shown = " ".join(_text(output) for output in cell.get("outputs", []))
    if "✔" in shown:
        return "right", 1, shown.strip().splitlines()[0].lstrip("✔ ")
    if "not answered yet" in shown:
        return "unanswered", 0, ""
    if cell.get("execution_count") is None:
        return "error", 0, "the check did not run (a cell before it timed out?)"
    return "error", 0, f"the check showed no verdict: {shown.strip()[:200]}"


def _text(output: dict) -> str:  # type: ignore[type-arg]
    if "text" in output:
        return str(output["text"])
    data = output.get("data", {})
    return str(data.get("text/plain") or data.get("text/markdown") or "")
