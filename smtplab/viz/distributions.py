"""Many sessions at a glance: reply codes as bars, by command, and sessions over time."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.ticker import MaxNLocator

from smtplab.analysis.codes import CLASSES, code_distribution
from smtplab.analysis.sessions import OUTCOMES, sessions
from smtplab.viz.style import CLASS_COLOURS, OUTCOME_COLOURS, colour_of, new_axes


def plot_codes(
    frame: pd.DataFrame, by: Literal["class", "code", "enhanced"] = "code", ax: Axes | None = None
) -> Axes:
    """Bars of how many replies there are per reply class, code or enhanced code."""
    counts = code_distribution(frame, by)
    assert isinstance(counts, pd.Series)
    ax = new_axes(ax, (max(4.0, 0.45 * len(counts) + 2), 3.4))
    labels = [str(label) for label in counts.index]
    if by == "class":
        colours = [CLASS_COLOURS[label] for label in labels]
    elif by == "code":
        colours = [colour_of(label) for label in labels]
    else:
        colours = [colour_of(int(label[0]) * 100) for label in labels]
    bars = ax.bar(labels, counts.to_numpy(), color=colours)
    ax.bar_label(bars, fontsize=8, padding=2)
    ax.set_ylabel("replies")
    ax.set_xlabel({"class": "reply class", "code": "reply code", "enhanced": "enhanced code"}[by])
    ax.set_title(
        f"Replies by {ax.get_xlabel()} ({int(counts.sum()):,} replies)", fontsize=10, loc="left"
    )
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(y=0.15)
    if by == "enhanced":
        ax.tick_params(axis="x", labelrotation=45)
    return ax


def plot_codes_by_command(frame: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Horizontal bars, one per command, split by the class of the replies it got."""
    table = code_distribution(frame, "command")
    assert isinstance(table, pd.DataFrame)
    table = table.iloc[::-1]  # most answered command on top
    ax = new_axes(ax, (7.0, 1.0 + 0.32 * max(len(table), 3)))
    left = np.zeros(len(table))
    for cls in CLASSES:
        values = table[cls].to_numpy()
        ax.barh(table.index.astype(str), values, left=left, color=CLASS_COLOURS[cls], label=cls)
        left += values
    ax.set_xlabel("replies")
    ax.set_title("Replies to each command, by class", fontsize=10, loc="left")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def plot_sessions_over_time(
    frame: pd.DataFrame,
    freq: str | None = None,
    ax: Axes | None = None,
    *,
    summary: pd.DataFrame | None = None,
) -> Axes:
    """Sessions started per time bin, stacked by outcome (delivered, rejected, ...).

    ``freq`` is a pandas frequency (``"1min"``, ``"1h"``); by default one that gives about 40
    bins over the frame's time span. ``summary`` is ``sessions(frame)`` when it is at hand:
    a view that shows some rows of its sessions (the dashboard's "5xx") passes the table made
    from all of them, since a session's outcome depends on every reply it got.
    """
    table = sessions(frame) if summary is None else summary
    table = table[table["start"].notna()]
    ax = new_axes(ax, (8.0, 3.4))
    if table.empty:
        ax.text(0.5, 0.5, "no session has a known time", ha="center", transform=ax.transAxes)
        return ax
    freq = freq or _bin_width(table["start"].min(), table["start"].max())
    counts = pd.crosstab(table["start"].dt.floor(freq), table["outcome"], dropna=False)
    counts = counts.reindex(columns=list(OUTCOMES), fill_value=0)
    counts = counts.loc[:, counts.sum() > 0]
    width = pd.Timedelta(freq) * 0.9
    bottom = np.zeros(len(counts))
    for outcome in counts.columns:
        values = counts[outcome].to_numpy()
        ax.bar(
            counts.index,
            values,
            width=width,
            bottom=bottom,
            align="edge",
            color=OUTCOME_COLOURS[str(outcome)],
            label=str(outcome),
        )
        bottom += values
    ax.set_ylabel(f"sessions per {freq}")
    ax.set_title(f"Sessions over time ({len(table):,} sessions)", fontsize=10, loc="left")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.spines[["top", "right"]].set_visible(False)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return ax


def plot_latencies(frame: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Reply latency per command, as box plots in milliseconds (log scale)."""
    replies = frame[(frame["kind"] == "reply").to_numpy() & frame["latency"].notna().to_numpy()]
    groups = replies.groupby(replies["verb"].astype(str))["latency"]
    order = groups.size().sort_values(ascending=False).index.tolist()
    data = [groups.get_group(verb).to_numpy() * 1000 for verb in order]
    ax = new_axes(ax, (max(4.0, 0.6 * len(order) + 2), 3.4))
    if data:
        ax.boxplot(data, tick_labels=order, showfliers=True, flierprops={"markersize": 2})
        if all((values > 0).all() for values in data):
            ax.set_yscale("log")  # latencies span orders of magnitude
        else:
            ax.set_ylim(bottom=0)  # zero latencies (a log's one-second clock): linear
    ax.set_ylabel("latency (ms)")
    ax.set_title("Reply latency per command", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return ax


def _bin_width(start: pd.Timestamp, end: pd.Timestamp) -> str:
    span = (end - start).total_seconds()
    for seconds, name in (
        (0.01, "10ms"),
        (0.1, "100ms"),
        (1, "1s"),
        (10, "10s"),
        (60, "1min"),
        (600, "10min"),
        (3600, "1h"),
        (6 * 3600, "6h"),
        (86400, "1D"),
    ):
        if span / seconds <= 60:
            return name
    return "7D"
