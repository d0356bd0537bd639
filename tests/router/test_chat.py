"""Chat completions through the real router process, with the official OpenAI SDK."""

from __future__ import annotations

import io
import json
from pathlib import Path

import aiohttp
import openai
import pytest

from qwenstack_core.store import Store
from tests.router.conftest import RouterFactory, UpstreamFactory, openai_client
from tests.support.capture import record
from tests.support.router import add_provider, make_store, put_setting


async def test_non_stream_and_stream_with_model_mapping(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    fake = await upstreams("alpha")
    await make_store(
        db_path,
        lambda c: add_provider(
            c, "alpha", fake.base_url, api_key="sk-alpha-s3cr3t", models={"m1": "upstream-m1"}
        ),
    )
    router = await router_factory()
    client = openai_client(router)

    raw = await client.chat.completions.with_raw_response.create(
        model="m1", messages=[{"role": "user", "content": "hi"}], extra_body={"custom": [1, 2]}
    )
    assert raw.headers["x-provider-id"] == "alpha"
    answer = raw.parse()
    assert answer.choices[0].message.content == "Hello from alpha"
    assert answer.usage is not None and answer.usage.total_tokens == 10
    sent = fake.seen[-1]
    assert sent.body["model"] == "upstream-m1"  # the link's upstreamModel
    assert sent.body["custom"] == [1, 2]  # unknown fields pass through
    assert sent.headers["Authorization"] == "Bearer sk-alpha-s3cr3t"  # the provider's key

    stream = await client.chat.completions.create(
        model="m1",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    parts = []
    finish = None
    async for event in stream:
        if event.choices:
            parts.append(event.choices[0].delta.content or "")
            finish = event.choices[0].finish_reason or finish
    assert "".join(parts) == "Hello0 Hello1 Hello2 "
    assert finish == "stop"
    await client.close()


async def test_unknown_model_and_bad_input(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    fake = await upstreams()
    await make_store(
        db_path,
        lambda c: (
            add_provider(c, "alpha", fake.base_url, models={"m1": None}),
            add_provider(c, "off", fake.base_url, enabled=False, models={"m-off": None}),
        ),
    )
    router = await router_factory()
    async with aiohttp.ClientSession() as http:
        cases = [
            (b"{not json", 400, "invalid_json"),
            (b"[]", 400, "invalid_json"),
            (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "invalid_request"),
            (b'{"model": "m1"}', 400, "invalid_request"),
            (b'{"model": "m1", "messages": "hi"}', 400, "invalid_request"),
            (b'{"model": "m1", "messages": [{"role": "user"}], "stream": "yes"}', 400,
             "invalid_request"),
            (io.BytesIO(b"x" * (17 * 1024 * 1024)), 413, "payload_too_large"),
        ]  # fmt: skip
        for body, status, code in cases:
            async with http.post(
                f"{router.url}/v1/chat/completions",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as resp:
                answer = await resp.json()
                assert resp.status == status, answer
                assert answer["error"]["code"] == code
                assert set(answer["error"]) >= {"message", "type", "code", "param"}
        assert fake.seen == []  # no upstream call for bad input

    # The model is linked only to a disabled provider: nobody serves it.
    client = openai_client(router)
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(
            model="m-off", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.code == "model_not_found"
    assert fake.seen == []
    # A model without any link goes to every enabled provider.
    answer = await client.chat.completions.create(
        model="anything", messages=[{"role": "user", "content": "x"}]
    )
    assert answer.choices[0].message.content == "Hello from fake"
    await client.close()


async def test_models_endpoints_and_prefixless_routes(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    fake = await upstreams()
    await make_store(
        db_path,
        lambda c: (
            add_provider(c, "alpha", fake.base_url, models={"m1": None, "m2": None}),
            add_provider(c, "off", fake.base_url, enabled=False, models={"m3": None}),
        ),
    )
    router = await router_factory()
    client = openai_client(router)
    listed = await client.models.list()
    assert sorted(m.id for m in listed.data) == ["m1", "m2"]
    assert (await client.models.retrieve("m2")).id == "m2"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("m3")
    await client.close()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{router.url}/models") as resp:
            assert resp.status == 200
            assert len((await resp.json())["data"]) == 2
        async with http.post(
            f"{router.url}/chat/completions",
            json={"model": "m1", "messages": [{"role": "user", "content": "x"}]},
        ) as resp:
            assert resp.status == 200
            assert resp.headers["X-Provider-Id"] == "alpha"
        async with http.get(f"{router.url}/health") as resp:
            assert resp.status == 200
        async with http.get(f"{router.url}/nope") as resp:
            body = await resp.json()
            assert resp.status == 404 and body["error"]["code"] == "route_not_found"
            record("router 404", str(body))


async def test_response_bodies_are_kept_only_when_asked(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    fake = await upstreams("alpha")
    await make_store(
        db_path,
        lambda c: (
            add_provider(c, "alpha", fake.base_url, models={"m": None}),
            put_setting(c, "logging.logResponses", True),
        ),
    )
    router = await router_factory()
    client = openai_client(router)
    await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    async for _ in stream:
        pass
    await client.close()
    await router.stop()  # flushes the history queue
    store = Store(db_path, migrate=False)
    await store.open()
    try:
        rows = await store.read(
            lambda c: [
                (r["body"], r["finish_reason"])
                for r in c.execute("SELECT body, finish_reason FROM responses ORDER BY id")
            ]
        )
    finally:
        await store.close()
    (plain, plain_finish), (streamed, stream_finish) = rows
    assert json.loads(plain)["choices"][0]["message"]["content"] == "Hello from alpha"
    assert streamed.startswith("data: {") and streamed.endswith("data: [DONE]\n\n")
    assert plain_finish == stream_finish == "stop"
