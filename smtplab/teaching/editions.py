"""The course's notebooks as a teacher hands them out: a student edition and an instructor one.

Both come from the same notebooks. An exercise is an answer cell tagged ``solution`` (it ends
with ``answer = ...``, the value its check cell grades) and a check cell tagged ``check``
(``check("02-1", answer)``, see :mod:`smtplab.teaching.checks`). The **student** edition
replaces each solution cell by its placeholder (the cell's ``smtplab.placeholder`` metadata:
a comment saying what to give, and ``answer = ...``), tagged ``answer``; the **instructor**
edition keeps the solutions. Either is written with the fixtures the notebooks read, in the
layout they expect (``notebooks/`` beside ``tests/fixtures/``), ready to zip or to copy to a
JupyterHub.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from smtplab.teaching.course import NOTEBOOKS

Edition = Literal["student", "instructor"]
DEFAULT_PLACEHOLDER = "answer = ..."


def write_edition(
    output: str | Path, edition: Edition, notebooks: str | Path = NOTEBOOKS
) -> list[Path]:
    """Write ``edition`` of the numbered notebooks under ``output``; return their paths."""
    import nbformat  # the lab and test extras have it

    if edition not in ("student", "instructor"):
        raise ValueError(f"no {edition!r} edition: student or instructor")
    source = Path(notebooks)
    if not source.is_dir():
        raise ValueError(
            f"{source}: no such directory of notebooks. The course is built from a clone of "
            "the repository"
        )
    out = Path(output)
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source.glob("[0-9]*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        if edition == "student":
            for number, cell in enumerate(notebook.cells):
                if "solution" in cell.metadata.get("tags", []):
                    notebook.cells[number] = _placeholder(cell)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        target = out / "notebooks" / path.name
        nbformat.write(notebook, target)
        written.append(target)
    fixtures = source.parent / "tests" / "fixtures"
    if fixtures.is_dir():  # what the notebooks read, without the scripts that recorded it
        shutil.copytree(
            fixtures, out / "tests" / "fixtures", dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("*.py", "__pycache__"),
        )  # fmt: skip
    return written


def _placeholder(cell: Any) -> Any:
    """The student's cell in place of a solution cell (an nbformat NotebookNode)."""
    import nbformat

    text = cell.metadata.get("smtplab", {}).get("placeholder", DEFAULT_PLACEHOLDER)
    blank = nbformat.v4.new_code_cell(text, metadata={"tags": ["answer"]})
    blank.id = cell.get("id", blank.id)  # the same place in both editions
    return blank
