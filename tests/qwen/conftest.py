"""Fixtures of the qwen-proxy tests: a real store file, the fake Qwen, the proxy process."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from openai import AsyncOpenAI

from qwenstack_core.store import Store
from qwenstack_core.store import credentials as credential_rows
from tests.fakes.qwen_upstream import FakeQwen
from tests.qwen.process import QwenProxyProcess
from tests.support.capture import SECRET_MARKER, record

TOKEN = "tok-s3cr3t-umid-0001"
COOKIES = "cna=abc; token=s3cr3t-cookie-0001; ssxmod_itna=xyz"

ProxyFactory = Callable[..., Awaitable[QwenProxyProcess]]


async def save_credentials(
    db_path: Path, token: str, cookies: str, expires_at: int | None = None
) -> None:
    store = Store(db_path)
    await store.open()
    try:
        await store.write(lambda c: credential_rows.save(c, token, cookies, expires_at))
    finally:
        await store.close()


@pytest.fixture
async def db_path(tmp_path: Path) -> Path:
    """A migrated database holding the test credentials (as the API server would write them)."""
    path = tmp_path / "store.db"
    await save_credentials(path, TOKEN, COOKIES, int(time.time()) + 3600)
    return path


@pytest.fixture
async def fake() -> AsyncIterator[FakeQwen]:
    """The fake Qwen upstream; the test fails if any call broke the protocol."""
    upstream = FakeQwen(token=TOKEN, cookies=COOKIES)
    await upstream.start()
    yield upstream
    await upstream.stop()
    assert upstream.violations == []


@pytest.fixture
async def proxy_factory(db_path: Path, fake: FakeQwen) -> AsyncIterator[ProxyFactory]:
    started: list[QwenProxyProcess] = []

    async def factory(env: dict[str, str] | None = None, wait: bool = True) -> QwenProxyProcess:
        proc = QwenProxyProcess(db_path, fake.url, env)
        started.append(proc)
        return await proc.start(wait=wait)

    yield factory
    for proc in started:
        code = await proc.stop()
        assert code == 0, proc.lines[-20:]
        # The token and cookies never reach a log line (also scanned at session end).
        assert not [line for line in proc.lines if SECRET_MARKER in line]


@pytest.fixture
async def proxy(proxy_factory: ProxyFactory) -> QwenProxyProcess:
    return await proxy_factory()


@pytest.fixture
async def client(proxy: QwenProxyProcess) -> AsyncIterator[AsyncOpenAI]:
    """The official OpenAI SDK pointed at qwen-proxy."""
    sdk = AsyncOpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0, timeout=20)
    yield sdk
    await sdk.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post_raw(
    http: aiohttp.ClientSession, url: str, body: bytes | str, **kw: object
) -> tuple[int, str, dict[str, str]]:
    """POST a raw body; the answer is recorded for the secret scan."""
    async with http.post(url, data=body, **kw) as resp:  # type: ignore[arg-type]
        text = await resp.text()
        record(f"POST {url}", text)
        return resp.status, text, dict(resp.headers)
