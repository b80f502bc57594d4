"""The course: notebooks in teaching order, and the static site built from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from smtplab.teaching.course import NOTEBOOKS, build_site, notebook_titles


def test_notebooks_are_numbered_in_teaching_order_and_say_what_they_teach() -> None:
    names = [path.name for path in sorted(NOTEBOOKS.glob("*.ipynb"))]
    assert [name[:2] for name in names] == [f"{n:02d}" for n in range(1, len(names) + 1)]
    titles = notebook_titles()
    assert all(title.startswith(f"{n}. ") for n, title in enumerate(titles, 1)), titles
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        assert "What you will learn" in text, path.name
        assert "## Exercises" in text, path.name


def test_the_site_builds_with_figures_embedded(tmp_path: Path) -> None:
    index = build_site(tmp_path / "site", only=["01-"], progress=False)
    page = tmp_path / "site" / "01-first-transaction.html"
    assert index.read_text().count("<li>") == 1
    assert 'href="01-first-transaction.html"' in index.read_text()
    body = page.read_text()
    assert "data:image/png;base64" in body  # the sequence diagram, executed and embedded
    assert "250 2.1.5" in body  # outputs are there


def test_the_build_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "smtplab",
            "course",
            "build",
            str(tmp_path / "out"),
            "--only",
            "11-",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "11-write-your-own-client.html").exists()
    assert "without encryption" not in done.stderr  # the kernel's warning, once a notebook
    missing = subprocess.run(
        [sys.executable, "-m", "smtplab", "course", "build", str(tmp_path / "x"), "--only", "99"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "no numbered notebooks" in missing.stderr


def test_without_a_clone_or_its_tools_the_build_says_what_to_do(
    tmp_path: Path, monkeypatch
) -> None:
    """pip install alone has no notebooks (they read tests/fixtures) and may lack nbconvert."""
    import pytest

    with pytest.raises(ValueError, match="built from a clone of the repository"):
        build_site(tmp_path / "site", tmp_path / "no-notebooks", progress=False)
    monkeypatch.setitem(sys.modules, "nbformat", None)  # as if not installed
    with pytest.raises(ValueError, match=r"needs nbformat: pip install"):
        build_site(tmp_path / "site", progress=False)
