"""What the notebooks teach, held to the RFCs where a first version got it wrong."""

from __future__ import annotations

import re

import nbformat
import pytest

from smtplab.teaching.course import NOTEBOOKS

PATHS = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))


def cells(path, kind: str) -> list[str]:
    notebook = nbformat.read(path, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == kind]


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_nothing_is_pipelined_behind_ehlo(path) -> None:
    """RFC 2920 3.1: EHLO ends a group (and before its reply the client cannot know the
    server takes PIPELINING): no write sends EHLO and anything after it, but where the cell
    shows the mistake as an oddity."""
    for source in cells(path, "code"):
        if "oddities(" in source:
            continue
        behind = re.search(r"""b["'](?:HELO|EHLO)[^"'\\]*\\r\\n[^"']+["']""", source)
        assert behind is None, f"{path.name}: {behind[0]}"


def test_the_smuggling_notebook_does_not_call_keeping_bare_lfs_safe() -> None:
    """Keeping a bare LF and relaying it is the outbound half of the 2023 attack."""
    text = "\n".join(cells(NOTEBOOKS / "09-security-smuggling.ipynb", "markdown"))
    assert "every one of them is safe" not in text
    assert "outbound half of the 2023 attack" in text
    assert "only `reject` is safe for a server that relays" in text
