"""``messages()``: one row per message, checked against what the producers logged.

Each test reads the producer's own per-message records with plain searches of the fixture
(Postfix's ``status=`` lines, Exim's ``=>``/``->``/``**``/``==`` lines), independently of the
readers, and compares them with ``messages()``' per-recipient final status. The Postfix hop
fixtures (``tests/fixtures/record_postfix_hops.py``: a content filter's hand-off and a relay to
a second host, both private Postfix instances) check that a message is followed across
``queued as`` hand-offs and hosts.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import smtplab
from smtplab.analysis import bounce_class, messages, transactions
from smtplab.analysis.hops import _seconds

FIXTURES = Path(__file__).parents[1] / "fixtures"
MX1, MX2 = FIXTURES / "postfix-hops-mx1.log", FIXTURES / "postfix-hops-mx2.log"
POSTFIX_DELIVERY = re.compile(
    r"postfix/\w+\[\d+\]: (?P<queue>[0-9A-F]+): to=<(?P<recipient>[^>]*)>, .*?"
    r"delay=(?P<delay>[\d.]+), .*status=(?P<status>\w+) \((?P<reply>.*)\)$",
    re.MULTILINE,
)


def postfix_final_statuses(*logs: Path) -> dict[tuple[str, str], tuple[str, float, str]]:
    """(queue id, recipient) -> (last status, its delay=, its reply), as Postfix logged them."""
    final = {}
    for log in logs:
        for line in POSTFIX_DELIVERY.finditer(log.read_text()):
            final[(line["queue"], line["recipient"])] = (
                line["status"],
                float(line["delay"]),
                line["reply"],
            )
    return final


def by_recipient(table: pd.DataFrame) -> dict[tuple[str, str], str]:
    return {(m, r): s for m, r, s in table[["message", "recipient", "status"]].itertuples(False)}


def test_postfix_final_statuses_are_the_ones_postfix_logged() -> None:
    logged = postfix_final_statuses(FIXTURES / "postfix.log")
    table = messages(smtplab.read(FIXTURES / "postfix.log", year=2026), recipients=True)
    assert by_recipient(table) == {key: status for key, (status, *_) in logged.items()}
    assert len(logged) == 7 and table["relay"].eq("local").all()
    delays = {(m, r): d for m, r, d in table[["message", "recipient", "delay"]].itertuples(False)}
    assert delays == {key: delay for key, (_, delay, _) in logged.items()}
    per_message = messages(smtplab.read(FIXTURES / "postfix.log", year=2026))
    queued = re.findall(r"(\w+): client=", (FIXTURES / "postfix.log").read_text())
    assert per_message["message"].tolist() == queued  # in the order they were received
    assert per_message["outcome"].eq("delivered").all()
    assert per_message["sender"].eq("alice@example.net").all()


def followed(logs: list[Path]) -> dict[tuple[str, str], tuple[str, list[str]]]:
    """(first queue id, recipient) -> (final status, the queue ids it went through), following
    ``queued as`` from the messages Postfix received from a client (not from its own content
    filter or another host of the logs), found with plain searches."""
    text = "".join(log.read_text() for log in logs)
    handed: dict[tuple[str, str], str] = {}
    for line in POSTFIX_DELIVERY.finditer(text):
        next_id = re.search(r"queued as (\w+)", line["reply"])
        if line["status"] == "sent" and next_id:
            handed[(line["queue"], line["recipient"])] = next_id[1]
    final = postfix_final_statuses(*logs)
    taken_in = set(handed.values())
    firsts = [queue for queue in re.findall(r"(\w+): client=", text) if queue not in taken_in]
    firsts += re.findall(r"notification: (\w+)$", text, re.MULTILINE)  # Postfix's own bounces
    out = {}
    for first in firsts:
        for queue, recipient in final:
            if queue != first:
                continue
            path = [queue]
            while (path[-1], recipient) in handed and (
                handed[path[-1], recipient],
                recipient,
            ) in final:
                path.append(handed[path[-1], recipient])
            out[(first, recipient)] = (final[(path[-1], recipient)][0], path)
    return out


def test_a_message_is_followed_through_a_content_filter_and_to_another_host() -> None:
    frame = smtplab.read([MX1, MX2], year=2026)
    table = messages(frame, recipients=True)
    expected = followed([MX1, MX2])
    got = {(m, r): (s, h) for m, r, s, h in
           table[["message", "recipient", "status", "hops"]].itertuples(False)}  # fmt: skip
    assert got == expected
    # Through the filter and on to mx2, whose own log says it delivered to the mailbox:
    relayed = table[table["recipient"] == "root@mx2.example"].iloc[0]
    assert len(relayed["hops"]) == 3 and relayed["relay"] == "local"
    assert relayed["hops"][-1] in MX2.read_text()
    # Read without mx2's log, the same recipient ends where mx1 handed it on:
    alone = messages(smtplab.read(MX1, year=2026), recipients=True)
    relayed_alone = alone[alone["recipient"] == "root@mx2.example"].iloc[0]
    assert len(relayed_alone["hops"]) == 2 and relayed_alone["relay"].startswith("127.0.0.1[")
    assert relayed_alone["reply"].endswith(f"queued as {relayed['hops'][-1]}")


def test_a_retried_recipient_counts_its_delay_once_at_its_final_status() -> None:
    table = messages(smtplab.read([MX1, MX2], year=2026), recipients=True)
    later = table[table["recipient"] == "someone@later.example"].iloc[0]
    attempts = re.findall(r"to=<someone@later\.example>, .*?delay=([\d.]+), .*status=(\w+)",
                          MX1.read_text())  # fmt: skip
    assert [status for _, status in attempts] == ["sent", "deferred", "sent"]  # filter, then 2
    # The filter hop's delay plus the last attempt's (which runs from the message's arrival
    # in that queue, so it holds the wait after the deferral): the deferral's is not added.
    assert later["delay"] == pytest.approx(float(attempts[0][0]) + float(attempts[2][0]))
    assert later["attempts"] == 2 and later["status"] == "sent"


def test_bounces_are_classed_from_their_reply() -> None:
    table = messages(smtplab.read([MX1, MX2], year=2026), recipients=True)
    classes = dict(zip(table["recipient"], table["bounce_class"].astype(object), strict=True))
    assert classes["no-such-user@mx2.example"] == "recipient"  # 550 5.1.1 user unknown
    assert classes["blocked@mx2.example"] == "policy"  # 554 5.7.1 ... listed in a blocklist
    assert pd.isna(classes["root@localhost"])  # sent: no class
    refused = messages(smtplab.read([MX1, MX2], year=2026))
    refused = refused[refused["recipients"].map(lambda r: "blocked@mx2.example" in r)].iloc[0]
    assert refused["outcome"] == "bounced" and refused["status"] == {
        "blocked@mx2.example": "bounced",
        "no-such-user@mx2.example": "bounced",
    }


@pytest.mark.parametrize(
    ("code", "enhanced", "text", "expected"),
    [
        (550, "5.1.1", "<x@example.org>: Recipient address rejected: User unknown", "recipient"),
        (552, "5.2.2", "mailbox full", "recipient"),
        (550, None, "no such user here", "recipient"),
        (554, "5.7.1", "Service unavailable; client host blocked using zen.spamhaus.org", "policy"),
        (550, None, "Your IP is listed at bl.example", "policy"),
        (554, None, "Transaction failed", "policy"),
        (450, "4.7.1", "greylisted, try again later", "policy"),
        (None, "4.4.1", "connect to mx.example[192.0.2.1]:25: Connection timed out",
         "infrastructure"),
        (421, None, "mx.example Service not available, closing channel", "infrastructure"),
        (None, None, "Connection refused", "infrastructure"),
        (None, None, "something else", "other"),
    ],
)  # fmt: skip
def test_bounce_classes(code, enhanced, text, expected) -> None:
    got = bounce_class(pd.Series([code], dtype="Int16"), pd.Series([enhanced]), pd.Series([text]))
    assert list(got) == [expected]


EXIM_LINE = re.compile(
    r"^\S+ \S+ (?:\[\d+\] )?(?P<id>\w{6}-\w{6,11}-\w{2,4}) (?P<event>=>|->|\*\*|==) "
    r"(?P<first>\S+)(?: <(?P<original>[^>]+)>)?",
    re.MULTILINE,
)
EXIM_STATUS = {"=>": "sent", "->": "sent", "**": "bounced", "==": "deferred"}


@pytest.mark.parametrize("log", ["exim-mainlog-all.log", "exim-mainlog.log"])
def test_exim_final_statuses_are_the_ones_exim_logged(log: str) -> None:
    logged = {}
    for line in EXIM_LINE.finditer((FIXTURES / log).read_text()):
        recipient = line["original"] or line["first"]
        logged[(line["id"], recipient)] = EXIM_STATUS[line["event"]]
    table = messages(smtplab.read(FIXTURES / log), recipients=True)
    assert by_recipient(table) == logged and len(logged) == 12
    if log == "exim-mainlog-all.log":  # +all logs QT= (time in the queue) at each delivery
        sent = table[table["status"] == "sent"]
        qt = re.findall(r" (?:=>|->) .* QT=([\d.]+)s", (FIXTURES / log).read_text())
        assert sorted(sent["delay"]) == sorted(float(value) for value in qt)


def test_live_sessions_give_one_message_per_delivered_transaction() -> None:
    traffic = smtplab.simulate(60)
    table = messages(traffic)
    delivered = transactions(traffic)
    delivered = delivered[delivered["outcome"] == "delivered"]
    assert len(table) == len(delivered) > 0
    queued = delivered["text"].str.extract(r"queued as (\S+)", expand=False)
    assert sorted(table["message"]) == sorted(queued)
    assert table["outcome"].eq("delivered").all()
    assert [sorted(r) for r in table["recipients"]] == [
        sorted(r) for r in delivered.sort_values("start", kind="stable")["recipients"]
    ]


def test_a_capture_and_the_servers_log_give_one_message_each_followed_into_the_log() -> None:
    frame = smtplab.read([FIXTURES / "smtp.pcapng", FIXTURES / "postfix.log"], year=2026)
    table = messages(frame)
    log = (FIXTURES / "postfix.log").read_text()
    # Each message Postfix queued is listed once: from the capture where the capture saw its
    # "queued as" (not inside TLS), else from the log alone.
    ids = re.findall(r"(\w+): client=", log)
    postfix_messages = table[table["message"].isin(ids)]
    assert sorted(postfix_messages["message"]) == sorted(ids)
    from_capture = postfix_messages[postfix_messages["source"] == "pcap"]
    assert (
        len(from_capture) == 5
        and from_capture["relay"].map(lambda r: set(r.values())).eq({"local"}).all()
    )


def test_delays_are_drawn(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from smtplab.viz import plot_delivery_delays

    frame = smtplab.read([MX1, MX2], year=2026)
    ax = plot_delivery_delays(frame)
    table = messages(frame)
    assert ax.get_xlabel().startswith("delivery delay")
    median = np.nanmedian(table["delay"].to_numpy(dtype=float))
    assert any(np.allclose(line.get_xdata(), median) for line in ax.get_lines())
    again = plot_delivery_delays(table)  # a messages() table draws the same
    assert [p.get_height() for p in again.patches] == [p.get_height() for p in ax.patches]
    ax.figure.savefig(tmp_path / "delays.png")


def test_a_dask_frame_gives_the_pandas_answer(tmp_path) -> None:
    pytest.importorskip("dask.dataframe")
    import dask

    inputs = [MX1, MX2, FIXTURES / "exim-mainlog-all.log", FIXTURES / "smtp.pcapng"]
    smtplab.write_dataset(inputs, tmp_path / "ds", year=2026, batch_rows=60)
    with dask.config.set(scheduler="synchronous"):
        lazy = smtplab.dask_dataset(tmp_path / "ds")
        assert lazy.npartitions > 1
        on_dask = messages(lazy)
    in_memory = messages(smtplab.read_dataset(tmp_path / "ds"))
    assert len(in_memory) > 10
    pd.testing.assert_frame_equal(on_dask, in_memory)


def test_a_message_refused_after_its_data_is_no_message() -> None:
    # Postfix gave it a queue id (client=), then refused it at END-OF-MESSAGE (552 5.3.4): the
    # queue file is removed, nothing is delivered. A queue id whose session the log leaves
    # open stays, "queued": the log says no more of it.
    log = FIXTURES / "postfix-refusals.log"
    refused = re.findall(r"(\w+): reject: END-OF-MESSAGE", log.read_text())
    table = messages(smtplab.read(log, year=2026))
    assert len(refused) == 2 and not set(refused) & set(table["message"])
    assert table["outcome"].tolist() == ["queued"]


RECORDED = Path(__file__).parents[1] / "fixtures" / "analysis.pickle.gz"


def test_frames_of_every_kind_shuffled_or_not_and_older_notes() -> None:
    import gzip
    import pickle

    with gzip.open(RECORDED, "rb") as recorded:
        frames = pickle.load(recorded)["frames"]
    # Recorded before delivery notes kept Postfix's whole line ("ID: to=<a> status=sent (...)"):
    # such notes (in a dataset written then) are read too.
    older = messages(frames["postfix.log"])
    assert len(older) == 7 and older["outcome"].eq("delivered").all()
    pd.testing.assert_frame_equal(messages(frames["mixed, shuffled"]), messages(frames["mixed"]))
    nothing = frames["mixed"].iloc[:0]
    assert messages(nothing).empty and messages(nothing, recipients=True).empty
    assert list(messages(nothing).columns) == list(messages(frames["mixed"]).columns)


def test_exims_times_are_read_in_seconds() -> None:
    lines = pd.Series(["=> a QT=1m2s DT=0.004s", "== b DT=1h2m3s", "** c QT=2d", "-> d"])
    assert _seconds(lines, "QT").tolist()[:3] == [62.0, pytest.approx(float("nan"), nan_ok=True),
                                                 2 * 86400.0]  # fmt: skip
    assert _seconds(lines, "DT").tolist()[:2] == [0.004, 3723.0]
    assert _seconds(lines, "DT").isna().tolist() == [False, False, True, True]


def test_the_work_grows_with_the_messages_and_no_faster() -> None:
    """Each message's lists and dicts are built in Python, one pass over its recipients' rows:
    the Python lines run grow with the recipients, never with recipients times messages
    (counted, as tests/analysis/test_linear.py counts them; no timing)."""
    import gzip
    import pickle

    from tests.analysis.test_linear import lines_run

    with gzip.open(RECORDED, "rb") as recorded:
        mixed = pickle.load(recorded)["frames"]["mixed"]
    messages(mixed)  # once before counting: first-use work
    counted = {}
    for copies in (1, 4, 16):
        frame = smtplab.concat([mixed] * copies)
        rows = int(messages(frame)["recipients"].map(len).sum())
        counted[copies] = (rows, lines_run(messages, frame)["smtplab"])
    (rows_1, lines_1), (rows_4, lines_4), (rows_16, lines_16) = counted.values()
    assert rows_16 > 10 * rows_1
    per_row_early = (lines_4 - lines_1) / (rows_4 - rows_1)
    per_row_late = (lines_16 - lines_4) / (rows_16 - rows_4)
    assert per_row_late < 100 and per_row_late < 1.5 * per_row_early, counted


def test_a_recipient_rewritten_at_the_next_hop_ends_its_chain_there(tmp_path) -> None:
    # As if mx2 had an alias root -> admin: its delivery line names the new address (to=) and
    # the old one (orig_to=). The chain is followed by address, so it ends at mx1's hand-off,
    # and mx2's queue id shows as a message of its own; nothing is lost.
    text = MX2.read_text()
    aliased = text.replace(
        "E441423EA5B: to=<root@mx2.example>,",
        "E441423EA5B: to=<admin@mx2.example>, orig_to=<root@mx2.example>,",
    )
    assert aliased != text
    (tmp_path / "mx2.log").write_text(aliased)
    table = messages(smtplab.read([MX1, tmp_path / "mx2.log"], year=2026))
    first = table[table["message"] == "D555323EA57"].iloc[0]
    assert first["status"] == {"root@localhost": "sent", "root@mx2.example": "sent"}
    assert first["relay"]["root@mx2.example"].startswith("127.0.0.1[")  # handed to mx2
    second = table[table["message"] == "E441423EA5B"].iloc[0]
    assert (
        second["status"] == {"admin@mx2.example": "sent"} and second["session"] != first["session"]
    )
