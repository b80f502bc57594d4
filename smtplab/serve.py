"""``smtplab serve``: a TCP server in the foreground until SIGINT or SIGTERM.

It serves the lab's default server, or a teaching scenario's server settings, stores messages in
memory or a Maildir, and on stop writes the transcript (.csv or .parquet) and says how many
sessions it saw and messages it stored.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from smtplab.log.frame import check_table_path, write_table
from smtplab.server.maildir import MaildirStore
from smtplab.server.store import MemoryStore, Store
from smtplab.transport.tcp import TcpServer


def build_server(
    host: str,
    port: int,
    scenario: str | None = None,
    maildir: str | Path | None = None,
    **options: Any,
) -> TcpServer:
    """A TcpServer with a scenario's policy and config (or the defaults) and a store."""
    settings: dict[str, Any] = {}
    if scenario is not None:
        from smtplab.scenarios import scenario as find_scenario

        settings = find_scenario(scenario).settings()
    store: Store = MaildirStore(maildir) if maildir is not None else MemoryStore()
    config = settings.get("config")
    if settings.get("line_endings") is not None:
        raise ValueError("scenarios that change line endings cannot be served yet")
    return TcpServer(settings.get("policy"), config, store=store, host=host, port=port, **options)


async def serve(server: TcpServer, transcript: Path | None = None, grace: float = 5.0) -> int:
    """Run ``server`` until SIGINT/SIGTERM; then write ``transcript``. Returns an exit code.

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
    frame = server.transcript()
    sessions = frame["session"].nunique() if len(frame) else 0
    stored = len(server.store.messages)
    print(f"smtplab: {sessions} sessions, {stored} messages stored", flush=True)
    if transcript is None:
        return 0
    try:
        write_table(frame, transcript)
    except (OSError, ValueError) as error:
        print(f"smtplab serve: could not write the transcript: {error}", file=sys.stderr)
        return 1
    print(f"smtplab: transcript written to {transcript} ({len(frame)} rows)", flush=True)
    return 0


def main(args: Any) -> int:
    """The ``serve`` subcommand (arguments from :mod:`smtplab.cli`)."""
    try:
        transcript = check_table_path(args.transcript) if args.transcript else None
        server = build_server(
            args.host,
            args.port,
            args.scenario,
            args.maildir,
            idle_timeout=args.idle_timeout,
            data_timeout=args.data_timeout,
            max_sessions=args.max_sessions,
            max_sessions_per_client=args.max_sessions_per_client,
            tls=args.tls,
        )
    except OSError as error:  # e.g. --maildir names a file
        print(f"smtplab serve: {error}", file=sys.stderr)
        return 2
    except (ValueError, KeyError) as error:
        print(f"smtplab serve: {error.args[0] if error.args else error}", file=sys.stderr)
        return 2
    return asyncio.run(serve(server, transcript))
