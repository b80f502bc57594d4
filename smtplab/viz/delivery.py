"""How long messages took: the distribution of delivery delays, from ``messages()``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from smtplab.analysis.messages import messages
from smtplab.viz.style import CLASS_COLOURS, new_axes


def plot_delivery_delays(frame: pd.DataFrame, ax: Axes | None = None, bins: int = 30) -> Axes:
    """A histogram of each message's delivery delay in seconds (its slowest recipient's, summed
    over its hops: Postfix ``delay=``, Exim ``QT=``), its cumulative share as a line on the
    right-hand axis, and the median marked. Takes a transcript frame or a ``messages()`` table;
    messages whose delay was not logged (live sessions, Exim's default ``log_selector``) are
    left out, and the title says how many."""
    table = frame if "message" in frame.columns and "delay" in frame.columns else messages(frame)
    delays = np.sort(table["delay"].to_numpy(dtype="float64", na_value=np.nan))
    known = delays[np.isfinite(delays)]
    ax = new_axes(ax, (6.0, 3.4))
    missing = len(delays) - len(known)
    title = f"Delivery delay ({len(known):,} messages"
    title += f"; {missing:,} without a logged delay)" if missing else ")"
    if len(known):
        edges = np.histogram_bin_edges(known, bins=bins).tolist()
        ax.hist(known, bins=edges, color=CLASS_COLOURS["2xx"], alpha=0.8, label="messages")
        median = float(np.median(known))
        ax.axvline(median, color="black", linestyle="--", linewidth=1)
        ax.annotate(
            f"median {median:.3g} s",
            (median, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(4, -12),
            textcoords="offset points",
            fontsize=8,
        )
        share = ax.twinx()
        steps = np.arange(len(known) + 1) / len(known)  # 0 before the quickest, then up
        share.step(np.r_[known[0], known], steps, where="post", color="0.3")
        share.set_ylim(0, 1.05)
        share.set_ylabel("share of messages (ECDF)")
        share.spines[["top"]].set_visible(False)
    ax.set_xlabel("delivery delay (s)")
    ax.set_ylabel("messages")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return ax
