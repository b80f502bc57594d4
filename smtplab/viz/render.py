"""Figures and tables as widget values: PNG bytes for ``widgets.Image``, HTML for ``widgets.HTML``.

Widgets draw into a fresh :class:`~matplotlib.figure.Figure` that pyplot never sees, so
redrawing on every click neither leaks figures nor makes the notebook show a second copy.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from smtplab.viz.style import png


def figure_png(draw: Callable[[Axes], Any], size: tuple[float, float] | None = None) -> bytes:
    """Call ``draw(ax)`` on a new figure's axes and return the figure as PNG.

    With ``size`` None the figure takes the size that ``draw`` gives it (sequence diagrams
    grow with their rows).
    """
    figure = Figure(figsize=size or (8, 4), dpi=100)
    ax = figure.add_subplot()
    draw(ax)
    figure.tight_layout()
    return png(figure)


def known(value: Any) -> bool:
    """Whether a cell holds a value (not None, NaN, NA or NaT)."""
    return isinstance(value, str) or (value is not None and not pd.isna(value))


def text_html(text: str) -> str:
    """Plain text, escaped, in a preformatted block."""
    return f"<pre style='white-space: pre-wrap; margin: 0'>{html.escape(text)}</pre>"
