"""Wire the commands that talk to a running daemon into the ``apiserver`` parser."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

from apiserver.cli import commands
from apiserver.cli.client import USAGE, CommandError, DaemonClient, daemon_url
from apiserver.config import Settings

DRIVE_COMMANDS = frozenset(
    {"status", "start", "stop", "restart", "logs", "providers", "models", "credentials"}
)


def _expiry(value: str) -> int:
    """Parse ``--expires-at``: Unix seconds (what the browser extension sends)."""
    if not value.isdigit():
        raise argparse.ArgumentTypeError("expected Unix seconds, e.g. 1767225600")
    return int(value)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the daemon-driving commands to the subcommand parser ``sub``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="daemon URL (default: http://$API_HOST:$API_PORT)")

    status = sub.add_parser(
        "status", parents=[common], help="show the children, providers, models, credentials"
    )
    status.add_argument("--json", action="store_true", help="print the status object as JSON")
    for action, verb in (("start", "start"), ("stop", "stop"), ("restart", "restart")):
        control = sub.add_parser(
            action, parents=[common], help=f"{verb} both children, or the one named"
        )
        control.add_argument("child", nargs="?", choices=commands.CHILD_NAMES)
    logs = sub.add_parser("logs", parents=[common], help="print a child's recent output")
    logs.add_argument("child", choices=commands.CHILD_NAMES)
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default 50)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    for name, what in (("providers", "providers by priority"), ("models", "models")):
        listing = sub.add_parser(name, parents=[common], help=f"list the {what}")
        listing.add_argument("--json", action="store_true", help="print the list as JSON")
    credentials = sub.add_parser(
        "credentials", parents=[common], help="the Qwen web-chat credentials"
    )
    actions = credentials.add_subparsers(
        dest="credentials_command", metavar="action", required=True
    )
    store = actions.add_parser("set", parents=[common], help="store token and cookies")
    store.add_argument("--token", required=True, help="the chat.qwen.ai token")
    store.add_argument("--cookies", required=True, help="the chat.qwen.ai cookies")
    store.add_argument("--expires-at", type=_expiry, help="expiry in Unix seconds")
    show = actions.add_parser(
        "show", parents=[common], help="show whether valid credentials are stored (exit 1: not)"
    )
    show.add_argument("--json", action="store_true", help="print the state as JSON")


def run_command(
    args: argparse.Namespace,
    settings: Settings,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run one daemon-driving command; print one line to ``err`` when it fails."""
    url = args.url or daemon_url(settings)
    client = DaemonClient(url, settings.api_token)
    try:
        return _dispatch(args, client, url, settings, out, err)
    except CommandError as exc:
        err.write(f"apiserver {args.command}: {exc.message}\n")
        return exc.code
    except BrokenPipeError:  # e.g. `apiserver logs ... | head`
        return 0


def _dispatch(
    args: argparse.Namespace,
    client: DaemonClient,
    url: str,
    settings: Settings,
    out: TextIO,
    err: TextIO,
) -> int:
    command = args.command
    if command == "status":
        return commands.status(client, out, as_json=args.json)
    if command in ("start", "stop", "restart"):
        return commands.control(client, out, command, args.child)
    if command == "logs":
        if not 1 <= args.lines <= 10000:
            raise CommandError("-n must be between 1 and 10000", USAGE)
        if args.follow:
            from apiserver.cli.follow import follow_logs

            return asyncio.run(
                follow_logs(client, url, settings.api_token, args.child, args.lines, out, err)
            )
        commands.logs(client, out, args.child, args.lines)
        return 0
    if command == "providers":
        return commands.providers(client, out, as_json=args.json)
    if command == "models":
        return commands.models(client, out, as_json=args.json)
    if command == "credentials" and args.credentials_command == "set":
        return commands.credentials_set(client, out, args.token, args.cookies, args.expires_at)
    if command == "credentials":
        return commands.credentials_show(client, out, as_json=args.json)
    raise CommandError(f"unknown command {command}", USAGE)
