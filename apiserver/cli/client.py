"""A small synchronous REST client of the running daemon, for the command line.

The standard library's ``urllib`` is enough for one request per command, and keeps the
commands quick to start. Every failure becomes one ``CommandError`` with the exit code a
script can rely on and one line to print: no traceback reaches the user.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from apiserver.config import Settings

# Exit codes of every command (README.md, "Command line").
OK = 0
FAILED = 1  # the daemon answered with an error, refused the token, or an operation failed
USAGE = 2  # bad arguments or environment (argparse uses 2 as well)
NOT_RUNNING = 3  # nothing answers at the daemon's address

TIMEOUT_S = 60.0  # a start waits for both children (CHILD_START_TIMEOUT each)


class CommandError(Exception):
    """A command failed: ``message`` is the one line to print, ``code`` the exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def daemon_url(settings: Settings) -> str:
    """Return the base URL of the daemon that ``settings`` describe."""
    host = settings.api_host
    if host in ("0.0.0.0", "::", "[::]", ""):  # bound to every address: talk over loopback
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.api_port}"


class DaemonClient:
    """Call the daemon's REST API with the token from the environment."""

    def __init__(self, base_url: str, token: str | None, timeout: float = TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request; return the decoded JSON body or raise CommandError."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(  # noqa: S310 - the URL is the daemon's, http only
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                return _decode(response.read())
        except urllib.error.HTTPError as exc:
            raise CommandError(_error_line(exc.code, exc.read())) from None
        except urllib.error.URLError as exc:
            raise self._unreachable(exc.reason) from None
        except (ConnectionError, TimeoutError) as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, reason: object) -> CommandError:
        if isinstance(reason, ConnectionRefusedError | FileNotFoundError):
            why = "connection refused"
        elif isinstance(reason, TimeoutError):
            why = "no answer in time"
        else:
            why = str(reason) or type(reason).__name__
        return CommandError(
            f"the daemon is not running at {self.base_url} ({why}); "
            "start it with `apiserver run` or `systemctl --user start qwen-proxy-apiserver`",
            NOT_RUNNING,
        )


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise CommandError("the daemon sent an answer that is not JSON") from None


def _error_line(status: int, raw: bytes) -> str:
    """Return the daemon's error message (the one error shape) as one line."""
    try:
        error = json.loads(raw)["error"]
        message = str(error["message"])
        details = error.get("details") or []
        if details:
            message += ": " + "; ".join(f"{d.get('field')}: {d.get('message')}" for d in details)
    except (ValueError, KeyError, TypeError):
        message = raw.decode(errors="replace").strip()[:200] or "no details"
    return f"the daemon answered {status}: {message}"
