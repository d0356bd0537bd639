"""Shared bits of the fake children: a stdlib HTTP ``/health`` server on ``$PORT``."""

from __future__ import annotations

import os
import signal
import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve_health(healthy: Callable[[], bool] = lambda: True) -> None:
    """Serve ``GET /health`` (200 while ``healthy()``, else 503) from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ok = self.path == "/health" and healthy()
            body = b"ok" if ok else b"unhealthy"
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # keep the child's output to the lines the tests look for

    server = _Server((os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def exit_on_sigterm() -> None:
    """Exit with code 0 on SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: _exit(0))


def _exit(code: int) -> None:
    raise SystemExit(code)


def ready() -> None:
    """Tell the test that signal handlers are installed and the port is bound."""
    print("READY", flush=True)


def wait_forever() -> None:
    """Sleep until a signal ends the process."""
    # Short sleeps, not signal.pause(): a signal landing just before pause() would be missed
    # (its Python handler runs only at the next bytecode, and pause() waits for another one).
    while True:
        time.sleep(0.05)
