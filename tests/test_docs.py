"""The README and the pages of ``docs/`` say what runs: every Python example runs, every result
its comments promise holds, and every link points at a file of the repository.

A result is promised with ``# -> TEXT``: after a statement on its line, or on the comment lines
right below it (``# -> `` then lines starting ``#    ``). ``...`` in TEXT stands for anything,
and runs of white space compare equal. The statement must be an expression; what it printed,
its ``str`` or its ``repr`` must match. Other comments are prose, and a prose comment that
reads like a result (a reply code, a list, a dict) is refused, so no result goes unchecked.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RESULT = "# -> "
CONTINUED = "#    "
#: A prose comment that starts like a result: a reply code, a list, a dict, a tuple of flags.
LOOKS_LIKE_A_RESULT = re.compile(r"#\s*(?:[2-5]\d\d\b|\[|\{|\((?:True|False)\b)")
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@dataclass
class Example:
    page: Path
    line: int  # the block's first line in the page
    source: str

    @property
    def name(self) -> str:
        return str(self.page.relative_to(ROOT))

    def where(self, line: int) -> str:
        """``line`` counts in the page."""
        return f"{self.name} line {line}"

    def parsed(self) -> ast.Module:
        """The block's statements, numbered by their lines in the page (for tracebacks)."""
        return ast.increment_lineno(ast.parse(self.source), self.line - 1)


def examples(page: Path) -> list[Example]:
    text = page.read_text(encoding="utf-8")
    return [
        Example(page, text.count("\n", 0, match.start(1)) + 1, match[1])
        for match in FENCE.finditer(text)
    ]


def comments(source: str) -> list[tuple[int, int, str]]:
    """Every comment of a block: (line in the block, column, text)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [(t.start[0], t.start[1], t.string) for t in tokens if t.type == tokenize.COMMENT]


def promised_results(example: Example, tree: ast.Module) -> dict[int, str]:
    """What each statement's comments promise it gives, by the statement's index in the block."""
    ends = [statement.end_lineno or statement.lineno for statement in tree.body]
    promised: dict[int, list[str]] = {}
    owner: int | None = None  # the statement whose result the comment lines below continue
    for line, column, text in comments(example.source):
        line += example.line - 1
        if text.startswith(RESULT):
            on_its_line = line in ends
            if not on_its_line and column != 0:
                pytest.fail(f"{example.where(line)}: '# ->' belongs after a statement or below it")
            owner = (
                ends.index(line)
                if on_its_line
                else max((i for i, end in enumerate(ends) if end < line), default=None)
            )
            if owner is None:
                pytest.fail(f"{example.where(line)}: '# ->' with no statement before it")
            promised.setdefault(owner, []).append(text[len(RESULT) :])
            if on_its_line:
                owner = None  # a result after a statement is one line long
        elif owner is not None and column == 0 and text.startswith(CONTINUED):
            promised[owner].append(text[len(CONTINUED) :])
        else:
            owner = None
            assert not LOOKS_LIKE_A_RESULT.match(text), (
                f"{example.where(line)}: {text!r} reads like a result; write it as '# -> ...' "
                "so that it is checked, or reword it"
            )
    return {index: " ".join(parts) for index, parts in promised.items()}


def matches(promise: str, shown: str) -> bool:
    def squeezed(text: str) -> str:
        return " ".join(text.split())

    pattern = ".*?".join(re.escape(part) for part in squeezed(promise).split("..."))
    return re.fullmatch(pattern, squeezed(shown), re.S) is not None


def run(example: Example, namespace: dict[str, object]) -> None:
    tree = example.parsed()
    promised = promised_results(example, tree)
    for index, statement in enumerate(tree.body):
        if index not in promised:
            code = compile(ast.Module([statement], []), example.name, "exec")
            exec(code, namespace)
            continue
        assert isinstance(statement, ast.Expr), (
            f"{example.where(statement.lineno)}: '# ->' follows an expression, not a statement"
        )
        code = compile(ast.Expression(statement.value), example.name, "eval")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            value = eval(code, namespace)
        shown = [printed.getvalue()] if printed.getvalue() else [str(value), repr(value)]
        assert any(matches(promised[index], text) for text in shown), (
            f"{example.where(statement.lineno)} promises {promised[index]!r}; it gave {shown[0]!r}"
        )


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_python_example_runs_and_gives_what_it_promises(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the examples read tests/fixtures/ as a reader in the clone would
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # and leave nothing in /tmp
    namespace: dict[str, object] = {"__name__": "__example__"}
    for example in examples(page):  # one namespace a page: a page reads top to bottom
        run(example, namespace)


def test_the_readme_and_the_guide_promise_results_that_are_checked() -> None:
    promises = sum(example.source.count(RESULT) for page in PAGES for example in examples(page))
    assert promises >= 20, promises
    assert len(examples(ROOT / "README.md")) >= 1


def test_the_checker_catches_a_wrong_promise_and_an_unchecked_one() -> None:
    wrong = Example(ROOT / "README.md", 1, "x = [1, 2]\nx  # -> [1, 3]\n")
    with pytest.raises(AssertionError, match=r"promises '\[1, 3\]'; it gave '\[1, 2\]'"):
        run(wrong, {})
    below = Example(ROOT / "README.md", 1, "print('a  b\\nc d')\n# -> a b\n#    c ...\n")
    run(below, {})
    unchecked = Example(ROOT / "README.md", 1, "x = 1\nx  # 250 OK\n")
    with pytest.raises(AssertionError, match="reads like a result"):
        run(unchecked, {})


SHELL = re.compile(r"^```\n\$ (smtplab [^\n]*)\n(.*?)^```", re.S | re.M)
ADDRESS = re.compile(r"\b\d+\.\d+\.\d+\.\d+:\d+\b")
SHOWN = [
    pytest.param(command, shown, id=f"{page.relative_to(ROOT)}: {command}")
    for page in PAGES
    for command, shown in SHELL.findall(page.read_text(encoding="utf-8"))
]


@pytest.mark.parametrize(("command", "shown"), SHOWN)
def test_every_smtplab_command_shown_prints_what_it_shows(
    command: str, shown: str, tmp_path: Path
) -> None:
    """``$ smtplab ...`` and its output: run, and compared (``...``: anything; without it, to
    the character). A command that talks to a server at HOST:PORT meets a private Postfix."""
    arguments = shlex.split(command)[1:]
    with contextlib.ExitStack() as stack:
        if any(ADDRESS.fullmatch(argument) for argument in arguments):
            from smtplab.private_postfix import PrivatePostfix, unavailable

            if reason := unavailable():
                pytest.skip(f"needs a private Postfix: {reason}")
            postfix = stack.enter_context(PrivatePostfix())
            arguments = [ADDRESS.sub(postfix.address, argument) for argument in arguments]
            shown = ADDRESS.sub(postfix.address, shown)
        printed = subprocess.run(
            [sys.executable, "-m", "smtplab", *arguments],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
            env={**os.environ, "COLUMNS": "100"},
        ).stdout  # fmt: skip
    if "..." in shown:
        assert matches(shown, printed), printed
    else:
        assert printed == shown


def test_the_readme_shows_smtplab_demo() -> None:
    assert any(command == "smtplab demo" for command, _ in (p.values for p in SHOWN))


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_link_points_at_a_file_of_the_repository(page: Path) -> None:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.exists() and ROOT in path.parents, f"{page.name}: {target} is not in the clone"


def test_every_page_of_the_guide_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for page in (ROOT / "docs").glob("*.md"):
        assert f"(docs/{page.name})" in readme, page.name
