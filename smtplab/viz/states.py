"""The SMTP state machine, drawn from the engine's own transition table.

Nothing here is a second copy of the protocol: the edges are
:data:`smtplab.protocol.states.TRANSITIONS` (where an accepted step leads) and
:data:`~smtplab.protocol.states.ON_REFUSAL` (refusals that still change the state). Only the
positions of the states are chosen here. Commands allowed in every state after the greeting
(NOOP, HELP, EXPN, VRFY, RSET; RFC 5321 4.1.4) and QUIT are summarised in a note instead of
drawn as a dozen loops. With a transcript, :func:`state_diagram` also walks one session
through the same table and highlights the path it took, numbering the steps.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import FancyArrowPatch

from smtplab.analysis.steps import REFUSALS_ONLY, in_protocol_order, last_chunks, steps
from smtplab.protocol.states import (
    ANYTIME,
    ON_REFUSAL,
    POSITIVE_CODES,
    TRANSITIONS,
    State,
    Step,
    next_state,
)
from smtplab.viz.style import new_axes

#: Where each state sits (x, y); a state missing here is placed on a spare row.
POSITIONS: dict[State, tuple[float, float]] = {
    State.GREETING: (0.0, 7.0),
    State.REFUSED: (-3.4, 7.0),
    State.CLOSED: (3.8, 7.0),
    State.CONNECTED: (0.0, 5.6),
    State.READY: (0.0, 4.2),
    State.MAIL: (0.0, 2.8),
    State.RCPT: (0.0, 1.4),
    State.DATA: (-2.6, 0.0),
    State.BDAT: (2.6, 0.0),
}
#: Steps that abandon a transaction (RFC 5321 4.1.1.5, 4.1.4): drawn dashed, named in the note.
ABANDON = ("RSET", "EHLO", "HELO")
TRANSACTION_STATES = (State.MAIL, State.RCPT, State.BDAT)
#: Hand-placed labels where the computed spot would collide with a state or another label.
LABEL_AT: dict[tuple[State, State], tuple[float, float, str]] = {
    (State.RCPT, State.READY): (0.45, 1.9, "left"),
    (State.BDAT, State.READY): (2.05, 2.9, "left"),
    (State.READY, State.CLOSED): (1.75, 5.1, "left"),
}
HIGHLIGHT = "#D55E00"


def path_of(frame: pd.DataFrame, session: str | None = None) -> list[tuple[State, str, State]]:
    """The ``(state, step, next state)`` of each step of one session, by the engine's table.

    A log of refusals (Postfix) gives no codes for what it accepted: such a step counts as
    answered with the usual positive code (221 for QUIT), its steps are taken in protocol
    order, and an accepted DATA is followed by the message it implies.
    """
    table = in_protocol_order(steps(frame))
    if session is None and len(table):
        session = str(table["session"].iloc[0])
    table = table[table["session"].astype(str) == session]
    verbs = table["verb"].astype(str).tolist()
    # A log of refusals has no BDAT arguments: the last chunk of a run is the LAST one.
    last = last_chunks(table) | (
        table["source"].isin(REFUSALS_ONLY).to_numpy()
        & (np.array(verbs, dtype=object) == "BDAT")
        & (np.array([*verbs[1:], ""], dtype=object) != "BDAT")
    )
    state = State.GREETING
    path = []
    for (_, row), is_last in zip(table.iterrows(), last, strict=True):
        step = Step.BDAT_LAST if is_last else str(row["verb"])
        code = row["code"]
        implied = pd.isna(code)
        if implied:
            if row["status"] != "accepted":
                break  # unanswered: the session ends here
            code = min(POSITIVE_CODES.get(step, {250}))
        after = next_state(state, step, int(code))
        path.append((state, step, after))
        state = after
        if implied and step == "DATA" and state == State.DATA:
            path.append((state, Step.DATA_END, next_state(state, Step.DATA_END, 250)))
            state = State.READY
    return path


def state_diagram(
    frame: pd.DataFrame | None = None, session: str | None = None, ax: Axes | None = None
) -> Axes:
    """Draw the state machine; with ``frame``, highlight the path of one session."""
    ax = new_axes(ax, (9.0, 7.0))
    ax.set_xlim(-4.8, 5.4)
    ax.set_ylim(-1.3, 8.0)
    ax.axis("off")
    used: dict[tuple[State, State], list[int]] = defaultdict(list)
    visited: set[State] = set()
    steps_taken: list[str] = []
    if frame is not None:
        for number, (before, step, after) in enumerate(path_of(frame, session), 1):
            steps_taken.append(step)
            used[(before, after)].append(number)
            visited.update((before, after))

    edges = _edges()
    for (before, after), verbs in sorted(edges.items(), key=lambda e: _order(e[0])):
        _edge(ax, before, after, verbs, used.get((before, after), []))
    for (before, after), numbers in used.items():  # a QUIT or 421 that the chart summarises
        if (before, after) not in edges:
            _edge(ax, before, after, [steps_taken[numbers[0] - 1]], numbers)
    for state in State:
        x, y = _position(state)
        on_path = state in visited
        ax.text(
            x,
            y,
            state.value,
            ha="center",
            va="center",
            fontsize=10,
            fontweight="bold" if on_path else "normal",
            bbox={
                "boxstyle": "round,pad=0.45",
                "fc": "#FBE3D6" if on_path else "#F2F2F2",
                "ec": HIGHLIGHT if on_path else "#555",
                "lw": 2 if on_path else 1,
            },
            zorder=3,
        )
    anytime = ", ".join(v for v in ANYTIME if v != "QUIT")
    ax.text(
        -4.7,
        -1.2,
        f"Allowed in every state after the greeting, state unchanged: {anytime}"
        " (RFC 5321 4.1.4).\nDashed: RSET, EHLO or HELO abandons the transaction;"
        " so does a refused BDAT (RFC 3030 2).\nQUIT, or any 221/421 reply, leads to closed.",
        fontsize=8,
        color="#444",
        va="bottom",
    )
    title = "SMTP session states (RFC 5321 3.3, 4.1.4; RFC 3030; RFC 3207)"
    if frame is not None and len(frame):
        title += f"\npath of {session or frame['session'].astype(str).iloc[0]}"
    ax.set_title(title, fontsize=10, loc="left")
    return ax


def _edges() -> dict[tuple[State, State], list[str]]:
    """Labels per (from, to) edge. Anytime loops are left out, QUIT is drawn from the two
    states where it is the only way out, and a step that moves only when refused is marked."""
    edges: dict[tuple[State, State], list[str]] = defaultdict(list)
    refusals = {key: after for key, after in ON_REFUSAL.items() if TRANSITIONS.get(key) != after}
    labelled = [(key, after, key[1]) for key, after in TRANSITIONS.items()]
    # A refused chunk ends the transaction too; the note says so rather than two more labels.
    labelled += [
        (key, after, f"{key[1]} (refused)")
        for key, after in refusals.items()
        if key[1] not in ("BDAT", Step.BDAT_LAST)
    ]
    for (before, step), after, label in labelled:
        if step in ANYTIME and after == before:
            continue
        if step == "QUIT" and before not in (State.CONNECTED, State.REFUSED):
            continue  # one QUIT edge stands for all: see the note
        if after == State.READY and before in TRANSACTION_STATES and step in ABANDON:
            label = ""  # dashed edge, explained in the note
        if (before, step) == (State.GREETING, Step.CONNECT) and after == State.REFUSED:
            label = "CONNECT (554)"  # a refused greeting: only QUIT is allowed (RFC 5321 3.1)
        if label.endswith("(refused)") and label.split()[0] in edges[(before, after)]:
            continue  # already goes there when accepted
        if label not in edges[(before, after)]:
            edges[(before, after)].append(label)
    return edges


def _order(edge: tuple[State, State]) -> tuple[int, int]:
    members = list(State)
    return members.index(edge[0]), members.index(edge[1])


def _position(state: State) -> tuple[float, float]:
    if state in POSITIONS:
        return POSITIONS[state]
    spare = [s for s in State if s not in POSITIONS].index(state)
    return (-4.0 + 1.6 * spare, -0.6)


def _edge(ax: Axes, before: State, after: State, verbs: list[str], numbers: list[int]) -> None:
    colour = HIGHLIGHT if numbers else "#777"
    width = 2.2 if numbers else 1.0
    dashed = "" in verbs and all(not v for v in verbs)
    label = ", ".join(v for v in verbs if v)
    if numbers:
        label += (
            "  [" + ", ".join(str(n) for n in numbers[:6]) + ("…" if len(numbers) > 6 else "") + "]"
        )
    (x0, y0), (x1, y1) = _position(before), _position(after)
    if before == after:  # a loop to the right of the state
        patch = FancyArrowPatch(
            (x0 + 0.55, y0 + 0.12),
            (x0 + 0.55, y0 - 0.12),
            connectionstyle="arc3,rad=-2.2",
            arrowstyle="-|>",
            mutation_scale=12,
            color=colour,
            lw=width,
        )
        ax.add_patch(patch)
        ax.text(x0 + 1.05, y0, label, fontsize=8, va="center", color=colour)
        return
    bend = _bend(before, after)
    patch = FancyArrowPatch(
        (x0, y0),
        (x1, y1),
        connectionstyle=f"arc3,rad={bend}",
        arrowstyle="-|>",
        mutation_scale=14,
        color=colour,
        lw=width,
        ls=(0, (4, 3)) if dashed else "solid",
        shrinkA=17,
        shrinkB=17,
        zorder=2,
    )
    ax.add_patch(patch)
    if not label:
        return
    # The label sits beside the middle of the (possibly bent) edge; arc3's curve passes
    # half-way between the chord's middle and its control point.
    dx, dy = x1 - x0, y1 - y0
    along = 0.3 if dy > 0.1 and abs(dx) > 0.1 else 0.5  # long diagonal back edges: near start
    if after == State.CLOSED and before != State.CONNECTED:
        along = 0.8  # the summarised QUIT/421 edges: label near closed, clear of the spine
    mx, my = x0 + along * dx, y0 + along * dy
    mx, my = mx + bend * dy * 2 * along * (1 - along), my - bend * dx * 2 * along * (1 - along)
    align = "center"
    if (before, after) in LABEL_AT:
        mx, my, align = LABEL_AT[(before, after)]
    elif abs(dx) < 0.1:  # a vertical edge: label beside it, on the side it bends to
        align = "left" if bend * dy >= 0 else "right"
        mx += 0.12 if align == "left" else -0.12
    ax.text(
        mx,
        my,
        label,
        fontsize=8,
        ha=align,
        va="center",
        color=colour,
        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
        zorder=2.5,
    )


def _bend(before: State, after: State) -> float:
    """Back edges (towards the greeting) bend so they do not overlap forward ones."""
    (x0, y0), (x1, y1) = _position(before), _position(after)
    if y1 > y0 + 0.1 and abs(x1 - x0) < 0.1:
        return 0.5 if after == State.READY else -0.5  # up the spine: arc beside it
    if before == State.REFUSED and after == State.CLOSED:
        return -0.12  # over the greeting
    if y1 > y0 + 0.1:
        return -0.3 if x0 < x1 else 0.3
    return 0.0
