"""Fixtures shared by every test: the real daemon process, a JSON client, and global guards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.capture import leaks
from tests.support.daemon import Api, Daemon
from tests.support.processes import assert_no_leaked_processes

DaemonFactory = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def daemon_factory(tmp_path: Path) -> AsyncIterator[DaemonFactory]:
    """Start daemons (``await factory(env={...})``); all are stopped after the test."""
    started: list[Daemon] = []

    async def factory(env: dict[str, str] | None = None, db_path: Path | None = None) -> Daemon:
        daemon = Daemon(db_path or tmp_path / "store.db", env)
        started.append(daemon)
        return await daemon.start()

    yield factory
    for daemon in started:
        await daemon.stop()


@pytest.fixture
async def daemon(daemon_factory: DaemonFactory) -> Daemon:
    """A running daemon with default settings and a fresh database."""
    return await daemon_factory()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(daemon: Daemon, http: aiohttp.ClientSession) -> Api:
    """A JSON client of the default daemon."""
    return Api(http, daemon.url)


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail any test that leaves a process of ours running (the one leak guard of the suite)."""
    yield
    assert_no_leaked_processes()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any captured response, log line or event contains a stored secret."""
    found = leaks()
    if found:
        where, text = found[0]
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"SECRET LEAK: {len(found)} captured outputs contain a stored secret; "
                f"first in {where}: {text[:300]}",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
