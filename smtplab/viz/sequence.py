"""A session as a message sequence chart: client and server lifelines, one arrow per unit.

Each row of the transcript becomes one line of the chart, top to bottom: commands as black
arrows to the server, replies as arrows back coloured by class (:data:`CLASS_COLOURS`), the
message as one thick arrow ("message: 286 octets, 10 lines") since the server answers it once,
after ``<CRLF>.<CRLF>`` (RFC 5321 4.1.1.4), TLS as a band across both lifelines, notes in grey,
and the close as a cross on the side that closed. The time since the session began is on the
left. Commands sent without waiting for replies (RFC 2920 pipelining) are bracketed and their
group shaded, so a pipelined group and its replies read as one exchange.

Rows are drawn in time order (``seq`` breaks ties). A live server records a pipelined command
when it processes it, after the replies before it; time order shows the group as the wire saw
it, commands first. Long sessions are drawn ``rows`` at a time from ``start``.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, Rectangle

from smtplab.analysis.steps import steps
from smtplab.viz.render import known
from smtplab.viz.style import CLASS_COLOURS, COMMAND, colour_of, new_axes, shorten

CLIENT_X, SERVER_X = 2.7, 8.6
LABEL_WIDTH = 62  # characters of a label between the lifelines
ROW_HEIGHT = 0.3  # inches per row


def session_rows(frame: pd.DataFrame, session: str | None = None) -> pd.DataFrame:
    """The rows of one session (the first one when ``session`` is None), in display order."""
    if frame.empty:
        raise ValueError("the transcript has no rows: run a session first")
    names = frame["session"].astype(str)
    if session is None:
        session = names.iloc[0]
    rows = frame[(names == session).to_numpy()]
    if rows.empty:
        known = ", ".join(sorted(set(names))[:5])
        raise ValueError(f"no session {session!r} in this transcript (it has: {known}, ...)")
    rows = rows.sort_values("seq", kind="stable")
    if rows["time"].notna().all():
        rows = rows.sort_values("time", kind="stable")
    return rows.reset_index(drop=True)


def sequence_diagram(
    frame: pd.DataFrame,
    session: str | None = None,
    ax: Axes | None = None,
    *,
    start: int = 0,
    rows: int = 40,
    current: int | None = None,
    width: float = 9.0,
) -> Axes:
    """Draw one session of ``frame`` as a sequence diagram; return the axes.

    ``session`` picks the session (default: the first). ``start`` and ``rows`` choose which
    rows to draw in a long session. ``current`` (a row index in display order) marks one row
    and fades the rows after it, as a step-by-step player shows a session unfolding.
    """
    if start < 0 or rows < 1:
        raise ValueError("start must be 0 or more and rows 1 or more")
    if current is not None and current < 0:
        raise ValueError("current must be a row index, 0 or more")
    table = session_rows(frame, session)
    shown = table.iloc[start : start + rows]
    count = len(shown)
    own_figure = ax is None
    size = diagram_size(count, width)
    ax = new_axes(ax, size)
    if own_figure:
        top = 1 - 0.35 / size[1]  # room for the title line
        ax.figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=top)
    ax.set_xlim(0, 10)
    ax.set_ylim(count + 0.2, -1.9)
    ax.axis("off")

    first = table.iloc[0]
    _lifelines(ax, first, count)
    origin = table["time"].min()
    positions = {int(seq): y for y, seq in enumerate(shown["seq"])}
    for y, (_, row) in enumerate(shown.iterrows()):
        faded = current is not None and start + y > current
        alpha = 0.18 if faded else 1.0
        _time_label(ax, y, row, origin, alpha)
        _unit(ax, y, row, alpha)
        if current is not None and start + y == current:
            ax.add_patch(Rectangle((0, y - 0.45), 10, 0.9, color="#FFE66D", alpha=0.45, lw=0))
    _pipelined_groups(ax, table, positions)
    if start > 0:
        ax.text(5.6, -0.9, f"… {start} earlier rows", ha="center", fontsize=8, color="#666")
    if start + count < len(table):
        more = len(table) - start - count
        ax.text(5.6, count - 0.2, f"… {more} more rows", ha="center", fontsize=8, color="#666")
    _legend(ax)
    source = first["source"] if isinstance(first["source"], str) else "transcript"
    ax.set_title(f"{first['session']} ({source})", fontsize=10, loc="left")
    return ax


def diagram_size(rows: int, width: float = 9.0) -> tuple[float, float]:
    """The figure size (inches) that fits a diagram of ``rows`` rows."""
    return width, 1.3 + ROW_HEIGHT * max(rows, 4)


def _lifelines(ax: Axes, first: pd.Series, count: int) -> None:
    for x, role, endpoint in (
        (CLIENT_X, "client", first["client"]),
        (SERVER_X, "server", first["server"]),
    ):
        label = role if not isinstance(endpoint, str) else f"{role}\n{endpoint}"
        ax.text(
            x,
            -1.2,
            label,
            ha="center",
            va="center",
            fontsize=8.5,
            bbox={"boxstyle": "round,pad=0.3", "fc": "#F2F2F2", "ec": "#555"},
        )
        ax.add_line(Line2D([x, x], [-0.7, count - 0.4], color="#888", lw=1, ls=(0, (4, 3))))


def _time_label(ax: Axes, y: int, row: pd.Series, origin: pd.Timestamp, alpha: float) -> None:
    if pd.notna(row["time"]) and pd.notna(origin):
        label = f"+{(row['time'] - origin).total_seconds() * 1000:,.1f} ms"
    else:
        label = f"#{row['seq']}"
    ax.text(
        0.05, y, label, va="center", fontsize=7.5, color="#555", alpha=alpha, family="monospace"
    )


def _unit(ax: Axes, y: int, row: pd.Series, alpha: float) -> None:
    kind = row["kind"]
    if kind == "reply":
        first_line, _, rest = str(row["text"] if isinstance(row["text"], str) else "").partition(
            "\n"
        )
        more = rest.count("\n") + 1 if rest else 0
        label = " ".join(
            str(part) for part in (row["code"], row["enhanced"], first_line) if known(part)
        )
        label = shorten(label, LABEL_WIDTH - (12 if more else 0))
        if more:
            label += f"  [+{more} lines]"
        _arrow(ax, y, SERVER_X, CLIENT_X, label, colour_of(row["code"]), alpha)
    elif kind == "command":
        argument = row["argument"] if isinstance(row["argument"], str) else ""
        label = shorten(f"{row['verb']} {argument}".strip(), LABEL_WIDTH)
        _arrow(ax, y, CLIENT_X, SERVER_X, label, COMMAND, alpha)
    elif kind == "data":
        size = row["size"] if pd.notna(row["size"]) else "?"
        lines = row["lines"] if pd.notna(row["lines"]) else "?"
        label = f"message: {size} octets, {lines} lines, then <CRLF>.<CRLF>"
        _arrow(ax, y, CLIENT_X, SERVER_X, label, COMMAND, alpha, lw=3.0)
    elif kind == "connect":
        _arrow(ax, y, CLIENT_X, SERVER_X, "connect", COMMAND, alpha, style=(0, (2, 2)))
    elif kind == "tls":
        text = row["text"] if isinstance(row["text"], str) else "TLS"
        ax.add_patch(
            Rectangle((CLIENT_X, y - 0.3), SERVER_X - CLIENT_X, 0.6, fc="#D6EAF8", ec="none")
        )
        ax.text(
            (CLIENT_X + SERVER_X) / 2,
            y,
            shorten(f"TLS: {text}", LABEL_WIDTH),
            ha="center",
            va="center",
            fontsize=7.5,
            alpha=alpha,
        )
    elif kind == "close":
        x = CLIENT_X if row["sender"] == "client" else SERVER_X
        ax.plot([x], [y], marker="x", color="#444", ms=8, mew=2, alpha=alpha)
        text = row["text"] if isinstance(row["text"], str) else ""
        label = shorten(f"{row['sender']} closes" + (f": {text}" if text else ""), 40)
        ax.text(
            x + (0.15 if x == CLIENT_X else -0.15),
            y,
            label,
            ha="left" if x == CLIENT_X else "right",
            va="center",
            fontsize=7.5,
            color="#444",
            alpha=alpha,
        )
    else:  # note
        text = row["text"] if isinstance(row["text"], str) else str(kind)
        ax.text(
            (CLIENT_X + SERVER_X) / 2,
            y,
            shorten(text, LABEL_WIDTH),
            ha="center",
            va="center",
            fontsize=7.5,
            style="italic",
            color="#777",
            alpha=alpha,
        )


def _arrow(
    ax: Axes,
    y: int,
    x_from: float,
    x_to: float,
    label: str,
    colour: str,
    alpha: float,
    lw: float = 1.3,
    style: object = "solid",
) -> None:
    ax.add_patch(
        FancyArrowPatch(
            (x_from, y + 0.12),
            (x_to, y + 0.12),
            arrowstyle="-|>",
            mutation_scale=10,
            color=colour,
            lw=lw,
            ls=style,
            alpha=alpha,
            shrinkA=0,
            shrinkB=0,
        )
    )
    ax.text(
        (x_from + x_to) / 2,
        y - 0.06,
        label,
        ha="center",
        va="bottom",
        fontsize=7.5,
        color=colour if colour != COMMAND else "#111",
        alpha=alpha,
        family="monospace",
    )


def _pipelined_groups(ax: Axes, table: pd.DataFrame, positions: dict[int, int]) -> None:
    """Bracket each group of pipelined commands and shade it down to its last reply."""
    step = steps(table)
    grouped = step[step.groupby("group")["pipelined"].transform("any").to_numpy()]
    for _, group in grouped.groupby("group"):
        commands = [positions[s] for s in group["seq"] if s in positions]
        replies = [positions[int(s)] for s in group["reply_seq"].dropna() if int(s) in positions]
        if len(commands) < 2:
            continue
        top, bottom = min(commands), max(commands + replies)
        ax.add_patch(
            Rectangle(
                (CLIENT_X, top - 0.45),
                SERVER_X - CLIENT_X,
                bottom - top + 0.9,
                fc="#0072B2",
                alpha=0.06,
                lw=0,
            )
        )
        x = CLIENT_X - 0.22
        low, high = top - 0.3, max(commands) + 0.3
        ax.add_line(Line2D([x + 0.1, x, x, x + 0.1], [low, low, high, high], color="#0072B2"))
        ax.text(
            x - 0.08,
            (low + high) / 2,
            "pipelined",
            rotation=90,
            ha="right",
            va="center",
            fontsize=7,
            color="#0072B2",
        )


def _legend(ax: Axes) -> None:
    handles = [Line2D([], [], color=c, lw=2, label=cls) for cls, c in CLASS_COLOURS.items()]
    ax.legend(
        handles=handles,
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=4,
        fontsize=7,
        frameon=False,
        handlelength=1.2,
        columnspacing=0.8,
    )
