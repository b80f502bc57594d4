"""Repository hygiene that a reviewer would otherwise check by hand."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (it comes with the test extra)")
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    mypy = Path(sys.executable).with_name("mypy")
    if not mypy.exists():
        pytest.skip("mypy is not installed (it comes with the test extra)")
    result = subprocess.run([str(mypy)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_are_stored_without_outputs(path: Path) -> None:
    # Notebooks are code: stored clean, so diffs are readable; nbval runs them in the suite.
    cells = json.loads(path.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c.get("outputs") or c.get("execution_count")]
    assert not dirty, f"{path.name}: clear the outputs of cells {dirty} before committing"


def test_core_imports_no_io_or_pandas() -> None:
    # The sans-IO rule (ARCHITECTURE.md): the protocol core never touches sockets, clocks or pandas.
    forbidden = ("socket", "asyncio", "time", "pandas", "print(")
    for path in (ROOT / "smtplab" / "protocol").glob("*.py"):
        text = path.read_text()
        for word in forbidden[:-1]:
            assert f"import {word}" not in text and f"from {word} " not in text, (path.name, word)
        assert "print(" not in text, path.name


# What would reach a Postfix of the machine's own: a connection to port 25, its settings
# changed or read (postconf without -c), the instance started, stopped or reloaded
# (postfix without -c), its mail spool read. Tests, notebooks, benchmarks, the fixture
# recorders and CI use a private instance (smtplab.private_postfix) instead.
THEN = r"""["']?(?:,\s*["']|\s+)"""  # a program, then its first argument: shell or a list
SYSTEM_POSTFIX = {
    "a connection to 127.0.0.1 port 25": r"""["']127\.0\.0\.1["']\s*,\s*25\b""",
    "the address 127.0.0.1:25, not compared with": r"""(?<![=!]= )["']127\.0\.0\.1:25["']""",
    "postconf without -c": rf"\bpostconf{THEN}-[ehdn#X]",
    "postfix without -c": rf"\bpostfix{THEN}(?:start|stop|reload|abort|flush|check)\b",
    "its queue (postqueue, postsuper without -c)": rf"\bpost(?:queue|super){THEN}-[^c]",
    "the system mail spool": r"/var/mail\b|/var/spool/postfix",
}


def _code_that_runs() -> dict[str, str]:
    """Test, benchmark, recorder and CI sources, and the notebooks' code cells, by path."""
    paths = [*ROOT.glob("tests/**/*.py"), *ROOT.glob("benchmarks/*.py"), ROOT / ".ci" / "run"]
    paths += [p for p in (ROOT / "scripts").iterdir() if p.is_file()]
    sources = {str(p.relative_to(ROOT)): p.read_text() for p in paths if p.name != "test_repo.py"}
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        sources[str(path.relative_to(ROOT))] = "\n".join(code)
    return sources


def test_nothing_touches_a_postfix_of_the_machine() -> None:
    found = [
        f"{name} line {text.count(chr(10), 0, match.start()) + 1}: {what}: {match.group(0)}"
        for name, text in _code_that_runs().items()
        for what, pattern in SYSTEM_POSTFIX.items()
        for match in re.finditer(pattern, text)
    ]
    assert not found, "\n".join(found)
