"""Command line: ``apiserver`` runs the daemon; ``apiserver watch`` prints live events."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from apiserver import __version__
from apiserver.config import ConfigError, Settings, help_text
from apiserver.instance import DatabaseInUse, exclusive_database
from qwenstack_core.logsetup import configure, get_logger

SHUTDOWN_TIMEOUT_S = 5.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apiserver",
        description="Control-plane daemon of the local LLM-proxy stack: REST API, Socket.IO "
        "events, dashboard, and supervision of qwen-proxy and provider-router.",
        epilog=help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.add_parser("run", help="run the daemon (the default)")
    watch = sub.add_parser("watch", help="connect to a running daemon and print every event")
    watch.add_argument("--url", help="daemon URL (default: http://127.0.0.1:$API_PORT)")
    watch.add_argument(
        "--transport",
        choices=("websocket", "polling"),
        default=None,
        help="force one transport (default: websocket, falling back to polling)",
    )
    watch.add_argument("--events", help="comma-separated events to subscribe to (default: all)")
    return parser


async def serve(settings: Settings) -> None:
    """Run the daemon until SIGTERM or SIGINT, then shut down cleanly."""
    from apiserver.app import create_app  # imported late: --help stays instant

    log = get_logger("apiserver")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Installed first: a SIGTERM while the children are being restored still shuts down cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with exclusive_database(settings.database_path):
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, settings.api_host, settings.api_port, reuse_address=True)
        try:
            await site.start()
            port = _bound_port(runner) or settings.api_port
            log.info(
                "server_started",
                host=settings.api_host,
                port=port,
                url=f"http://{settings.api_host}:{port}",
                pid=os.getpid(),
                version=__version__,
            )
            await stop.wait()
            log.info("server_stopping")
        finally:
            await runner.cleanup()
            log.info("server_stopped")


def _bound_port(runner: web.AppRunner) -> int | None:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``apiserver`` console script."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print("apiserver: invalid configuration:", file=sys.stderr)  # noqa: T201
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)  # noqa: T201
        return 2
    if args.command == "watch":
        from apiserver.watch import watch

        configure(settings.log_level, "console", sys.stderr)
        return asyncio.run(watch(settings, args.url, args.transport, args.events))
    configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except (OSError, DatabaseInUse) as exc:
        get_logger("apiserver").error("server_failed", error=str(exc))
        return 1
    except Exception:  # e.g. a database of a newer schema: one structured line, not a bare trace
        get_logger("apiserver").exception("server_failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
