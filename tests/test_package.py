"""The package's edges: the sans-IO core imports with the standard library alone, and every
public name of ``smtplab`` is there on first use (the package ``__init__`` is lazy, PEP 562)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import smtplab

# What the protocol core must not pull in: the notebook stack and the I/O layers.
HEAVY = ("pandas", "numpy", "tqdm", "matplotlib", "ipywidgets", "asyncio", "ssl", "socket")

CORE_WITHOUT_PANDAS = textwrap.dedent(
    f"""
    import sys
    for name in ("pandas", "numpy"):
        sys.modules[name] = None  # importing them now raises ImportError

    from smtplab.protocol import ClientConnection, ServerConnection, Reply
    from smtplab.protocol.events import Hello, ReplyReceived

    server, client = ServerConnection(), ClientConnection()
    server.send(Reply(220, "mx.example.org ESMTP"))
    client.receive_data(server.data_to_send())
    greeting = client.next_event()
    client.ehlo("client.example.net")
    server.receive_data(client.data_to_send())
    hello = server.next_event()
    server.send(Reply(250, "mx.example.org\\nPIPELINING"))
    client.receive_data(server.data_to_send())
    answer = client.next_event()
    assert isinstance(greeting, ReplyReceived) and greeting.reply.code == 220
    assert isinstance(hello, Hello) and hello.domain == "client.example.net"
    assert isinstance(answer, ReplyReceived) and "PIPELINING" in client.extensions
    from smtplab.protocol.observer import Observer

    observer = Observer(keep=100)
    assert [e.verb for e in observer.client_data(b"EHLO client.example.net\\r\\n")] == ["EHLO"]
    print(" ".join(sorted(name for name in {HEAVY!r} if sys.modules.get(name) is not None)))
    """
)


def test_the_protocol_core_runs_a_session_with_the_standard_library_alone() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CORE_WITHOUT_PANDAS], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [], f"the core imported {result.stdout.strip()}"


def test_every_public_name_is_there_on_first_use() -> None:
    for name in smtplab.__all__:
        assert getattr(smtplab, name) is not None, name
    assert set(smtplab.__all__) <= set(dir(smtplab))
    assert smtplab.Lab.__module__ == "smtplab.teaching.lab"


def test_subpackages_load_on_attribute_access_and_unknown_names_say_so() -> None:
    assert smtplab.viz.__name__ == "smtplab.viz"
    assert callable(smtplab.conformance.probe_names)
    try:
        smtplab.no_such_thing  # noqa: B018
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
