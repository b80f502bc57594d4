"""Readable tables: blank for missing, text left-aligned and whole, numbers right-aligned."""

from __future__ import annotations

import re

import pandas as pd
from IPython.core.interactiveshell import InteractiveShell

import smtplab
from smtplab.viz import readable_tables, table_html


def cells(html: str) -> list[tuple[str, str]]:
    """(alignment, text) of every body cell."""
    return re.findall(r"<td style='[^']*text-align: (\w+);[^']*'>(.*?)</td>", html, re.S)


def test_missing_values_are_blank_and_text_keeps_its_lines_and_length() -> None:
    advice = "Try again later: the mailbox is full, and the sender's server will retry for days"
    frame = pd.DataFrame(
        {
            "code": pd.array([250, None], dtype="Int16"),
            "enhanced": pd.Categorical(["2.1.5", None]),
            "text": ["first line\nsecond line", advice],
            "latency": [0.0002, float("nan")],
        }
    )
    shown = cells(table_html(frame))
    assert shown[:4] == [
        ("right", "250"),
        ("left", "2.1.5"),
        ("left", "first line\nsecond line"),  # shown on two lines (white-space: pre-wrap)
        ("right", "0.0002"),
    ]
    assert shown[4:] == [("right", ""), ("left", ""), ("left", advice), ("right", "")]
    assert "NaN" not in table_html(frame) and "&lt;NA&gt;" not in table_html(frame)


def test_text_is_escaped_long_tables_say_how_much_more_and_wide_ones_scroll() -> None:
    frame = pd.DataFrame({"argument": ["TO:<bob@example.org>"] * 5})
    html = table_html(frame, max_rows=2)
    assert "TO:&lt;bob@example.org&gt;" in html and "<bob@" not in html
    assert html.count("<tr>") == 3 and "… 3 more rows" in html
    assert html.startswith("<div style='overflow-x: auto; max-width: 100%'>")


def test_a_notebook_that_asks_shows_every_dataframe_so() -> None:
    shell = InteractiveShell.instance()
    try:
        readable_tables(shell)
        frame = smtplab.Lab().send("alice@example.net", "bob@example.org").transcript
        shown = shell.display_formatter.format(frame)[0]["text/html"]
        assert shown == table_html(frame, index=True)
        assert "NaN" not in shown and "&lt;NA&gt;" not in shown
    finally:
        InteractiveShell.clear_instance()
