"""Tables people can read: missing values blank, text left-aligned with its line breaks, nothing
cut, and a table wider than the page scrolls inside its own box.

pandas' own HTML shows ``<NA>`` and ``NaN`` for a missing reply code, right-aligns text, cuts
cells at ``display.max_colwidth`` (50 characters: the advice of a reply, mid-sentence) and
joins a multi-line reply into one line. :func:`table_html` is what the widgets show;
:func:`readable_tables` makes it the way a notebook shows every DataFrame, for the notebook
that asks (each course notebook does, in its first cell).
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

#: Rows shown of a longer table (the rest are counted under it).
MAX_ROWS = 60
_STYLE = "border-collapse: collapse; font-size: 12px; line-height: 1.35; margin: 0;"
_CELL = "padding: 2px 8px; vertical-align: top; border-bottom: 1px solid #e4e4e4;"


def table_html(frame: pd.DataFrame, max_rows: int | None = MAX_ROWS, index: bool = False) -> str:
    """``frame`` as an HTML table: escaped, missing values blank, text left-aligned and kept
    whole with its line breaks, numbers right-aligned; the first ``max_rows`` rows (all with
    None) and a line saying how many more there are."""
    shown = frame if max_rows is None else frame.head(max_rows)
    numeric = [pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
               for dtype in shown.dtypes]  # fmt: skip
    heads = [(str(shown.index.name or ""), False)] if index else []
    heads += [(str(name), right) for name, right in zip(shown.columns, numeric, strict=True)]
    head = "".join(_cell("th", text, right) for text, right in heads)
    body = []
    for label, values in zip(shown.index, shown.itertuples(index=False), strict=True):
        cells = [_cell("th", _text(label), False)] if index else []
        cells += [_cell("td", _text(v), right) for v, right in zip(values, numeric, strict=True)]
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = len(frame) - len(shown)
    note = f"<p style='margin: 4px 0'><i>… {more:,} more rows</i></p>" if more > 0 else ""
    return (
        "<div style='overflow-x: auto; max-width: 100%'>"
        f"<table style='{_STYLE}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>{note}</div>"
    )


def _cell(tag: str, text: str, right: bool) -> str:
    align = "right" if right else "left"
    wrap = "nowrap" if right else "pre-wrap"  # text keeps its line breaks, and wraps
    return (
        f"<{tag} style='{_CELL} text-align: {align}; white-space: {wrap}'>"
        f"{html.escape(text, quote=False)}</{tag}>"
    )


def _text(value: Any) -> str:
    """What a cell shows: nothing for a missing value, a list as its items."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_text(item) for item in value)
    if value is None or (not hasattr(value, "__len__") and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.6g}"
    return str(value)


def readable_tables(shell: Any = None, max_rows: int = MAX_ROWS) -> None:
    """Show every DataFrame in this notebook with :func:`table_html` (index included).

    ``shell`` is the IPython shell (default: the running one). Other notebooks, and a
    DataFrame's own ``to_html``, are left as they are.
    """
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is None:
        raise RuntimeError("readable_tables() changes how a notebook shows tables: run it in one")
    formatter = shell.display_formatter.formatters["text/html"]
    formatter.for_type(pd.DataFrame, lambda frame: table_html(frame, max_rows, index=True))
