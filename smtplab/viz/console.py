"""An SMTP console in a notebook: type commands to the in-process server, watch the diagram grow.

Like ``telnet mx 25`` in a networking course, but every line is recorded and drawn. Each line
typed is sent as is, with CRLF, and whatever the server answers is shown; after ``DATA`` and
its 354 the lines typed are the message, until a line with a single dot (RFC 5321 4.1.1.4),
and the server stays silent until then. A scenario picks the server's behaviour (see
``smtplab.scenarios()``); changing it, or ``new session``, starts over.
"""

from __future__ import annotations

import warnings

import ipywidgets as widgets
import pandas as pd

from smtplab.client.session import Session
from smtplab.protocol.events import Reply
from smtplab.teaching.lab import Lab
from smtplab.teaching.scenarios import scenario, scenarios
from smtplab.viz.render import figure_png, known, text_html
from smtplab.viz.sequence import diagram_size, sequence_diagram
from smtplab.viz.tables import table_html

DEFAULT = "basic"
MAX_ROWS = 40


class Console(widgets.VBox):
    """Type SMTP commands to an in-process server; replies and a sequence diagram update.

    :meth:`submit` is what the text box calls; tests and notebook cells can call it too.
    """

    def __init__(self, scenario_name: str = DEFAULT) -> None:
        names = scenarios()["name"].tolist()
        if scenario_name not in names:
            raise ValueError(f"no scenario {scenario_name!r}; choose one of {', '.join(names)}")
        self.scenario = widgets.Dropdown(options=names, value=scenario_name, description="server")
        self.line = widgets.Text(
            placeholder="EHLO client.example.net, then Enter",
            description="client:",
            continuous_update=True,  # the box's value is always what is typed
            layout=widgets.Layout(width="70%"),
        )
        self.send = widgets.Button(description="send", tooltip="send the line (even an empty one)")
        self.restart = widgets.Button(description="new session")  # no icon: a page opened from
        # a disk cannot load the icon font (browsers ask fonts for CORS, which file: lacks)
        self.replies = widgets.HTML()
        self.diagram = widgets.Image(format="png")
        self.table = widgets.HTML()
        # Enter or the button sends the line, once, an empty one too (a message needs them).
        # Not "observe the value with continuous_update=False", which ipywidgets suggests
        # instead of on_submit: that value also changes when the box loses focus, so a click
        # on the button sent the line on blur and then an empty line on the click.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.line.on_submit(lambda box: self._typed())
        self.send.on_click(lambda button: self._typed())
        self.restart.on_click(lambda button: self.new_session())
        self.scenario.observe(lambda change: self.new_session(), names="value")
        super().__init__(
            [
                widgets.HBox([self.scenario, self.restart]),
                widgets.HBox([self.line, self.send]),
                self.replies,
                self.diagram,
                self.table,
            ]
        )
        self.lab: Lab
        self.session: Session
        self.new_session()

    def new_session(self) -> None:
        """Connect a new client to a new server of the chosen scenario."""
        self.lab = scenario(self.scenario.value).lab()
        self.session = self.lab.connect()
        self.history: list[str] = [_greeting(self.session.greeting)]
        self._refresh()

    def submit(self, line: str) -> list[Reply]:
        """Send one line as typed; return the replies it brought (none inside a message)."""
        if "\r" in line or "\n" in line:
            raise ValueError("type one line at a time")
        if self.session.closed:
            self.history.append("(the session is closed: starting a new one)")
            self.history.append(_greeting(self._reconnect()))
        self.history.append(f"C: {line}")
        before = len(self._replies_so_far())
        try:
            replies = self.session.send_raw(line.encode("utf-8") + b"\r\n")
        except Exception:
            # The line went out and the client's bookkeeping objected to what came back;
            # the transcript has the replies all the same: show them from there.
            self.history.extend(f"S: {text}" for text in self._replies_so_far()[before:])
            self._refresh()
            raise
        self.history.extend(f"S: {reply}" for reply in replies)
        self._refresh()
        return replies

    def _replies_so_far(self) -> list[str]:
        """The current session's replies, as the history shows them."""
        frame = self.lab.transcript()
        mine = frame["session"].astype(str) == self.session.name
        rows = frame[mine.to_numpy() & (frame["kind"] == "reply").to_numpy()]
        return [
            " ".join(str(part) for part in (r.code, r.enhanced, r.text) if known(part))
            for r in rows.itertuples()
        ]

    @property
    def transcript(self) -> pd.DataFrame:
        """Every session typed so far, as a transcript frame."""
        return self.lab.transcript()

    def _typed(self) -> None:
        line, self.line.value = self.line.value, ""
        try:
            self.submit(line)
        except Exception as error:  # shown, not raised: the widget stays usable
            self.history.append(f"(not sent: {error})")
            self._refresh()

    def _reconnect(self) -> Reply | None:
        self.session = self.lab.connect()
        return self.session.greeting

    def _refresh(self) -> None:
        self.replies.value = text_html("\n".join(self.history[-12:]))
        frame = self.lab.transcript()
        current = frame[frame["session"].astype(str) == self.session.name]
        shown = min(len(current), MAX_ROWS)
        start = max(0, len(current) - MAX_ROWS)
        self.diagram.value = figure_png(
            lambda ax: sequence_diagram(
                current, ax=ax, start=start, rows=MAX_ROWS, current=len(current) - 1
            ),
            size=diagram_size(shown),
        )
        columns = ["seq", "sender", "kind", "verb", "argument", "code", "enhanced", "text"]
        self.table.value = table_html(current[columns].iloc[::-1], max_rows=12)


def _greeting(reply: Reply | None) -> str:
    return f"S: {reply}" if reply else "(the server closed the connection without a greeting)"
