"""A dashboard for a captured (or any) transcript: filter by time, client and reply class.

The session table (:func:`smtplab.analysis.sessions`) is computed once; each change of a
filter picks sessions from it and redraws the reply distribution by command, the sessions over
time, and the table of matching sessions. :meth:`Dashboard.filtered` returns the frame behind
the current view, so a notebook can go on from what the dashboard shows.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from smtplab.analysis.codes import CLASSES, reply_classes
from smtplab.analysis.sessions import sessions
from smtplab.viz.distributions import plot_codes_by_command, plot_sessions_over_time
from smtplab.viz.render import text_html
from smtplab.viz.style import png
from smtplab.viz.tables import table_html

TIME_STEPS = 50  # positions on the time slider


class Dashboard(widgets.VBox):
    """Filters (time range, client hosts, reply classes) over a transcript, and what they select."""

    def __init__(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            raise ValueError("the transcript has no rows: nothing to show")
        self.frame = frame
        self.summary = sessions(frame)
        replies = frame[(frame["kind"] == "reply").to_numpy()]
        classes = np.asarray(reply_classes(replies["code"]).astype(object))
        names = replies["session"].astype(str).to_numpy()
        # Which sessions got a reply of each class: computed once, not on every click.
        self._with_class = {cls: pd.Index(np.unique(names[classes == cls])) for cls in CLASSES}
        self.hosts = _hosts(self.summary["client"])
        starts = self.summary["start"].dropna()
        self.times = _time_steps(starts)
        self.time = widgets.SelectionRangeSlider(
            options=[(t.strftime("%Y-%m-%d %H:%M:%S"), t) for t in self.times]
            or [("no times in this transcript", None)],
            index=(0, max(len(self.times) - 1, 0)),
            description="time",
            layout=widgets.Layout(width="95%"),
            disabled=len(self.times) < 2,
        )
        host_names = sorted(set(self.hosts.dropna()))
        self.clients = widgets.SelectMultiple(
            options=host_names, value=tuple(host_names), description="clients", rows=4
        )
        self.classes = widgets.ToggleButtons(options=["all", *CLASSES], description="replies")
        self.status = widgets.HTML()
        self.figure = widgets.Image(format="png")
        self.table = widgets.HTML()
        self.last_figure: Figure  # what the picture shows, to save or inspect
        for control in (self.time, self.clients, self.classes):
            control.observe(lambda change: self.update(), names="value")
        super().__init__(
            [
                self.time,
                widgets.HBox([self.clients, self.classes]),
                self.status,
                self.figure,
                self.table,
            ]
        )
        self.update()

    def selected_sessions(self) -> pd.DataFrame:
        """The rows of the session table that the filters select."""
        table = self.summary
        keep = np.ones(len(table), dtype=bool)
        if len(self.times) >= 2:
            low, high = self.time.value
            start = table["start"]
            high_edge = high + (self.times[1] - self.times[0])
            keep &= (start.isna() | ((start >= low) & (start < high_edge))).to_numpy()
        keep &= (self.hosts.isna() | self.hosts.isin(self.clients.value)).to_numpy()
        if self.classes.value != "all":
            keep &= table.index.isin(self._with_class[self.classes.value])
        return table[keep]

    def filtered(self) -> pd.DataFrame:
        """The transcript rows of the selected sessions (replies of the chosen class only,
        when one is chosen, with every other row)."""
        chosen = self.selected_sessions().index
        rows = self.frame[self.frame["session"].isin(chosen).to_numpy()]
        if self.classes.value != "all":
            classes = np.asarray(reply_classes(rows["code"]).astype(object))
            is_reply = (rows["kind"] == "reply").to_numpy()
            rows = rows[~is_reply | (classes == self.classes.value)]
        return rows

    def update(self) -> None:
        """Recompute the view from the filters (every control's callback)."""
        chosen = self.selected_sessions()
        rows = self.filtered()
        replies = int((rows["kind"] == "reply").sum())
        self.status.value = text_html(
            f"{len(chosen):,} of {len(self.summary):,} sessions, {replies:,} replies selected"
        )
        figure = Figure(figsize=(12, 3.8), dpi=100)
        left, right = figure.subplots(1, 2, width_ratios=[1, 1.3])
        if replies:
            plot_codes_by_command(rows, ax=left)
        else:
            left.text(0.5, 0.5, "no replies selected", ha="center", transform=left.transAxes)
        # Outcomes from the session table, made of every row: with one reply class shown,
        # the rows alone would call a delivered session with one 550 "rejected".
        plot_sessions_over_time(rows, ax=right, summary=chosen)
        figure.tight_layout()
        self.figure.value = png(figure)
        self.last_figure = figure
        columns = ["source", "client", "start", "duration", "commands", "errors", "outcome"]
        self.table.value = table_html(chosen[[*columns, "fingerprint"]], max_rows=25, index=True)


def _hosts(endpoints: pd.Series) -> pd.Series:
    """``host`` of each ``host:port`` (or ``[v6]:port``) endpoint."""
    text = endpoints.astype("string")
    return text.str.replace(r":\d+$", "", regex=True).str.strip("[]")


def _time_steps(starts: pd.Series) -> list[pd.Timestamp]:
    """Up to :data:`TIME_STEPS` evenly spaced times from the first start to the last."""
    if starts.empty:
        return []
    low, high = starts.min(), starts.max()
    if low == high:
        return [low]
    return list(pd.date_range(low, high, periods=TIME_STEPS))
