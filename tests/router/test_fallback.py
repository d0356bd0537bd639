"""Fallback by priority: which failures move on to the next provider, and which do not."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import openai
import pytest

from tests.router.conftest import RouterFactory, UpstreamFactory, openai_client
from tests.support.daemon import free_port
from tests.support.router import add_provider, make_store

MESSAGES = [{"role": "user", "content": "hi"}]


async def _two_providers(db_path: Path, upstreams: UpstreamFactory, first_url: str | None = None):
    first = await upstreams("first")
    second = await upstreams("second")
    await make_store(
        db_path,
        lambda c: (
            add_provider(c, "low", second.base_url, priority=1, models={"m": None}),
            add_provider(c, "high", first_url or first.base_url, priority=9, models={"m": None}),
        ),
    )
    return first, second


async def test_priority_order_and_4xx_passthrough(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    first, second = await _two_providers(db_path, upstreams)
    router = await router_factory()
    client = openai_client(router)
    raw = await client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.headers["x-provider-id"] == "high"
    first.behaviour.status = 400
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{router.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES}
        ) as resp,
    ):
        assert resp.status == 400
        assert resp.headers["X-Provider-Id"] == "high"
        assert await resp.json() == {
            "error": {"message": "fake says 400", "type": "fake", "code": None}
        }
    assert second.seen == []  # a 400 is the answer: no fallback
    await client.close()


@pytest.mark.parametrize("failure", ["503", "429", "refused", "drop"])
async def test_falls_back_on(
    failure: str, db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    refused = f"http://127.0.0.1:{free_port()}/v1" if failure == "refused" else None
    first, second = await _two_providers(db_path, upstreams, refused)
    if failure in ("503", "429"):
        first.behaviour.status = int(failure)
    first.behaviour.drop = failure == "drop"
    router = await router_factory()
    client = openai_client(router)
    for stream in (False, True):
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=MESSAGES, stream=stream
        )
        assert raw.headers["x-provider-id"] == "low"
        if stream:
            text = "".join(
                [e.choices[0].delta.content or "" async for e in raw.parse() if e.choices]
            )
            assert text.startswith("Hello0")
        else:
            assert raw.parse().choices[0].message.content == "Hello from second"
    assert len(second.seen) == 2
    await client.close()


async def test_falls_back_on_timeout(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    slow = await upstreams("slow")
    quick = await upstreams("quick")
    slow.behaviour.first_delay = 2.0  # longer than its provider's 300 ms timeout
    await make_store(
        db_path,
        lambda c: (
            add_provider(c, "slow", slow.base_url, priority=9, timeout_ms=300, models={"m": None}),
            add_provider(c, "quick", quick.base_url, priority=1, models={"m": None}),
        ),
    )
    router = await router_factory()
    client = openai_client(router)
    raw = await client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.headers["x-provider-id"] == "quick"
    assert raw.parse().choices[0].message.content == "Hello from quick"
    await client.close()
    failed = await router.wait_for_log("upstream_attempt_failed")
    assert failed["provider_id"] == "slow" and failed["error_class"] == "timeout"


async def test_failure_after_first_streamed_byte_is_not_retried(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    first, second = await _two_providers(db_path, upstreams)
    first.behaviour.chunks = 5
    first.behaviour.break_after = 2
    router = await router_factory()
    client = openai_client(router)
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    received = []

    async def consume() -> None:
        async for event in stream:
            received.append(event.choices[0].delta.content)

    with pytest.raises(openai.APIError) as caught:
        await consume()
    assert received == ["Hello0 ", "Hello1 "]
    assert "incomplete" in caught.value.message
    assert second.seen == []
    await client.close()


async def test_all_fail_gives_502_with_every_attempt(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    first, second = await _two_providers(db_path, upstreams)
    first.behaviour.status = 503
    second.behaviour.status = 429
    router = await router_factory()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{router.url}/v1/chat/completions",
            json={"model": "m", "messages": MESSAGES, "stream": True},
        ) as resp,
    ):
        body = await resp.json()
    assert resp.status == 502
    assert body["error"]["code"] == "all_providers_failed"
    assert body["error"]["attempts"] == [
        {"provider": "high", "error_class": "upstream_error", "status": 503},
        {"provider": "low", "error_class": "rate_limited", "status": 429},
    ]
