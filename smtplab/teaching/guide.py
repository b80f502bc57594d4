"""The guide (``docs/*.md``) as pages of the course site, in the order the README lists them.

The README is the project's front page and its "Read on" table is the guide's table of
contents: each row links a page of ``docs/`` and says what it covers. The site renders each
page to HTML (mistune, which nbconvert brings) and rewrites its links for the site: a link to
another page of the guide, or to a notebook, points at that page's HTML; a link to the README
points at the site's index; a picture is copied into ``images/``; a link to any other file of
the repository (a test, a benchmark) has no page on the site and is kept as its text.
"""

from __future__ import annotations

import html
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import mistune
from mistune.renderers.html import HTMLRenderer

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: A row of the README's "Read on" table: | [title](docs/page.md) | what it covers |
_CONTENTS_ROW = re.compile(
    r"^\| \[(?P<title>[^\]]+)\]\((?P<path>docs/[\w-]+\.md)\) \| (?P<what>.+) \|$"
)
_IMAGES = (".png", ".svg", ".jpg", ".jpeg", ".gif")


@dataclass(frozen=True)
class GuidePage:
    source: Path
    html: str  # file name in the site
    title: str
    summary: str  # what the README says it covers, as plain text


def guide_pages(readme: Path = README) -> list[GuidePage]:
    """The pages of ``docs/`` in the README's order, titled and summed up as it lists them."""
    pages = []
    for line in readme.read_text(encoding="utf-8").splitlines():
        row = _CONTENTS_ROW.match(line)
        if row:
            source = (readme.parent / row["path"]).resolve()
            summary = row["what"].replace("`", "")
            pages.append(GuidePage(source, f"guide-{source.stem}.html", row["title"], summary))
    return pages


def render_guide(pages: list[GuidePage], output: Path, links: dict[Path, str]) -> dict[str, str]:
    """Write each page's HTML body into ``output``; return the bodies by file name.

    ``links`` maps every repository file that has a page on the site (the README, notebooks,
    the guide's pages) to that page's file name.
    """
    bodies = {}
    for page in pages:
        renderer = SiteRenderer(page.source.parent, output, links)
        markdown = mistune.create_markdown(renderer=renderer, plugins=["table", "strikethrough"])
        bodies[page.html] = str(markdown(page.source.read_text(encoding="utf-8")))
    return bodies


class SiteRenderer(HTMLRenderer):
    """mistune's HTML, with links and pictures pointing into the site."""

    def __init__(self, folder: Path, output: Path, links: dict[Path, str]) -> None:
        super().__init__(escape=True)  # raw HTML in a page is shown, not run
        self.folder, self.output, self.links = folder, output, links

    def link(self, text: str, url: str, title: str | None = None) -> str:
        target = self.site_url(url)
        return text if target is None else super().link(text, target, title)

    def image(self, text: str, url: str, title: str | None = None) -> str:
        return super().image(text, self.site_url(url) or url, title)

    def site_url(self, url: str) -> str | None:
        """Where ``url``, written in the repository, points on the site (None: nowhere)."""
        if re.match(r"[a-z][a-z0-9+.-]*:", url) or url.startswith("#"):
            return url  # another site, or a place on this page
        path, _, fragment = url.partition("#")
        file = (self.folder / path).resolve()
        if file.suffix.lower() in _IMAGES and file.is_file():
            (self.output / "images").mkdir(exist_ok=True)
            shutil.copyfile(file, self.output / "images" / file.name)
            return f"images/{file.name}"
        if file in self.links:
            return self.links[file] + (f"#{fragment}" if fragment else "")
        return None  # a file of the repository with no page on the site


def page_html(title: str, body: str, navigation: str) -> str:
    """A guide page: the site's style, its title, the navigation above and below the body."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)} · smtplab</title><style>{STYLE}</style></head><body>"
        f"{navigation}<main>{body}</main>{navigation}</body></html>"
    )


STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.45}"
    "nav.site{display:flex;justify-content:space-between;gap:1em;padding:.5em 0;"
    "border-bottom:1px solid #ddd;margin-bottom:1em;font-size:.95em}"
    "nav.site+main+nav.site{border-top:1px solid #ddd;border-bottom:none;margin-top:2em}"
    "table{border-collapse:collapse;margin:1em 0;font-size:.92em}"
    "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
    "pre{background:#f6f8fa;padding:.8em;overflow-x:auto}code{font-size:.92em}"
    "img{max-width:100%}"
)
