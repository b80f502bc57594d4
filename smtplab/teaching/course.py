"""The course as a static web site: every notebook executed and rendered to HTML, with an index.

``smtplab course build site/`` (or :func:`build_site`) runs each notebook in ``notebooks/`` top
to bottom in a fresh kernel, in its own directory as the test suite does, and writes one HTML
page per notebook — figures embedded, widget state saved so widgets show their last view — and
``index.html`` listing them in teaching order with what each one teaches, then the guide's
pages (``docs/``, see :mod:`smtplab.teaching.guide`). Every page is titled by its first heading
and has links to the previous and next pages and to the index. The widget renderer comes with
the site (:mod:`smtplab.teaching.site_assets`), so pages work from a disk with no network. The
result is plain files: publish the directory as it is, or open index.html. The notebooks
themselves stay stored without outputs.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smtplab.teaching.guide import GuidePage

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@dataclass(frozen=True)
class Page:
    notebook: Path
    html: str  # file name in the site
    title: str
    summary: str  # the "What you will learn" list, as plain text


def build_site(
    output: str | Path,
    notebooks: str | Path = NOTEBOOKS,
    *,
    only: list[str] | None = None,
    timeout: int = 600,
    progress: bool = True,
) -> Path:
    """Execute and render the notebooks into ``output``; return the index page's path.

    ``only`` restricts the build to notebooks whose file name contains one of the strings.
    A notebook that fails stops the build with an error naming it and the failing cell.
    """
    source = Path(notebooks)
    if not source.is_dir():
        # pip installs the package alone: the notebooks (which read tests/fixtures) live in
        # the repository.
        raise ValueError(
            f"{source}: no such directory of notebooks. The course is built from a clone of "
            "the repository (git clone, then scripts/site or smtplab course build DIR in it)"
        )
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
        from nbconvert import HTMLExporter
    except ImportError as missing:
        raise ValueError(
            f"building the course needs {missing.name}: pip install -e '.[test]' in the clone "
            "(or pip install nbconvert nbclient ipykernel)"
        ) from None
    from tqdm import tqdm

    paths = sorted(source.glob("[0-9]*.ipynb"))
    if only:
        paths = [p for p in paths if any(part in p.name for part in only)]
    if not paths:
        raise ValueError(f"{source}: no numbered notebooks to build")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    from smtplab.teaching import site_assets

    site_assets.copy_widget_assets(out)  # widgets render from the site itself, offline too
    (out / site_assets.FOLDER / "mathjax-none.js").write_text(
        "// The course has no formulas: MathJax is not shipped.\n", encoding="utf-8"
    )
    exporter = HTMLExporter(
        template_name="lab",
        require_js_url=site_assets.REQUIRE_JS,
        widget_renderer_url=site_assets.WIDGET_RENDERER,
        mathjax_url=f"{site_assets.FOLDER}/mathjax-none.js",
    )
    pages = []
    bodies = {}
    for path in tqdm(paths, desc="notebooks", unit="notebook", disable=not progress):
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            # The kernel runs on this machine for this build: its warning that it talks over
            # local TCP without encryption would be printed once per notebook, to no purpose.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
            resources={"metadata": {"path": str(path.parent)}},
            store_widget_state=True,
        )
        try:
            client.execute()
        except CellExecutionError as error:
            raise RuntimeError(f"{path.name} failed; the course was not built:\n{error}") from None
        page = Page(path, path.with_suffix(".html").name, *_heading(notebook))
        bodies[page.html], _ = exporter.from_notebook_node(notebook)
        pages.append(page)

    from smtplab.teaching.guide import guide_pages, page_html, render_guide

    readme = source.parent / "README.md"
    guide = guide_pages(readme) if readme.is_file() else []
    links = {readme.resolve(): "index.html"}
    links.update({page.notebook.resolve(): page.html for page in pages})
    links.update({page.source: page.html for page in guide})
    guide_bodies = render_guide(guide, out, links)
    order = [(p.html, p.title) for p in pages] + [(p.html, p.title) for p in guide]
    for number, (name, title) in enumerate(order):
        navigation = _navigation(order, number)
        if name in bodies:
            body = _titled_and_navigable(bodies[name], title, navigation)
        else:
            body = page_html(title, guide_bodies[name], navigation)
        (out / name).write_text(body, encoding="utf-8")
    index = out / "index.html"
    index.write_text(_index(pages, guide), encoding="utf-8")
    return index


def _titled_and_navigable(document: str, title: str, navigation: str) -> str:
    """nbconvert's page with the notebook's own title (it says "Notebook") and the navigation
    at the top of its body."""
    document = re.sub(
        r"<title>.*?</title>", f"<title>{html.escape(title)}</title>", document, count=1, flags=re.S
    )
    body = re.search(r"<body[^>]*>", document)
    if body is None:
        return document
    document = document[: body.end()] + navigation + document[body.end() :]
    from smtplab.teaching.site_assets import ASSETS_PATH_SCRIPT

    return document.replace("</head>", ASSETS_PATH_SCRIPT + "</head>", 1)


def _navigation(order: list[tuple[str, str]], number: int) -> str:
    """Links to the previous page, the index and the next page (styled inline: nbconvert's
    pages have their own style sheet)."""

    def link(position: int, arrow: str) -> str:
        if not 0 <= position < len(order):
            return "<span></span>"
        name, title = order[position]
        text = f"{arrow} {html.escape(title)}" if arrow == "←" else f"{html.escape(title)} {arrow}"
        return f'<a href="{html.escape(name)}">{text}</a>'

    return (
        '<nav class="site" style="display:flex;justify-content:space-between;gap:1em;'
        'padding:.5em 1em;font-family:sans-serif;font-size:.95em">'
        f'{link(number - 1, "←")}<a href="index.html">Index</a>{link(number + 1, "→")}</nav>'
    )


def _heading(notebook: object) -> tuple[str, str]:
    """The notebook's title (its first heading) and its "What you will learn" bullets."""
    cells = getattr(notebook, "cells", [])
    first = next((c.source for c in cells if c.cell_type == "markdown"), "")
    lines = first.splitlines()
    title = next((line.lstrip("# ").strip() for line in lines if line.startswith("#")), "")
    bullets = [line[2:].strip() for line in lines if line.startswith("* ")]
    return title, " · ".join(bullets)


