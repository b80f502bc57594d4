"""Student and instructor editions, and checks that never give the answer away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from smtplab.teaching.checks import EXERCISES, check, digest
from smtplab.teaching.course import NOTEBOOKS
from smtplab.teaching.editions import write_edition
from smtplab.teaching.exercises import NotYet

#: The right answers of the exercises converted so far, as their solution cells compute them.
RIGHT = {
    "01-1": {"dave@example.org"},
    "01-2": (503, "5.5.1"),
    "01-3": (554, {503, 554}),
    "01-4": True,
    "02-1": ("transient negative", "about the connection (x2z)"),
    "02-2": ("4.2.2", True),
    "02-3": (214, 3),
}
#: What a right answer would show if printed: feedback must contain none of it.
GIVEAWAYS = {
    "01-1": ["dave@"],
    "01-2": ["503", "5.5.1"],
    "01-3": ["554", "503"],
    "01-4": ["True"],
    "02-1": ["transient negative", "x2z"],
    "02-2": ["4.2.2"],
    "02-3": ["214", "3 lines", "three"],
}
CONVERTED = ["01-first-transaction.ipynb", "02-anatomy-of-a-reply.ipynb"]


def test_every_exercise_keeps_a_digest_of_its_right_answer_and_a_hint_without_it() -> None:
    assert set(RIGHT) <= set(EXERCISES)
    for key, answer in RIGHT.items():
        assert EXERCISES[key].digest == digest(key, answer), key
        assert check(key, answer).ok
        said = f"{EXERCISES[key].hint} {EXERCISES[key].rfc}"
        assert not [word for word in GIVEAWAYS[key] if word in said], key
    # The same answer written another way is right too; a placeholder is not an error.
    assert check("02-1", ("Transient  Negative", "About the connection (x2z)")).ok
    assert check("01-3", [554, {554, 503}]).ok
    assert not check("01-1", ...).ok


def test_a_wrong_answer_is_one_line_with_a_hint_and_never_the_answer() -> None:
    with pytest.raises(NotYet) as raised:
        check("02-2", ("5.2.2", False))
    assert raised.value._render_traceback_() == [
        "✘ not yet: the enhanced code's subject 2 is the mailbox; its class digit says whether"
        " to retry (RFC 3463 3.3)"
    ]


def test_the_student_edition_has_placeholders_where_the_solutions_were(tmp_path: Path) -> None:
    student = write_edition(tmp_path / "student", "student")
    instructor = write_edition(tmp_path / "instructor", "instructor")
    assert [p.name for p in student] == [p.name for p in instructor]
    assert (tmp_path / "student" / "tests" / "fixtures" / "smtp.pcapng").exists()
    assert not list((tmp_path / "student" / "tests" / "fixtures").glob("*.py"))
    for name in CONVERTED:
        given = (tmp_path / "student" / "notebooks" / name).read_text()
        kept = (tmp_path / "instructor" / "notebooks" / name).read_text()
        assert "answer = set(result.refused)" not in given and "CLASS_NAMES[4]" not in given
        assert ("answer = set(result.refused)" in kept) or ("CLASS_NAMES[4], CATEGORIES[2]" in kept)
        assert given.count('"answer"') == kept.count('"solution"') > 0  # tags, one each


def run(notebook: Path) -> nbformat.NotebookNode:
    node = nbformat.read(notebook, as_version=4)
    NotebookClient(
        node, timeout=300, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(notebook.parent)}},
    ).execute()  # fmt: skip
    return node


@pytest.mark.parametrize("name", CONVERTED)
def test_the_student_edition_runs_and_a_wrong_answer_gets_a_hint_not_the_answer(
    name: str, tmp_path: Path
) -> None:
    write_edition(tmp_path, "student")
    path = tmp_path / "notebooks" / name
    untouched = run(path)
    checks = [c for c in untouched.cells if "check" in c.metadata.get("tags", [])]
    assert checks and all(
        "not answered yet" in str(c.outputs) and c.outputs[0].output_type != "error" for c in checks
    )
    wrong = nbformat.read(path, as_version=4)
    for cell in wrong.cells:
        if "answer" in cell.metadata.get("tags", []):
            cell.source = cell.source.replace("answer = ...", 'answer = ("a", "wrong", "answer")')
    nbformat.write(wrong, path)
    for cell in run(path).cells:
        if "check" not in cell.metadata.get("tags", []):
            continue
        key = cell.source.split('"')[1]
        (error,) = [output for output in cell.outputs if output.output_type == "error"]
        (line,) = error.traceback  # one line: no traceback into smtplab
        assert line.startswith("✘ not yet: ") and EXERCISES[key].rfc in line
        assert not [word for word in GIVEAWAYS[key] if word in line], (key, line)


def test_the_build_command_writes_an_edition(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "smtplab", "course", "build", str(tmp_path), "--student"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    count = len(list(NOTEBOOKS.glob("[0-9]*.ipynb")))
    assert f"the student edition: {count} notebooks" in done.stdout
