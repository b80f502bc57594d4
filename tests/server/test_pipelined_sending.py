"""smtplab's client sending with PIPELINING (RFC 2920) and CHUNKING (RFC 3030), in-process."""

from __future__ import annotations

import pytest

import smtplab
from smtplab.protocol import LocalProtocolError, ServerConfig
from smtplab.server import Fault, Faults, Mailboxes

SENDER = "alice@example.net"
RECIPIENTS = ["bob@example.org", "nobody@example.org", "carol@example.org"]
MESSAGE = b"Subject: groups\r\n\r\n.a line with a dot\r\n" + b"filler line\r\n" * 30


def _commands(result: smtplab.SendResult):
    return result.transcript.query("kind == 'command'")


def test_a_pipelined_transaction_is_one_group_ending_with_data() -> None:
    lab = smtplab.Lab()
    result = lab.send(SENDER, RECIPIENTS, message=MESSAGE, pipelining=True)
    assert result.pipelined and not result.chunked
    assert result.accepted == ["bob@example.org", "carol@example.org"]
    assert result.refused["nobody@example.org"].code == 550
    commands = _commands(result).set_index("verb", append=True)["time"]
    group = commands.xs("MAIL", level=1).tolist() + commands.xs("RCPT", level=1).tolist()
    group += commands.xs("DATA", level=1).tolist()
    assert len(set(group)) == 1, "MAIL, every RCPT and DATA left in one write"
    replies = result.transcript.query("kind == 'reply'")
    assert replies["code"].tolist() == [220, 250, 250, 250, 550, 250, 354, 250, 221]
    assert lab.messages[0].content.endswith(MESSAGE)


def test_chunks_are_pipelined_with_the_envelope_and_arrive_byte_for_byte() -> None:
    plain, chunked = smtplab.Lab(), smtplab.Lab()
    plain.send(SENDER, RECIPIENTS, message=MESSAGE)
    result = chunked.send(
        SENDER, RECIPIENTS, message=MESSAGE, pipelining=True, chunk_size=100, chunking=True
    )
    assert result.pipelined and result.chunked and result.delivered
    bdat = _commands(result).query("verb == 'BDAT'")
    sizes = [100] * (len(MESSAGE) // 100) + [len(MESSAGE) % 100]
    assert bdat["size"].tolist() == sizes
    assert bdat["argument"].tolist()[-1] == f"{sizes[-1]} LAST"
    assert bdat["time"].nunique() == 1  # sent in the same group as MAIL and RCPT
    # DATA with dot-stuffing and BDAT without it deliver the very same message.
    assert plain.messages[0].content.endswith(MESSAGE)
    assert chunked.messages[0].content.endswith(MESSAGE)


def test_chunking_without_pipelining_waits_for_each_chunk() -> None:
    lab = smtplab.Lab()
    result = lab.send(SENDER, "bob@example.org", message=MESSAGE, chunking=True, chunk_size=200)
    assert result.chunked and not result.pipelined and result.delivered
    assert _commands(result)["time"].is_monotonic_increasing
    assert _commands(result)["time"].nunique() == len(_commands(result))
    assert [verb for verb, _ in result.replies].count("BDAT") == 3


def test_a_server_without_the_extensions_gets_plain_smtp() -> None:
    config = ServerConfig(extensions=frozenset({"ENHANCEDSTATUSCODES", "8BITMIME"}))
    lab = smtplab.Lab(config=config)
    result = lab.send(SENDER, RECIPIENTS, message=MESSAGE, pipelining=True, chunking=True)
    assert result.delivered and not result.pipelined and not result.chunked
    verbs = _commands(result)["verb"].tolist()
    assert "DATA" in verbs and "BDAT" not in verbs
    assert _commands(result)["time"].nunique() == len(verbs), "one command at a time"


@pytest.mark.parametrize("chunking", [False, True])
def test_every_recipient_refused_in_a_group_delivers_nothing(chunking: bool) -> None:
    lab = smtplab.Lab()
    result = lab.send(
        SENDER, ["x@example.org", "y@example.org"], pipelining=True, chunking=chunking
    )
    assert not result.delivered and lab.messages == []
    assert {reply.code for reply in result.refused.values()} == {550}
    last = result.transcript.query("kind == 'reply'")["code"].tolist()[-2:]
    assert last == [554, 221]  # DATA or BDAT refused: no valid recipients; then QUIT


def test_a_refused_mail_in_a_group_refuses_everything_after_it() -> None:
    lab = smtplab.Lab(Faults(Mailboxes(), [Fault.reply("MAIL", 451, "Try later", "4.3.0")]))
    result = lab.send(SENDER, RECIPIENTS[:1], pipelining=True, chunking=True)
    assert not result.delivered
    assert result.refused["bob@example.org"].code == 451
    codes = result.transcript.query("kind == 'reply'")["code"].tolist()
    assert codes == [220, 250, 451, 503, 503, 221]  # RCPT and BDAT: no transaction


def test_a_transient_chunk_failure_is_retried_in_a_new_session() -> None:
    faults = [Fault.reply("BDAT", 452, "Insufficient storage", "4.3.1", times=1)]
    lab = smtplab.Lab(Faults(Mailboxes(), faults))
    result = lab.send(
        SENDER,
        "bob@example.org",
        message=MESSAGE,
        pipelining=True,
        chunking=True,
        chunk_size=300,
        retries=1,
    )
    assert result.delivered and result.attempts == 2
    first = result.transcript.query("session == @result.sessions[0] and kind == 'reply'")
    assert first["code"].tolist()[-3:] == [452, 503, 221]  # the rest of the chunks refused
    assert len(lab.messages) == 1 and lab.messages[0].content.endswith(MESSAGE)


def test_redirects_are_followed_before_the_message_is_sent() -> None:
    policy = Mailboxes(
        domains=["example.org", "new.example"],
        mailboxes=["bob", "erin@new.example"],
        moved={"erin@example.org": "erin@new.example"},
    )
    lab = smtplab.Lab(policy)
    result = lab.send(
        SENDER, ["bob@example.org", "erin@example.org"], pipelining=True, follow_redirects=True
    )
    assert result.accepted == ["bob@example.org", "erin@new.example"]
    assert lab.messages[0].recipients == ("bob@example.org", "erin@new.example")


def test_the_pipeline_api_checks_rfc_2920_and_sends_nothing_of_a_bad_group() -> None:
    lab = smtplab.Lab()
    session = lab.connect()
    session.ehlo()
    group = session.pipeline().mail(SENDER).rcpt("bob@example.org").noop()
    with pytest.raises(LocalProtocolError, match="last command of a pipelined group"):
        group.rset()  # nothing may follow NOOP in a group (RFC 2920 3.1)
    assert session.conn.data_to_send() == b"" and session.conn.waiting == ()
    replies = session.pipeline().mail(SENDER).rcpt("bob@example.org").rcpt("x@example.org").send()
    assert [reply.code for reply in replies] == [250, 250, 550]
    assert session.bdat("Subject: x\r\n\r\nhi\r\n", last=True).code == 250
    assert session.quit().code == 221


def test_the_pipeline_api_needs_pipelining_offered() -> None:
    lab = smtplab.Lab(config=ServerConfig(extensions=frozenset({"CHUNKING"})))
    session = lab.connect()
    session.ehlo()
    with pytest.raises(LocalProtocolError, match="did not advertise PIPELINING"):
        session.pipeline().mail(SENDER).rcpt("bob@example.org")
    assert session.mail(SENDER).code == 250  # the refused group left nothing behind
