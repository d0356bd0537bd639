"""Argument handling: ``apiserver [run]`` runs the daemon; the other commands drive it."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from apiserver import __version__
from apiserver.cli.client import daemon_url
from apiserver.cli.drive import DRIVE_COMMANDS, add_commands, run_command
from apiserver.config import ConfigError, Settings, help_text
from qwenstack_core.logsetup import configure


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
    add_commands(sub)
    watch = sub.add_parser("watch", help="connect to a running daemon and print every event")
    watch.add_argument("--url", help="daemon URL (default: http://127.0.0.1:$API_PORT)")
    watch.add_argument(
        "--transport",
        choices=("websocket", "polling"),
        default=None,
        help="force one transport (default: websocket, falling back to polling)",
    )
    watch.add_argument("--events", help="comma-separated events to subscribe to (default: all)")
    install = sub.add_parser(
        "install-service",
        help="install the systemd user unit for this installation and reload systemd",
    )
    install.add_argument("--print", action="store_true", help="only print the unit")
    install.add_argument(
        "--system",
        action="store_true",
        help="a system service in /etc/systemd/system (run as root; data in /var/lib/qwen-proxy)",
    )
    sub.add_parser("openapi", help="print the OpenAPI 3.1 document of the REST API (JSON)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``apiserver`` console script; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print("apiserver: invalid configuration:", file=sys.stderr)  # noqa: T201
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)  # noqa: T201
        return 2
    # Each command is imported when chosen: --help and watch stay free of the server's imports.
    if args.command in DRIVE_COMMANDS:
        return run_command(args, settings)
    if args.command == "install-service":
        from apiserver.cli.install_service import install_service

        return install_service(
            database_path=settings.database_path,
            environ=os.environ,
            system=args.system,
            print_only=args.print,
            out=sys.stdout,
            err=sys.stderr,
        )
    if args.command == "openapi":
        import json

        from apiserver.openapi import build_document

        document = build_document(token=settings.api_token is not None)
        print(json.dumps(document, indent=2))  # noqa: T201
        return 0
    if args.command == "watch":
        from apiserver.cli.watch import watch

        configure(settings.log_level, "console", sys.stderr)
        url = args.url or daemon_url(settings)
        return asyncio.run(watch(settings, url, args.transport, args.events))
    from apiserver.cli.run import run

    configure(settings.log_level, settings.log_format)
    return run(settings)
