"""The in-process layer: the real application (create_app) on a loopback port of this process.

Every service, the store (a real SQLite file) and the HTTP stack are real; only the supervisor
is replaced by one that runs nothing (tests/support/fake_supervisor.py). The ``api`` fixture
here overrides the real-daemon one, so the same tests run against either.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from apiserver.app import create_app
from apiserver.config import Settings
from apiserver.services.proxy import child_specs
from qwenstack_core.logsetup import configure
from tests.support.capture import record
from tests.support.daemon import Api
from tests.support.fake_supervisor import FakeSupervisor
from tests.support.processes import free_port

# The loggers configure() sets a level on besides the root.
LIBRARY_LOGGERS = ("aiohttp.access", "socketio", "engineio", "socketio.server", "engineio.server")


class CapturedLog:
    """A log stream whose every line is kept for the end-of-session secret scan."""

    def write(self, text: str) -> int:
        if text.strip():
            record("app log", text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env(
        {
            "DATABASE_PATH": str(tmp_path / "store.db"),
            "API_PORT": "0",
            "QWEN_PROXY_PORT": str(free_port()),
            "PROVIDER_ROUTER_PORT": str(free_port()),
            "LOG_LEVEL": "debug",
        }
    )


@pytest.fixture
def supervisor(settings: Settings) -> FakeSupervisor:
    return FakeSupervisor(child_specs(settings))


@contextlib.contextmanager
def captured_logging(level: str) -> Iterator[None]:
    """Send this process's log lines to the secret scan while the app runs, then undo it.

    configure() sets the root logger and the libraries' levels for the whole process; left as
    they are, every later test would pay for debug lines it never reads.
    """
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    libraries = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    configure(level, "json", CapturedLog())  # type: ignore[arg-type]
    try:
        yield
    finally:
        root.handlers[:], root.level = saved
        for name, old in libraries.items():
            logging.getLogger(name).setLevel(old)


@pytest.fixture
async def app_url(settings: Settings, supervisor: FakeSupervisor) -> AsyncIterator[str]:
    """Serve create_app on 127.0.0.1 in this process; return its base URL."""
    with captured_logging(settings.log_level):
        server = TestServer(create_app(settings, supervisor=supervisor), host="127.0.0.1")
        await server.start_server()
        yield str(server.make_url("")).rstrip("/")
        await server.close()


@pytest.fixture
def api(app_url: str, http: aiohttp.ClientSession) -> Api:
    """A JSON client of the in-process application."""
    return Api(http, app_url)
