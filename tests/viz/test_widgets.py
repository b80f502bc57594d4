"""Widgets driven through their callbacks, as a click or a keystroke would, without a browser."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest

import smtplab
from smtplab.viz import Console, Dashboard, SessionExplorer, StepPlayer

FIXTURES = Path(__file__).parents[1] / "fixtures"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def capture():
    return smtplab.read(FIXTURES / "smtp.pcapng")


def test_session_explorer_follows_the_dropdown(capture) -> None:
    explorer = SessionExplorer(capture)
    assert explorer.session == "smtp-1"
    assert bytes(explorer.diagram.value).startswith(PNG_MAGIC)
    first_picture = explorer.diagram.value
    labels = [label for label, _ in explorer.picker.options]
    assert labels[8] == "smtp-9 · delivered · ehlo=1 mail=1 rcpt=1/2 bdat=3 quit=1 commands=7/8"

    explorer.picker.value = "smtp-9"  # what choosing in the dropdown does
    assert explorer.session == "smtp-9"
    assert "bdat=3" in explorer.heading.value
    assert "BDAT" in explorer.table.value and "2 LAST" in explorer.table.value
    assert explorer.diagram.value != first_picture
    assert len(explorer.rows) == 19

    explorer.select("smtp-3")  # the same, called from code
    assert explorer.picker.value == "smtp-3"
    assert "encrypted" in explorer.heading.value
    with pytest.raises(ValueError, match="no session 'smtp-99'"):
        explorer.select("smtp-99")


def test_step_player_explains_each_row(capture) -> None:
    player = StepPlayer(capture, "smtp-1")
    assert "CONNECT — the client opens a TCP connection" in player.explanation.value
    pictures = {player.diagram.value}
    player.slider.value = 9  # the reply refusing the unknown recipient
    assert player.position == 9
    assert "550 5.1.1" in player.explanation.value
    assert "Bad destination mailbox address" in player.explanation.value
    assert "State after it: rcpt" in player.explanation.value
    pictures.add(player.diagram.value)
    player.slider.value = 12  # the message
    assert "DATA-END — the message content and the final dot" in player.explanation.value
    pictures.add(player.diagram.value)
    assert len(pictures) == 3  # the diagram moved with the slider
    assert player.slider.max == len(player.rows) - 1 == player.play.max
    player.show(999)  # past the end: the last row
    assert player.position == player.slider.max


def test_console_runs_a_transaction_typed_line_by_line() -> None:
    console = Console()
    typed = [
        "EHLO student.example",
        "MAIL FROM:<alice@example.net>",
        "RCPT TO:<bob@example.org>",
        "DATA",
        "Subject: typed by hand",
        "",
        "Hello.",
        ".",
        "QUIT",
    ]
    answers = [console.submit(line) for line in typed]
    # One reply per command; none while the message is typed; one after the dot.
    assert [[r.code for r in replies] for replies in answers] == [
        [250],
        [250],
        [250],
        [354],
        [],
        [],
        [],
        [250],
        [221],
    ]
    assert "S: 221 2.0.0" in console.replies.value
    assert bytes(console.diagram.value).startswith(PNG_MAGIC)
    assert len(console.lab.messages) == 1
    frame = console.transcript
    assert frame.loc[frame["kind"] == "data", "lines"].tolist() == [3]

    # After QUIT the next line opens a new session.
    assert console.submit("NOOP")[0].code == 250
    assert console.transcript["session"].nunique() == 2


def press_enter(box) -> None:
    """What the browser sends when Enter is pressed in a Text box (a custom "submit")."""
    box._handle_string_msg(None, {"event": "submit"}, [])


def test_console_sends_each_line_once_by_enter_or_by_the_button() -> None:
    console = Console()
    assert console.scenario.value == "basic"  # a first try delivers: no greylisting
    console.line.value = "EHLO student.example"  # keystrokes: nothing is sent yet
    assert "C: EHLO" not in console.replies.value
    press_enter(console.line)
    assert console.line.value == ""
    console.line.value = "MAIL FROM:<alice@example.net>"  # typed; then the button, which
    console.send.click()  # takes the focus from the box: the line goes once, no empty line
    history = [line for line in console.history if line.startswith(("C: ", "S: "))]
    assert history == [
        "S: 220 mx.example.org ESMTP smtplab",
        "C: EHLO student.example",
        history[2],  # the EHLO reply, many lines
        "C: MAIL FROM:<alice@example.net>",
        "S: 250 2.1.0 Sender <alice@example.net> OK",
    ]
    assert history[2].startswith("S: 250-mx.example.org")
    assert "500" not in console.replies.value


def test_console_keystrokes_and_scenarios() -> None:
    console = Console("greylisting")
    console.line.value = "EHLO student.example"  # typed, then Enter
    press_enter(console.line)
    assert console.line.value == ""
    assert "C: EHLO student.example" in console.replies.value
    console.submit("MAIL FROM:<alice@example.net>")
    assert console.submit("RCPT TO:<bob@example.org>")[0].code == 451
    console.line.value = "line\nbreak"
    press_enter(console.line)
    assert "(not sent: type one line at a time)" in console.replies.value

    console.send.click()  # the button sends the box as it is: here an empty line
    assert console.replies.value.count("C: ") == 4

    console.scenario.value = "relay-denied"  # a new server, a new session
    assert "S: 220" in console.replies.value
    console.submit("EHLO student.example")
    console.submit("MAIL FROM:<alice@example.net>")
    assert console.submit("RCPT TO:<someone@elsewhere.example>")[0].code == 550
    with pytest.raises(ValueError, match="no scenario 'nope'"):
        Console("nope")


def test_dashboard_filters(capture) -> None:
    dashboard = Dashboard(capture)
    assert "9 of 9 sessions, 61 replies selected" in dashboard.status.value
    picture = dashboard.figure.value

    dashboard.classes.value = "5xx"
    assert "5 of 9 sessions, 5 replies selected" in dashboard.status.value
    assert set(dashboard.filtered().query("kind == 'reply'")["code"]) == {550}
    assert dashboard.figure.value != picture

    dashboard.classes.value = "all"
    dashboard.time.index = (0, 0)  # only the first time step: the first session
    assert dashboard.selected_sessions().index.tolist() == ["smtp-1"]
    dashboard.time.index = (0, len(dashboard.times) - 1)

    assert dashboard.clients.options == ("127.0.0.1",)
    dashboard.clients.value = ()
    assert "0 of 9 sessions" in dashboard.status.value
    assert "no replies selected" not in dashboard.table.value


def test_the_dashboards_plot_and_table_agree_on_each_sessions_outcome(capture) -> None:
    """With "5xx" chosen, only the 550s of the selected sessions are shown; their outcomes
    (the legend's colours) still come from every reply, as the table's do."""
    dashboard = Dashboard(capture)
    dashboard.classes.value = "5xx"
    table = dashboard.selected_sessions()
    assert "delivered" in set(table["outcome"])  # a 550 for one recipient, 250 for another
    over_time = dashboard.last_figure.axes[1]
    legend = {text.get_text() for text in over_time.get_legend().get_texts()}
    assert legend == set(table["outcome"])
    drawn = sum(patch.get_height() for patch in over_time.patches)
    assert drawn == len(table)


def test_dashboard_on_a_transcript_without_times() -> None:
    dashboard = Dashboard(smtplab.read(FIXTURES / "swaks.txt"))
    assert dashboard.time.disabled
    assert "4 of 4 sessions" in dashboard.status.value
    dashboard.classes.value = "5xx"
    assert "2 of 4 sessions" in dashboard.status.value


def test_step_player_explains_a_multi_line_reply() -> None:
    traffic = smtplab.simulate(5)
    player = StepPlayer(traffic, "mx-2")
    player.slider.value = 3  # the EHLO reply: a 250 with the extension keywords after it
    assert "250 — Requested mail action okay, completed" in player.explanation.value
    assert "Further lines: 8BITMIME, CHUNKING" in player.explanation.value