def _index(pages: list[Page], guide: list[GuidePage]) -> str:
    def item(name: str, title: str, summary: str) -> str:
        return (
            f'<li><a href="{html.escape(name)}">{html.escape(title)}</a>'
            f"<p>{html.escape(_plain(summary))}</p></li>"
        )

    items = "".join(item(p.html, p.title, p.summary) for p in pages)
    guide_items = "".join(item(p.html, p.title, p.summary) for p in guide)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>smtplab: the SMTP course</title>"
        "<style>body{font-family:sans-serif;max-width:52em;margin:2em auto;line-height:1.4}"
        "li{margin-bottom:1em} p{margin:.2em 0;color:#444}</style></head><body>"
        "<h1>SMTP, hands on</h1><p>Notebooks made with smtplab, executed; each page shows every "
        "command and reply, the figures, and the exercises with their checks.</p>"
        f"<ol>{items}</ol>"
        + (f"<h2>The guide</h2><ul>{guide_items}</ul>" if guide else "")
        + "</body></html>"
    )


def _plain(markdown: str) -> str:
    return markdown.replace("*", "").replace("`", "")


def notebook_titles(notebooks: str | Path = NOTEBOOKS) -> list[str]:
    """The title of each numbered notebook, in order (for listings and tests)."""
    titles = []
    for path in sorted(Path(notebooks).glob("[0-9]*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        first = next(("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"), "")
        titles.append(first.splitlines()[0].lstrip("# ").strip() if first else path.stem)
    return titles
