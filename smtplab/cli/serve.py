"""``smtplab serve``: a TCP server in the foreground until SIGINT or SIGTERM.

It serves the lab's default server, or a teaching scenario's server settings, and stores
messages in memory (the last ``--keep-messages``) or a Maildir. With ``--transcript`` the rows
of each finished session are appended to the file (.csv or .parquet) in batches as sessions
end, and the rest at stop, so nothing written is held in memory; the server itself keeps only
the last ``--keep-sessions`` sessions. On stop it says how many sessions it saw and which
messages this run stored (never reading a Maildir back).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from smtplab.log.stream import TranscriptWriter
from smtplab.server.maildir import MaildirStore
from smtplab.server.store import MemoryStore, Store
from smtplab.transport.tcp_server import TcpServer


def build_server(
    host: str,
    port: int,
    scenario: str | None = None,
    maildir: str | Path | None = None,
    keep_messages: int = 1000,
    **options: Any,
) -> TcpServer:
    """A TcpServer with a scenario's policy and config (or the defaults) and a store: a
    Maildir, or memory keeping the last ``keep_messages`` messages."""
    settings: dict[str, Any] = {}
    if scenario is not None:
        from smtplab.teaching.scenarios import scenario as find_scenario

        settings = find_scenario(scenario).settings()
    if keep_messages < 0:
        raise ValueError("--keep-messages must be 0 or more")
    store: Store = MaildirStore(maildir) if maildir is not None else MemoryStore(keep_messages)
    config = settings.get("config")
    if settings.get("line_endings") is not None:
        raise ValueError("scenarios that change line endings cannot be served yet")
    return TcpServer(settings.get("policy"), config, store=store, host=host, port=port, **options)


async def serve(
    server: TcpServer, transcript: TranscriptWriter | None = None, grace: float = 5.0
) -> int:
    """Run ``server`` until SIGINT/SIGTERM, each finished session's rows going to
    ``transcript`` as it ends; then close it. Returns an exit code.

    A second signal while stopping cuts the grace period short.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        if not stop.is_set():
            stop.set()
        elif stopping:
            print("smtplab: stopping now", flush=True)
            stopping[0].cancel()

    if transcript is not None:
        server.on_session_end = lambda recorder: transcript.add(recorder.tuples)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        await server.start()
    except OSError as error:  # the port is taken, or not ours to bind
        print(f"smtplab serve: cannot listen on {server.address}: {error}", file=sys.stderr)
        return 1
    print(
        f"smtplab: listening on {server.host}:{server.port} "
        f"(policy {type(server.policy).__name__}); Ctrl-C or SIGTERM to stop",
        flush=True,
    )
    await stop.wait()
    print(f"smtplab: stopping: open transactions get up to {grace:g} s", flush=True)
    stopping.append(asyncio.create_task(server.stop(grace)))
    try:
        await stopping[0]
    except asyncio.CancelledError:
        await server.stop(0)  # the second signal: 421 to everyone, now
    print(f"smtplab: {server.sessions} sessions, {stored_report(server.store)}", flush=True)
    if transcript is None:
        return 0
    transcript.close()
    if transcript.error is not None:
        print(
            f"smtplab serve: could not write the transcript {transcript.path}: "
            f"{transcript.error} ({transcript.rows_lost} rows not written)",
            file=sys.stderr,
        )
        return 1
    print(
        f"smtplab: transcript written to {transcript.path} ({transcript.rows_written} rows)",
        flush=True,
    )
    return 0


def stored_report(store: Store) -> str:
    """``N messages stored`` by this run, with their ids (the last few of many)."""
    count, ids = store.delivered, list(store.recent_ids)
    if not count:
        return "0 messages stored"
    if count > len(ids):
        return f"{count} messages stored (the last {len(ids)}: {', '.join(ids)})"
    return f"{count} messages stored: {', '.join(ids)}"


def main(args: Any) -> int:
    """The ``serve`` subcommand (arguments from :mod:`smtplab.cli.commands`)."""
    try:
        server = build_server(
            args.host,
            args.port,
            args.scenario,
            args.maildir,
            keep_messages=args.keep_messages,
            idle_timeout=args.idle_timeout,
            data_timeout=args.data_timeout,
            max_sessions=args.max_sessions,
            max_sessions_per_client=args.max_sessions_per_client,
            command_limit=args.max_commands,
            tls=args.tls,
            keep_sessions=args.keep_sessions,
        )
        transcript = None
        if args.transcript:
            transcript = TranscriptWriter(args.transcript, batch_rows=args.transcript_batch)
    except OSError as error:  # e.g. --maildir names a file
        print(f"smtplab serve: {error}", file=sys.stderr)
        return 2
    except (ValueError, KeyError) as error:
        print(f"smtplab serve: {error.args[0] if error.args else error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(server, transcript))
    finally:
        if transcript is not None:
            transcript.close()  # also when serving failed: the file is left readable
