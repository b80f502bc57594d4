"""Grading: two students' notebooks run, one row per student and exercise."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd

from smtplab.teaching.editions import write_edition
from smtplab.teaching.grading import grade, wide

NOTEBOOKS = ["01-first-transaction.ipynb", "02-anatomy-of-a-reply.ipynb"]


def students(tmp_path: Path) -> list[Path]:
    """ann handed in the instructor edition (every answer right); bob answered notebook 1
    wrongly but exercise 4, raised in exercise 2, and left notebook 2 untouched."""
    write_edition(tmp_path / "instructor", "instructor")
    write_edition(tmp_path / "student", "student")
    ann, bob = tmp_path / "hand-in" / "ann", tmp_path / "hand-in" / "bob"
    for folder, edition in ((ann, "instructor"), (bob, "student")):
        folder.mkdir(parents=True)
        for name in NOTEBOOKS:
            shutil.copyfile(tmp_path / edition / "notebooks" / name, folder / name)
    notebook = nbformat.read(bob / NOTEBOOKS[0], as_version=4)
    answers = [c for c in notebook.cells if "answer" in c.metadata.get("tags", [])]
    answers[0].source = 'answer = {"carol@example.org"}'  # wrong
    answers[1].source = 'del answer\nraise RuntimeError("my client crashed")'  # no answer
    answers[2].source = "answer = (503, {503, 554})"  # wrong
    answers[3].source = "answer = True"  # right
    nbformat.write(notebook, bob / NOTEBOOKS[0])
    return [ann, bob]


def test_two_students_get_one_row_per_exercise(tmp_path: Path) -> None:
    grades = grade(students(tmp_path), progress=False)
    assert list(grades.columns) == [
        "student", "notebook", "exercise", "status", "points", "feedback"
    ]  # fmt: skip
    by = grades.set_index(["student", "exercise"])
    assert (by.loc["ann", "status"] == "right").all() and len(by.loc["ann"]) == 7
    assert by.loc[("bob", "01-1"), "status"] == "wrong"
    assert by.loc[("bob", "01-1"), "feedback"].startswith("not yet: ")
    assert "dave@" not in by.loc[("bob", "01-1"), "feedback"]  # the answer is not given
    assert by.loc[("bob", "01-2"), "status"] == "error"
    assert by.loc[("bob", "01-2"), "feedback"].startswith("NameError")
    assert by.loc[("bob", "01-3"), "status"] == "wrong"
    assert by.loc[("bob", "01-4"), "status"] == "right"
    assert set(by.loc["bob"].loc[["02-1", "02-2", "02-3"], "status"]) == {"unanswered"}
    table = wide(grades).set_index("file")
    assert table.loc["ann", "total"] == 7 and table.loc["ann", "percent_correct"] == 100.0
    assert table.loc["bob", "total"] == 1 and table.loc["bob", "01-4"] == 1


def test_the_grade_command_writes_grades_csv(tmp_path: Path) -> None:
    ann, bob = students(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "smtplab", "course", "grade", str(ann), str(bob / NOTEBOOKS[1]),
         "-o", str(tmp_path / "grades.csv"), "--wide", str(tmp_path / "final_grades.csv")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "2 student(s), 10 graded exercises, 7 right" in done.stdout
    grades = pd.read_csv(tmp_path / "grades.csv")
    assert len(grades) == 10 and set(grades["student"]) == {"ann", "bob"}
    assert list(pd.read_csv(tmp_path / "final_grades.csv").columns)[-2:] == [
        "total",
        "percent_correct",
    ]
    missing = subprocess.run(
        [sys.executable, "-m", "smtplab", "course", "grade", str(tmp_path / "nobody"), "-o", "x"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 2 and "not a folder of notebooks" in missing.stderr
