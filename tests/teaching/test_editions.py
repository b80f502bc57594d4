"""Student and instructor editions, and checks that never give the answer away."""

from __future__ import annotations

import re
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
    "03-1": (5, 900),
    "03-2": (False, True),
    "03-3": (250, "<alice@example.org>"),
    "04-1": 10485760,
    "04-2": 4,
    "04-3": 3,
    "05-1": (538, "5.7.11"),
    "05-2": False,
    "05-3": "Password:",
    "06-1": ("SMTPRecipientsRefused", 451),
    "06-2": ["250", "250", "550", "354"],
    "07-1": ("smtp-9", 3),
    "07-2": ["EHLO", "EHLO", "STARTTLS", "MAIL", "RCPT", "DATA", "QUIT"],
    "08-1": 8.7,
    "08-2": ("friend@elsewhere.example", "5.7.1"),
    "08-3": (554, "5.5.1"),
    "09-1": (0, "5.6.0"),
    "09-2": {"smuggling-lf-dot-lf", "smuggling-lf-dot-crlf", "smuggling-crlf-dot-lf"},
    "09-3": 1,
    "10-3": {"bare-lf-command", "syntax-errors"},
    "11-2": (4, True),
    "11-3": (554, "5.5.1"),
    "12-1": 15000,
    "13-1": [220, 250, 250, 250, 354, 250, 221],
    "13-2": None,
    "13-3": {"RCPT TO:<bob@example.org>", "QUIT"},
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
    "03-1": ["900", "5 tries"],
    "03-2": ["not stored", "send it again"],
    "03-3": ["<alice@example.org>"],
    "04-1": ["10485760"],
    "04-2": ["4"],
    "04-3": ["3 replies", "one per chunk"],
    "05-1": ["538", "5.7.11"],
    "05-2": ["not offered again", "False"],
    "05-3": ["Password"],
    "06-1": ["SMTPRecipientsRefused", "451"],
    "06-2": ["550", "354"],
    "07-1": ["smtp-9", "three"],
    "07-2": ["EHLO, EHLO", "'EHLO'"],
    "08-1": ["8.7"],
    "08-2": ["friend@", "5.7.1"],
    "08-3": ["554", "5.5.1"],
    "09-1": ["5.6.0"],
    "09-2": ["lf-dot-lf", "crlf-dot-lf"],
    "09-3": ["one reply"],
    "10-3": ["bare-lf", "syntax-errors"],
    "11-2": ["4", "True"],
    "11-3": ["554", "5.5.1"],
    "12-1": ["15000", "15,000"],
    "13-1": ["220", "221", "354"],
    "13-2": ["None", "no recipient"],
    "13-3": ["RCPT TO", "QUIT", "Q ends", "R renegotiates"],
}
#: Exercises that are a task, checked by what it did (a server probed, a message delivered).
TASKS = {"10-1", "10-2", "11-1"}
CONVERTED = sorted({f"{key[:2]}-" for key in RIGHT})  # notebooks whose exercises all check so
TASK_CHECK = re.compile(r"(?:check_server|check_delivery)\(.*\)\.require\(\)$")


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
    for prefix in CONVERTED:
        (given_path,) = (tmp_path / "student" / "notebooks").glob(f"{prefix}*.ipynb")
        given = nbformat.read(given_path, as_version=4)
        kept = nbformat.read(tmp_path / "instructor" / "notebooks" / given_path.name, 4)
        tags = [cell.metadata.get("tags", []) for cell in given.cells]
        assert ["answer"] in tags and ["solution"] not in tags
        answers = [c.source for c in given.cells if "answer" in c.metadata.get("tags", [])]
        solutions = [c.source for c in kept.cells if "solution" in c.metadata.get("tags", [])]
        assert len(answers) == len(solutions) and all("..." in a.splitlines()[-1] for a in answers)
        assert not set(answers) & set(solutions)


def run(notebook: Path) -> nbformat.NotebookNode:
    node = nbformat.read(notebook, as_version=4)
    NotebookClient(
        node, timeout=300, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(notebook.parent)}},
    ).execute()  # fmt: skip
    return node


@pytest.mark.parametrize("prefix", CONVERTED)
def test_the_student_edition_runs_and_a_wrong_answer_gets_a_hint_not_the_answer(
    prefix: str, tmp_path: Path
) -> None:
    write_edition(tmp_path, "student")
    (path,) = (tmp_path / "notebooks").glob(f"{prefix}*.ipynb")
    untouched = run(path)
    for cell in untouched.cells:
        if "check" not in cell.metadata.get("tags", []):
            continue
        errors = [output for output in cell.outputs if output.output_type == "error"]
        if cell.source.startswith('check("'):
            assert not errors and "not answered yet" in str(cell.outputs), cell.source
        else:  # a task not done yet: its check fails, in one line of its own words
            assert not errors or errors[0].traceback[0].startswith("✘ "), errors
    wrong = nbformat.read(path, as_version=4)
    for cell in wrong.cells:
        if "answer" in cell.metadata.get("tags", []):
            cell.source = cell.source.replace("answer = ...", 'answer = ("a", "wrong", "answer")')
    nbformat.write(wrong, path)
    for cell in run(path).cells:
        if not cell.source.startswith('check("'):
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


@pytest.mark.parametrize("prefix", CONVERTED)
def test_every_exercise_has_an_answer_cell_and_a_check(prefix: str) -> None:
    (path,) = NOTEBOOKS.glob(f"{prefix}*.ipynb")
    cells = nbformat.read(path, as_version=4).cells
    (exercises,) = [c.source for c in cells if c.source.startswith("## Exercises")]
    asked = len(re.findall(r"^\d+\. ", exercises, re.M))
    checks = [c.source for c in cells if "check" in c.metadata.get("tags", [])]
    solutions = [c for c in cells if "solution" in c.metadata.get("tags", [])]
    assert asked == len(checks) == len(solutions)
    for number, source in enumerate(checks, 1):
        key = f"{prefix}{number}"
        last = source.splitlines()[-1]
        assert (key in TASKS and TASK_CHECK.match(last)) or source == f'check("{key}", answer)'
    assert {key for key in EXERCISES if key.startswith(prefix)} == {
        f"{prefix}{n}" for n in range(1, asked + 1) if f"{prefix}{n}" not in TASKS
    }
