"""What a client cannot do: leak its key upstream, pick the upstream, skip the key or Host check."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import aiohttp
import pytest

from qwenstack_core.store import Store
from tests.router.conftest import RouterFactory, UpstreamFactory, openai_client
from tests.support.capture import record
from tests.support.router import add_provider, make_store, put_setting

MESSAGES = [{"role": "user", "content": "hi"}]


async def test_client_key_and_body_upstream_fields_never_reach_the_upstream(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    keyed = await upstreams("keyed")
    evil = await upstreams("evil")
    await make_store(
        db_path,
        lambda c: (
            add_provider(
                c, "keyed", keyed.base_url, api_key="sk-provider-s3cr3t", models={"m": None}
            ),
            add_provider(c, "open", keyed.base_url, models={"open-m": None}),
            put_setting(c, "logging.logRequests", True),
        ),
    )
    router = await router_factory()
    client = openai_client(router, api_key="sk-client-s3cr3t")
    for model in ("m", "open-m"):
        await client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            extra_body={
                "api_base": evil.base_url,
                "base_url": evil.base_url,
                "api_key": "sk-body-s3cr3t",
            },
        )
    await client.close()
    assert evil.seen == []
    with_key, without_key = keyed.seen
    assert with_key.headers["Authorization"] == "Bearer sk-provider-s3cr3t"
    assert "Authorization" not in without_key.headers  # no key configured: none sent
    for seen in keyed.seen:
        assert b"sk-client" not in seen.raw and b"sk-body" not in seen.raw
        assert b"api_base" not in seen.raw and b"base_url" not in seen.raw
        assert all("sk-client" not in v for v in seen.headers.values())

    # The recorded request bodies (logging.logRequests is on) hold no key either.
    store = Store(db_path, migrate=False)
    await store.open()
    try:
        for _ in range(100):
            rows = await store.read(
                lambda c: [dict(r) for r in c.execute("SELECT * FROM requests")]
            )
            if len(rows) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await store.close()
    assert len(rows) == 2
    record("router history rows", json.dumps(rows))
    assert all("sk-body" not in (r["body"] or "") and "api_base" not in r["body"] for r in rows)


async def test_router_api_key_host_and_origin_checks(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    fake = await upstreams()
    await make_store(db_path, lambda c: add_provider(c, "alpha", fake.base_url, models={"m": None}))
    router = await router_factory(
        {"ROUTER_API_KEY": "router-key-s3cr3t", "ALLOWED_HOSTS": "router.lan"}
    )
    url = f"{router.url}/v1/chat/completions"
    chat = {"model": "m", "messages": MESSAGES}
    good = {"Authorization": "Bearer router-key-s3cr3t"}
    async with aiohttp.ClientSession() as http:

        async def call(headers: dict[str, str], method: str = "POST") -> tuple[int, dict]:
            async with http.request(method, url, json=chat, headers=headers) as resp:
                text = await resp.text()
                record("router answer", text)
                return resp.status, (json.loads(text) if text else {}) | {"_h": dict(resp.headers)}

        status, body = await call({})
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        status, body = await call({"Authorization": "Bearer wrong"})
        assert status == 401
        status, body = await call(good)
        assert status == 200
        status, body = await call({**good, "Host": "evil.example"})
        assert status == 403 and body["error"]["code"] == "host_not_allowed"
        status, body = await call({**good, "Host": "router.lan:3001"})
        assert status == 200  # ALLOWED_HOSTS
        status, body = await call({**good, "Origin": "https://evil.example"})
        assert status == 403 and body["error"]["code"] == "origin_not_allowed"
        status, body = await call({**good, "Origin": "http://localhost:5173"})
        assert status == 200
        assert body["_h"]["Access-Control-Allow-Origin"] == "http://localhost:5173"
        status, body = await call({"Origin": "http://localhost:5173"}, "OPTIONS")
        assert status == 204
        async with http.get(f"{router.url}/health") as resp:
            assert resp.status == 200  # the liveness probe needs no key
        async with http.post(f"{router.url}/admin/reload") as resp:
            assert resp.status == 200 and (await resp.json())["reloaded"] is True
    assert len(fake.seen) == 3


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_one_streamed_call_with_curl(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    fake = await upstreams()
    await make_store(db_path, lambda c: add_provider(c, "alpha", fake.base_url, models={"m": None}))
    router = await router_factory()
    body = json.dumps({"model": "m", "messages": MESSAGES, "stream": True})
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-N", "-i", "-H", "Content-Type: application/json", "-d", body,
        f"{router.url}/v1/chat/completions",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    text = out.decode()
    assert "x-provider-id: alpha" in text.lower()
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    contents = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]]
    assert contents[:3] == ["Hello0 ", "Hello1 ", "Hello2 "]
