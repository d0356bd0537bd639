"""The commands that drive a running daemon: status, start/stop/restart, logs, lists, credentials.

Each command takes a ``DaemonClient`` and the output streams, prints for people by default
(``--json`` for scripts where it makes sense), and returns the exit code (see ``client``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from apiserver.cli.client import FAILED, OK, CommandError, DaemonClient

CHILDREN = (("qwen-proxy", "qwenProxy"), ("provider-router", "providerRouter"))
CHILD_NAMES = tuple(name for name, _ in CHILDREN)


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """Return ``rows`` as a plain text table with a header line (columns padded to fit)."""
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def uptime_text(seconds: float) -> str:
    """Return ``seconds`` as e.g. ``1d 2h``, ``3h 04m`` or ``5m 06s``."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def memory_text(rss: int) -> str:
    """Return a byte count in MiB (or GiB)."""
    if not rss:
        return "-"
    if rss >= 1 << 30:
        return f"{rss / (1 << 30):.2f} GiB"
    return f"{rss / (1 << 20):.1f} MiB"


def exit_text(last_exit: dict[str, Any] | None) -> str:
    """Return how a child last ended, e.g. ``exit 1`` or ``SIGKILL``."""
    if not last_exit:
        return "-"
    return str(last_exit.get("signal") or f"exit {last_exit.get('code')}")


def credentials_text(credentials: dict[str, Any]) -> str:
    """Return the credential state in a few words."""
    if not credentials.get("hasCredentials"):
        return "none stored"
    expires = credentials.get("expiresAt")
    when = datetime.fromtimestamp(expires).strftime("%Y-%m-%d %H:%M") if expires else None
    if credentials.get("isExpired"):
        return f"expired {when}" if when else "expired"
    return f"valid until {when}" if when else "valid (no expiry recorded)"


# -- status ----------------------------------------------------------------------------------


def status(client: DaemonClient, out: TextIO, *, as_json: bool) -> int:
    """Print the children, providers, models and credentials."""
    body = client.get("/api/proxy/status")
    if as_json:
        out.write(json.dumps(body, indent=2) + "\n")
        return OK
    out.write(f"proxies {body['status']} ({client.base_url})\n\n")
    rows = []
    for name, key in CHILDREN:
        child = body[key]
        running = child.get("state") == "running"
        rows.append(
            [
                name,
                child.get("state"),
                child.get("pid"),
                child.get("port"),
                uptime_text(child.get("uptime") or 0) if running else None,
                child.get("restarts"),
                f"{child.get('cpu', 0):.1f}%" if child.get("pid") else None,
                memory_text(child.get("memory") or 0),
                exit_text(child.get("lastExit")),
            ]
        )
    header = ["CHILD", "STATE", "PID", "PORT", "UPTIME", "RESTARTS", "CPU", "MEMORY", "LAST EXIT"]
    out.write(table(rows, header))
    for name, key in CHILDREN:
        state, reason = body[key].get("state"), body[key].get("reason")
        if reason and state != "running":
            out.write(f"{name}: {reason}\n")
    providers, models = body["providers"], body["models"]
    out.write(
        f"\nproviders: {providers['enabled']} of {providers['total']} enabled"
        f"   models: {models['total']}"
        f"   qwen credentials: {credentials_text(body['credentials'])}\n"
    )
    return OK


# -- start / stop / restart ----------------------------------------------------------------


def control(client: DaemonClient, out: TextIO, action: str, child: str | None) -> int:
    """Start, stop or restart both children or one; exit 1 when it did not work out."""
    path = f"/api/proxy/{child}/{action}" if child else f"/api/proxy/{action}"
    body = client.post(path)
    states = ", ".join(f"{name} {body[key]['state']}" for name, key in CHILDREN)
    if body.get("success") is False:
        raise CommandError(f"{body.get('message')} ({states})")
    out.write(f"{body.get('message')} ({states})\n")
    return OK


# -- logs ------------------------------------------------------------------------------------


def log_line(entry: dict[str, Any]) -> str:
    """Return one output line of a child as printed by ``logs``."""
    stamp = str(entry.get("ts") or "")
    marker = " [stderr]" if entry.get("stream") == "stderr" else ""
    return f"{stamp}{marker} {entry.get('line', '')}\n"


def logs(client: DaemonClient, out: TextIO, child: str, lines: int) -> list[dict[str, Any]]:
    """Print the last ``lines`` output lines of ``child``; return them."""
    body = client.get(f"/api/proxy/{child}/logs?lines={lines}")
    entries: list[dict[str, Any]] = body.get("lines", [])
    for entry in entries:
        out.write(log_line(entry))
    out.flush()
    return entries


# -- lists -----------------------------------------------------------------------------------


def providers(client: DaemonClient, out: TextIO, *, as_json: bool) -> int:
    """List the providers by priority."""
    body = client.get("/api/providers")
    if as_json:
        out.write(json.dumps(body, indent=2) + "\n")
        return OK
    rows = [[p["id"], p["name"], p["type"], p["enabled"], p["priority"]] for p in body["providers"]]
    out.write(table(rows, ["ID", "NAME", "TYPE", "ENABLED", "PRIORITY"]))
    return OK


def models(client: DaemonClient, out: TextIO, *, as_json: bool) -> int:
    """List the models of the catalog."""
    body = client.get("/api/models")
    if as_json:
        out.write(json.dumps(body, indent=2) + "\n")
        return OK
    rows = [[m["id"], m["name"], ", ".join(m.get("capabilities") or [])] for m in body["models"]]
    out.write(table(rows, ["ID", "NAME", "CAPABILITIES"]))
    return OK


# -- credentials -----------------------------------------------------------------------------


def credentials_set(
    client: DaemonClient, out: TextIO, token: str, cookies: str, expires_at: int | None
) -> int:
    """Store the Qwen credentials (the secrets are never printed)."""
    body = client.post(
        "/api/qwen/credentials", {"token": token, "cookies": cookies, "expiresAt": expires_at}
    )
    when = body.get("expiresAt")
    out.write(
        f"{body.get('message', 'Qwen credentials updated')}"
        + (f" (expire {datetime.fromtimestamp(when):%Y-%m-%d %H:%M})" if when else "")
        + "\n"
    )
    return OK


def credentials_show(client: DaemonClient, out: TextIO, *, as_json: bool) -> int:
    """Print whether credentials are stored and until when they are valid."""
    body = client.get("/api/qwen/credentials")
    if as_json:
        out.write(json.dumps(body, indent=2) + "\n")
    else:
        out.write(f"qwen credentials: {credentials_text(body)}\n")
    return OK if body.get("isValid") else FAILED
