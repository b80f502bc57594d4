"""Colours and small helpers shared by every figure, so all plots speak the same visual language."""

from __future__ import annotations

import io
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

#: One colour per reply class (RFC 5321 4.2.1), the same in every figure. Colour-blind safe
#: (Okabe-Ito): green for done, blue for go on, orange for try later, vermilion for no.
CLASS_COLOURS = {
    "2xx": "#009E73",
    "3xx": "#0072B2",
    "4xx": "#E69F00",
    "5xx": "#D55E00",
}
NO_REPLY = "#999999"
COMMAND = "#222222"
OUTCOME_COLOURS = {
    "delivered": "#009E73",
    "rejected": "#D55E00",
    "deferred": "#E69F00",
    "refused": "#CC79A7",
    "encrypted": "#56B4E9",
    "no mail": "#0072B2",
    "aborted": "#999999",
}


def class_of(code: Any) -> str | None:
    """``"2xx"`` ... ``"5xx"`` for a reply code, None for a missing or odd one."""
    try:
        digit = int(code) // 100
    except (TypeError, ValueError):
        return None
    return f"{digit}xx" if 2 <= digit <= 5 else None


def colour_of(code: Any) -> str:
    cls = class_of(code)
    return CLASS_COLOURS[cls] if cls else NO_REPLY


def new_axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    """``ax`` itself, or the axes of a new figure of ``size`` inches."""
    if ax is not None:
        return ax
    figure = plt.figure(figsize=size, dpi=100)
    return figure.add_subplot()


def png(figure: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (what widgets and reference-image tests use)."""
    buffer = io.BytesIO()
    # No timestamp or software tag in the file: the same figure gives the same bytes.
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"
