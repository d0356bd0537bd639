"""Fixtures of the provider-router tests: fake upstreams, a seeded store, the router process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from openai import AsyncOpenAI

from tests.fakes.openai_upstream import FakeUpstream
from tests.support.router import RouterProcess

UpstreamFactory = Callable[..., Awaitable[FakeUpstream]]
RouterFactory = Callable[..., Awaitable[RouterProcess]]


@pytest.fixture
async def upstreams() -> AsyncIterator[UpstreamFactory]:
    started: list[FakeUpstream] = []

    async def factory(name: str = "fake") -> FakeUpstream:
        fake = await FakeUpstream(name=name).start()
        started.append(fake)
        return fake

    yield factory
    for fake in started:
        await fake.stop()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
async def router_factory(db_path: Path) -> AsyncIterator[RouterFactory]:
    started: list[RouterProcess] = []

    async def factory(env: dict[str, str] | None = None) -> RouterProcess:
        router = RouterProcess(db_path, env)
        started.append(router)
        return await router.start()

    yield factory
    for router in started:
        await router.stop()


def openai_client(router: RouterProcess, api_key: str = "sk-client-s3cr3t") -> AsyncOpenAI:
    """The official SDK pointed at the router (as a user's tool would be)."""
    return AsyncOpenAI(base_url=f"{router.url}/v1", api_key=api_key, max_retries=0, timeout=10)
