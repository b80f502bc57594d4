"""Message data: the end of data, transparency, bare CR/LF and limits (RFC 5321 4.1.1.4, 4.5.2)."""

from __future__ import annotations

import pytest

from smtplab.protocol import LineEndings, ServerConfig, dot_stuff
from tests.conftest import EHLO, TRANSACTION, Harness, codes

START = EHLO + TRANSACTION
OPENING = ["250", "250 2.1.0", "250 2.1.5", "354"]


def deliver(content: bytes, endings: str = "reject", **config) -> tuple[list[str], Harness]:
    harness = Harness(ServerConfig(line_endings=LineEndings(endings), **config))
    harness.replies()
    replies = codes(harness.feed(START, content))
    assert replies[:4] == OPENING
    return replies[4:], harness


def test_one_reply_after_the_final_dot_not_one_per_line(harness: Harness) -> None:
    # RFC 5321 4.1.1.4: the server replies once, after <CRLF>.<CRLF>.
    assert codes(harness.feed(START)) == OPENING
    for line in (b"Subject: hello\r\n", b"\r\n", b"line one\r\n", b"line two\r\n"):
        assert harness.feed(line) == [], "no reply may come before the final dot"
    assert codes(harness.feed(b".\r\n")) == ["250 2.0.0"]
    assert harness.store.messages[0].message["Subject"] == "hello"


def test_transparency_leading_dots_are_removed() -> None:
    # RFC 5321 4.5.2: "If the first character is a period ... it is deleted."
    replies, harness = deliver(b"..hidden\r\n...two\r\n.\r\n")
    assert replies == ["250 2.0.0"]
    assert harness.store.messages[0].content.endswith(b"\r\n.hidden\r\n..two\r\n")


def test_empty_message() -> None:
    replies, harness = deliver(b".\r\n")
    assert replies == ["250 2.0.0"]
    assert harness.store.messages[0].message.get_payload() == ""


SMUGGLING = [
    # The end-of-data look-alikes of the 2023 SMTP smuggling research (CVE-2023-51764).
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\r\n.\n",
    b"\r.\n",
    b"\n.\r",
]


@pytest.mark.parametrize("endings", ["reject", "normalize", "keep"])
@pytest.mark.parametrize("fake_end", SMUGGLING, ids=[repr(s) for s in SMUGGLING])
def test_smuggling_sequences_never_end_the_data(fake_end: bytes, endings: str) -> None:
    # RFC 5321 4.1.1.4 / 2.3.8: only <CRLF>.<CRLF> ends the data, whatever the setting.
    smuggled = b"MAIL FROM:<evil@example.net>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n"
    content = b"Subject: real\r\n\r\nhi" + fake_end + smuggled + b"Subject: fake\r\n\r\nx"
    harness = Harness(ServerConfig(line_endings=LineEndings(endings)))
    harness.replies()
    assert codes(harness.feed(START, content)) == OPENING, "nothing may end the data early"
    replies = codes(harness.feed(b"\r\n.\r\n"))
    assert len(replies) == 1, "exactly one reply: there is no second message"
    if endings == "reject":
        assert replies == ["554 5.6.0"]
        assert harness.store.messages == []
    else:
        assert replies == ["250 2.0.0"]
        assert len(harness.store.messages) == 1
        assert harness.store.messages[0].recipients == ("bob@example.org",)


def test_reject_keeps_the_session_usable() -> None:
    replies, harness = deliver(b"a\nb\r\n.\r\n")
    assert replies == ["554 5.6.0"]
    assert codes(harness.feed(TRANSACTION, b"clean\r\n.\r\n")) == [*OPENING[1:], "250 2.0.0"]
    assert len(harness.store.messages) == 1


def test_normalize_turns_bare_line_ends_into_crlf() -> None:
    replies, harness = deliver(b"a\nb\rc\r\n.\r\n", "normalize")
    assert replies == ["250 2.0.0"]
    assert harness.store.messages[0].content.endswith(b"\r\na\r\nb\r\nc\r\n")


def test_keep_stores_bare_line_ends_as_content() -> None:
    replies, harness = deliver(b"a\nb\rc\r\n.\r\n", "keep")
    assert replies == ["250 2.0.0"]
    assert harness.store.messages[0].content.endswith(b"\r\na\nb\rc\r\n")


def test_overlong_text_line_is_answered_after_the_dot() -> None:
    # RFC 5321 4.5.3.1.6: 1000 octets with CRLF; the server may answer after the final dot.
    replies, harness = deliver(b"x" * 998 + b"\r\n.\r\n")
    assert replies == ["250 2.0.0"]
    replies, harness = deliver(b"x" * 999 + b"\r\n.\r\n")
    assert replies == ["500 5.5.2"]
    assert harness.store.messages == []


def test_dot_not_counted_in_line_length() -> None:
    # 4.5.3.1.6: "not counting the leading dot duplicated for transparency".
    replies, _ = deliver(b"." + b"." * 998 + b"\r\n.\r\n")
    assert replies == ["250 2.0.0"]


def test_overlong_line_split_across_chunks_uses_bounded_memory(harness: Harness) -> None:
    harness.feed(START)
    for _ in range(200):
        harness.feed(b"y" * 5000)
        assert len(harness.server.conn._in.data) < 2100  # never the whole line
    assert codes(harness.feed(b"\r\n.\r\n")) == ["500 5.5.2"]


def test_message_over_the_size_limit() -> None:
    # RFC 1870: 552 5.3.4 when the message exceeds the fixed limit.
    replies, harness = deliver(b"z" * 500 + b"\r\n" + b".\r\n", max_message_size=100)
    assert replies == ["552 5.3.4"]
    assert harness.store.messages == []


def test_client_closing_mid_data_stores_nothing(harness: Harness) -> None:
    harness.feed(START, b"Subject: cut\r\n\r\nhalf a mess")
    harness.server.receive(b"")
    assert harness.store.messages == []
    assert harness.recorder.rows[-1].kind == "close"
    assert "partial message was discarded" in harness.recorder.rows[-1].text


@pytest.mark.parametrize(
    ("content", "wire"),
    [
        (b"hello", b"hello\r\n.\r\n"),
        (b"hello\n", b"hello\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\r\n..b\r\n", b"a\r\n...b\r\n.\r\n"),
        (b"", b".\r\n"),
        (b"a\rb", b"a\r\nb\r\n.\r\n"),
    ],
)
def test_dot_stuff(content: bytes, wire: bytes) -> None:
    # RFC 5321 4.5.2: the client doubles a leading dot and ends with <CRLF>.<CRLF>.
    assert dot_stuff(content) == wire


def test_normalize_counts_line_length_per_normalized_line() -> None:
    # Under normalize a bare LF ends a line, so LF-only text is not one overlong line.
    content = b"".join(b"line %02d of an LF-only message\n" % i for i in range(60))
    replies, harness = deliver(content + b"\r\n.\r\n", "normalize")
    assert replies == ["250 2.0.0"]
    assert harness.store.messages[0].content.count(b"\r\n") >= 60
    replies, harness = deliver(content + b"x" * 1200 + b"\n\r\n.\r\n", "normalize")
    assert replies == ["500 5.5.2"]


def test_normalize_partial_lines_stay_bounded() -> None:
    harness = Harness(ServerConfig(line_endings=LineEndings.NORMALIZE, max_message_size=50_000))
    harness.replies()
    harness.feed(START)
    for _ in range(100):
        harness.feed(b"short line\n" * 100)
        assert len(harness.server.conn._in.data) < 60_000
    assert codes(harness.feed(b"\r\n.\r\n")) == ["552 5.3.4"]
