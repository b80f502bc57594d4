"""Figures (matplotlib) and widgets (ipywidgets) for transcript frames, live or captured.

Every figure function takes the frame and an optional ``ax`` and returns the axes; every
widget is an ``ipywidgets.VBox`` whose callbacks are plain methods (scriptable and tested).
"""

from smtplab.viz.console import Console
from smtplab.viz.dashboard import Dashboard
from smtplab.viz.delivery import plot_delivery_delays
from smtplab.viz.distributions import (
    plot_codes,
    plot_codes_by_command,
    plot_latencies,
    plot_sessions_over_time,
)
from smtplab.viz.explorer import SessionExplorer, StepPlayer
from smtplab.viz.sequence import sequence_diagram
from smtplab.viz.states import path_of, state_diagram
from smtplab.viz.tables import readable_tables, table_html

__all__ = [
    "Console",
    "Dashboard",
    "SessionExplorer",
    "StepPlayer",
    "path_of",
    "plot_codes",
    "plot_codes_by_command",
    "plot_delivery_delays",
    "plot_latencies",
    "plot_sessions_over_time",
    "readable_tables",
    "sequence_diagram",
    "state_diagram",
    "table_html",
]
