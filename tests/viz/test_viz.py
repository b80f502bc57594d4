"""Figures render for every kind of transcript; the basic diagram matches its reference image.

To redraw the reference after an intended change of the diagram, run
``SMTPLAB_UPDATE_REFERENCE=1 scripts/test tests/viz/test_viz.py -k reference`` and look at the
new PNG before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from matplotlib.testing.compare import compare_images

import smtplab
from smtplab.protocol.states import State
from smtplab.viz import (
    path_of,
    plot_codes,
    plot_codes_by_command,
    plot_delivery_delays,
    plot_latencies,
    plot_sessions_over_time,
    sequence_diagram,
    state_diagram,
)
from smtplab.viz.style import png

FIXTURES = Path(__file__).parents[1] / "fixtures"
REFERENCE = Path(__file__).parents[1] / "reference" / "sequence-basic.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def basic_transaction() -> pd.DataFrame:
    lab = smtplab.Lab()
    lab.send("alice@example.net", ["bob@example.org", "nobody@example.org"])
    return lab.transcript()


def frames() -> dict[str, pd.DataFrame]:
    return {
        "lab": basic_transaction(),
        "pcap": smtplab.read(FIXTURES / "smtp.pcapng"),
        "postfix": smtplab.read(FIXTURES / "postfix.log"),
        "swaks": smtplab.read(FIXTURES / "swaks.txt"),
        "smtplib": smtplab.read(FIXTURES / "smtplib-debug2.txt"),
    }


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("source", ["lab", "pcap", "postfix", "swaks", "smtplib"])
def test_every_figure_renders(source: str) -> None:
    frame = frames()[source]
    sessions = frame["session"].astype(str).unique()
    drawings = [
        lambda ax: sequence_diagram(frame, sessions[-1], ax=ax),
        lambda ax: plot_codes(frame, "class", ax=ax),
        lambda ax: plot_codes(frame, "code", ax=ax),
        lambda ax: plot_codes(frame, "enhanced", ax=ax),
        lambda ax: plot_codes_by_command(frame, ax=ax),
        lambda ax: plot_sessions_over_time(frame, ax=ax),
        lambda ax: plot_latencies(frame, ax=ax),
        lambda ax: plot_delivery_delays(frame, ax=ax),  # (no delays logged but Postfix's)
        lambda ax: state_diagram(frame, sessions[0], ax=ax),
    ]
    for draw in drawings:
        figure, ax = plt.subplots(figsize=(8, 5))
        assert draw(ax) is ax
        data = png(figure)
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000
        plt.close(figure)


def test_figures_without_an_axes_make_their_own() -> None:
    frame = basic_transaction()
    ax = sequence_diagram(frame)
    # One row per unit: 17 rows, and the figure grows with them.
    assert ax.figure.get_size_inches()[1] > 5
    assert plot_codes(frame).figure is not ax.figure


def test_figures_are_deterministic() -> None:
    frame = basic_transaction()
    first = png(sequence_diagram(frame).figure)
    second = png(sequence_diagram(frame).figure)
    assert first == second


def test_sequence_diagram_of_the_basic_transaction_matches_the_reference(tmp_path) -> None:
    with matplotlib.rc_context(matplotlib.rcParamsDefault):
        matplotlib.use("Agg")
        figure = sequence_diagram(basic_transaction()).figure
        actual = tmp_path / "sequence-basic.png"
        actual.write_bytes(png(figure))
    if os.environ.get("SMTPLAB_UPDATE_REFERENCE"):
        REFERENCE.parent.mkdir(exist_ok=True)
        REFERENCE.write_bytes(actual.read_bytes())
    # RMS difference per pixel (0-255): small enough to catch a moved arrow, a lost label
    # or a changed colour, large enough for anti-aliasing differences between machines.
    difference = compare_images(str(REFERENCE), str(actual), tol=2.0)
    assert difference is None, difference


def test_sequence_diagram_text_and_layout() -> None:
    frame = basic_transaction()
    ax = sequence_diagram(frame)
    texts = [t.get_text() for t in ax.texts]
    assert "MAIL FROM:<alice@example.net>" in texts
    assert "message: 286 octets, 10 lines, then <CRLF>.<CRLF>" in texts
    assert any(t.startswith("550 5.1.1 <nobody@example.org>") for t in texts)
    assert "+0.0 ms" in texts and "+15.6 ms" in texts
    # Long sessions are drawn a window at a time, and say what is left out.
    window = sequence_diagram(frame, start=4, rows=6)
    labels = [t.get_text() for t in window.texts]
    assert "… 4 earlier rows" in labels and "… 7 more rows" in labels


def test_sequence_diagram_marks_pipelined_groups() -> None:
    capture = smtplab.read(FIXTURES / "smtp.pcapng")
    texts = [t.get_text() for t in sequence_diagram(capture, "smtp-2").texts]
    assert texts.count("pipelined") == 1
    texts = [t.get_text() for t in sequence_diagram(capture, "smtp-1").texts]
    assert "pipelined" not in texts


def test_sequence_diagram_names_a_missing_session() -> None:
    with pytest.raises(ValueError, match="no session 'lab-9'"):
        sequence_diagram(basic_transaction(), "lab-9")


def test_state_path_follows_the_engine_table() -> None:
    path = path_of(basic_transaction())
    assert [(a.value, step, b.value) for a, step, b in path] == [
        ("greeting", "CONNECT", "connected"),
        ("connected", "EHLO", "ready"),
        ("ready", "MAIL", "mail"),
        ("mail", "RCPT", "rcpt"),
        ("rcpt", "RCPT", "rcpt"),  # the refused recipient leaves the state as it was
        ("rcpt", "DATA", "data"),
        ("data", "DATA-END", "ready"),
        ("ready", "QUIT", "closed"),
    ]
    capture = smtplab.read(FIXTURES / "smtp.pcapng")
    chunked = path_of(capture, "smtp-9")
    assert (State.BDAT, "BDAT-LAST", State.READY) in chunked
    encrypted = path_of(capture, "smtp-3")
    assert encrypted[-1] == (State.READY, "STARTTLS", State.CONNECTED)


def test_state_diagram_highlights_the_path() -> None:
    ax = state_diagram(basic_transaction())
    labels = [t.get_text() for t in ax.texts]
    assert "DATA-END  [7]" in labels
    assert "QUIT  [8]" in labels
    plain = [t.get_text() for t in state_diagram().texts]
    assert "DATA-END" in plain and not any("[" in label for label in plain)


def test_sequence_diagram_refuses_negative_positions() -> None:
    frame = basic_transaction()
    with pytest.raises(ValueError, match="start must be 0 or more"):
        sequence_diagram(frame, start=-3)
    with pytest.raises(ValueError, match="current must be a row index"):
        sequence_diagram(frame, current=-1)


def test_state_path_of_a_log_follows_protocol_order() -> None:
    """A Postfix log gives accepted commands only as counts: the path is rebuilt in order."""
    log = smtplab.read(FIXTURES / "postfix.log")
    tls = [(a.value, step, b.value) for a, step, b in path_of(log, "postfix-3")]
    assert tls == [
        ("greeting", "CONNECT", "connected"),
        ("connected", "EHLO", "ready"),
        ("ready", "STARTTLS", "connected"),
        ("connected", "EHLO", "ready"),
        ("ready", "MAIL", "mail"),
        ("mail", "RCPT", "rcpt"),
        ("rcpt", "DATA", "data"),
        ("data", "DATA-END", "ready"),
        ("ready", "QUIT", "closed"),
    ]
    chunked = path_of(log, "postfix-7")
    assert chunked[-2:] == [
        (State.BDAT, "BDAT-LAST", State.READY),
        (State.READY, "QUIT", State.CLOSED),
    ]
    state_diagram(log.iloc[:0])  # an empty frame draws the bare machine
