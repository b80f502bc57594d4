"""The course: notebooks in teaching order, and the static site built from them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from smtplab.teaching.course import NOTEBOOKS, build_site, notebook_titles
from smtplab.teaching.guide import guide_pages, render_guide

ROOT = Path(__file__).resolve().parents[2]


def test_notebooks_are_numbered_in_teaching_order_and_say_what_they_teach() -> None:
    names = [path.name for path in sorted(NOTEBOOKS.glob("*.ipynb"))]
    assert [name[:2] for name in names] == [f"{n:02d}" for n in range(1, len(names) + 1)]
    titles = notebook_titles()
    assert all(title.startswith(f"{n}. ") for n, title in enumerate(titles, 1)), titles
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        assert "What you will learn" in text, path.name
        assert "## Exercises" in text, path.name


def test_the_site_builds_with_figures_embedded_and_readable_tables(tmp_path: Path) -> None:
    index = build_site(tmp_path / "site", only=["01-", "02-", "03-"], progress=False)
    page = tmp_path / "site" / "01-first-transaction.html"
    index_page = index.read_text()
    assert index_page.count("<li>") == 3 + len(guide_pages())  # the notebooks, then the guide
    assert 'href="01-first-transaction.html"' in index_page
    assert 'href="guide-server.html"' in index_page
    body = page.read_text()
    assert "data:image/png;base64" in body  # the sequence diagram, executed and embedded
    assert "250 2.1.5" in body  # outputs are there
    assert "<title>1. Your first SMTP transaction</title>" in body  # not nbconvert's "Notebook"
    navigation = re.search(r'<nav class="site".*?</nav>', body)
    assert navigation and 'href="index.html"' in navigation[0]
    assert 'href="02-anatomy-of-a-reply.html"' in navigation[0]  # the next page
    for name in ("01-first-transaction", "02-anatomy-of-a-reply", "03-forwarding-and-errors"):
        body = (tmp_path / "site" / f"{name}.html").read_text()
        tables = re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)
        assert tables, name
        # Missing values blank, nothing cut short by pandas (its cut ends in "...").
        assert not {"NaN", "&lt;NA&gt;", "NaT", "nan"} & set(tables), name
        assert not [cell for cell in tables if cell.endswith("...")], name


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


def test_the_guide_becomes_pages_of_the_site_with_their_links_mended(tmp_path: Path) -> None:
    guide = guide_pages()
    assert {page.source.name for page in guide} == {p.name for p in (ROOT / "docs").glob("*.md")}
    links = {(ROOT / "README.md").resolve(): "index.html"}
    links.update({page.source: page.html for page in guide})
    bodies = render_guide(guide, tmp_path, links)
    written = {page.html for page in guide} | {"index.html"}
    for page in guide:
        body = bodies[page.html]
        assert body.startswith(f"<h1>{page.title}</h1>"), page.html  # titled as the README says
        for target in re.findall(r'(?:href|src)="([^"]+)"', body):
            if target.startswith(("http", "#")):
                continue
            name = target.split("#", 1)[0]
            assert name in written or (tmp_path / name).is_file(), (page.html, target)
        assert ".md" not in "".join(re.findall(r'href="([^"]+)"', body)), page.html
    assert (tmp_path / "images" / "sequence-basic.png").is_file()
    schema = bodies["guide-schema.html"]
    assert "<table>" in schema and "<code>session</code>" in schema
