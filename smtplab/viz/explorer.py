"""Widgets that look at a transcript: pick a session, or step through one.

Both are ``ipywidgets.VBox`` subclasses, so a notebook cell that ends with one shows it. Their
callbacks are plain methods (:meth:`SessionExplorer.select`, :meth:`StepPlayer.show`) that the
controls call; tests call them directly, without a browser, and read the results from the
child widgets' values (PNG bytes of the diagram, HTML of the table).
"""

from __future__ import annotations

import ipywidgets as widgets
import pandas as pd

from smtplab.analysis.sessions import sessions
from smtplab.analysis.steps import in_protocol_order, steps
from smtplab.protocol.codes import describe_command, explain
from smtplab.viz.render import figure_png, known, text_html
from smtplab.viz.sequence import diagram_size, sequence_diagram, session_rows
from smtplab.viz.states import path_of
from smtplab.viz.tables import table_html

ROW_COLUMNS = ["seq", "time", "sender", "kind", "verb", "argument", "code", "enhanced", "text"]
MAX_DIAGRAM_ROWS = 60


class SessionExplorer(widgets.VBox):
    """Pick a session of ``frame`` from a list; see its sequence diagram, summary and rows."""

    def __init__(self, frame: pd.DataFrame, session: str | None = None) -> None:
        if frame.empty:
            raise ValueError("the transcript has no rows: nothing to explore")
        self.frame = frame
        self.summary = sessions(frame)
        options = [
            (f"{name} · {row.outcome} · {row.fingerprint}", str(name))
            for name, row in self.summary.iterrows()
        ]
        self.picker = widgets.Dropdown(
            options=options, description="session", layout=widgets.Layout(width="95%")
        )
        self.heading = widgets.HTML()
        self.diagram = widgets.Image(format="png")
        self.table = widgets.HTML()
        self.picker.observe(lambda change: self.select(change["new"]), names="value")
        super().__init__([self.picker, self.heading, self.diagram, self.table])
        self.session = ""
        self.select(session or options[0][1])

    def select(self, session: str) -> None:
        """Show ``session`` (the dropdown's callback; call it directly to script the widget)."""
        if session not in self.summary.index:
            raise ValueError(f"no session {session!r} in this transcript")
        self.session = session
        if self.picker.value != session:
            self.picker.value = session  # fires the observer, which lands back here
            return
        rows = session_rows(self.frame, session)
        self.rows = rows
        info = self.summary.loc[session]
        self.heading.value = text_html(
            f"{session}: {info['outcome']}, {info['commands']} commands, {info['errors']} errors"
            f" — {info['fingerprint']}"
        )
        shown = min(len(rows), MAX_DIAGRAM_ROWS)
        self.diagram.value = figure_png(
            lambda ax: sequence_diagram(self.frame, session, ax=ax, rows=MAX_DIAGRAM_ROWS),
            size=diagram_size(shown),
        )
        self.table.value = table_html(rows[ROW_COLUMNS], max_rows=200)


class StepPlayer(widgets.VBox):
    """Play one session a row at a time: the diagram fills in, each row is explained.

    A slider (and a play button) moves through the rows in the order the diagram draws
    them; below, the current row is explained: a command by what it asks (RFC section), a
    reply by :func:`smtplab.explain`, together with the state the session is in.
    """

    def __init__(self, frame: pd.DataFrame, session: str | None = None) -> None:
        self.rows = session_rows(frame, session)
        self.frame = frame
        self.session = str(self.rows["session"].iloc[0])
        self.states = _states_by_seq(frame, self.session)
        last = len(self.rows) - 1
        self.slider = widgets.IntSlider(value=0, min=0, max=last, description="row")
        self.play = widgets.Play(value=0, min=0, max=last, interval=900, description="play")
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.diagram = widgets.Image(format="png")
        self.explanation = widgets.HTML()
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        super().__init__([widgets.HBox([self.play, self.slider]), self.explanation, self.diagram])
        self.position = -1
        self.show(0)

    def show(self, position: int) -> None:
        """Show the session up to row ``position`` (the slider's callback)."""
        position = max(0, min(position, len(self.rows) - 1))
        self.position = position
        start = max(0, position - MAX_DIAGRAM_ROWS + 10) if position >= MAX_DIAGRAM_ROWS else 0
        shown = min(len(self.rows) - start, MAX_DIAGRAM_ROWS)
        self.diagram.value = figure_png(
            lambda ax: sequence_diagram(
                self.frame,
                self.session,
                ax=ax,
                start=start,
                rows=MAX_DIAGRAM_ROWS,
                current=position,
            ),
            size=diagram_size(shown),
        )
        self.explanation.value = text_html(self.describe(position))

    def describe(self, position: int) -> str:
        """What row ``position`` is and means, in words."""
        row = self.rows.iloc[position]
        state = self.states.get(int(row["seq"]))
        where = f"\nState after it: {state}" if state else ""
        head = f"Row {position + 1} of {len(self.rows)} ({row['sender']}, {row['kind']})"
        if row["kind"] == "reply" and pd.notna(row["code"]):
            # The first line carries the meaning; the rest (EHLO's keywords) is listed after.
            first, _, rest = (row["text"] if known(row["text"]) else "").partition("\n")
            wire = " ".join(
                str(part) for part in (row["code"], row["enhanced"], first) if known(part)
            )
            more = f"\n  Further lines: {rest.replace(chr(10), ', ')}" if rest else ""
            return f"{head}: answers {row['verb']}\n{explain(wire)}{more}{where}"
        if row["kind"] in ("command", "connect", "data"):
            verb = str(row["verb"]) if known(row["verb"]) else "CONNECT"
            argument = f" {row['argument']}" if known(row["argument"]) else ""
            return f"{head}: {verb}{argument}\n{describe_command(verb)}{where}"
        text = row["text"] if known(row["text"]) else ""
        return f"{head}: {text}".rstrip(": ")


def _states_by_seq(frame: pd.DataFrame, session: str) -> dict[int, str]:
    """The state the session is in after each reply, by the reply's seq."""
    mine = frame[(frame["session"].astype(str) == session).to_numpy()]  # not the whole frame
    table = in_protocol_order(steps(mine))  # the order path_of walks
    states: dict[int, str] = {}
    for (_, row), (_, _, after) in zip(table.iterrows(), path_of(mine, session), strict=False):
        if pd.notna(row["reply_seq"]):
            states[int(row["reply_seq"])] = after.value
    return states
