"""Through the whole stack: daemon → provider-router → qwen-proxy → fake Qwen, OpenAI SDK client."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI

from tests.conftest import DaemonFactory
from tests.fakes.qwen_upstream import FakeQwen, transcript_text, transcript_usage
from tests.qwen.conftest import COOKIES, TOKEN
from tests.support.capture import SECRET_MARKER, record
from tests.support.daemon import Api, free_port


async def poll(fetch: Any, ready: Any, timeout: float = 10.0) -> Any:
    """Call ``fetch`` until ``ready(result)`` (history is written after the answer ends)."""
    async with asyncio.timeout(timeout):
        while True:
            result = await fetch()
            if ready(result):
                return result
            await asyncio.sleep(0.05)


@pytest.mark.timeout(60)
async def test_daemon_supervises_qwen_proxy_with_qwen_base_url(
    daemon_factory: DaemonFactory, fake: FakeQwen
) -> None:
    proxy_port = free_port()
    daemon = await daemon_factory(
        env={"QWEN_BASE_URL": fake.url, "QWEN_PROXY_PORT": str(proxy_port)}
    )
    async with aiohttp.ClientSession() as session:
        api = Api(session, daemon.url)
        await api.post(
            "/api/qwen/credentials",
            {"token": TOKEN, "cookies": COOKIES, "expiresAt": int(time.time()) + 3600},
        )
        status, body = await api.post("/api/proxy/qwen-proxy/start")
        assert status == 200 and body["qwenProxy"]["state"] == "running", body
        sdk = AsyncOpenAI(
            base_url=f"http://127.0.0.1:{proxy_port}/v1", api_key="unused", max_retries=0
        )
        try:
            reply = await sdk.chat.completions.create(
                model="qwen3-max", messages=[{"role": "user", "content": "explain law"}]
            )
        finally:
            await sdk.close()
        assert reply.choices[0].message.content == transcript_text()
        status, _ = await api.post("/api/proxy/qwen-proxy/stop")
        assert status == 200
    # The child's own log lines went through the daemon's log, without a secret.
    assert any("request_finished" in line for line in daemon.lines)
    assert not [line for line in daemon.lines if SECRET_MARKER in line]


@pytest.mark.timeout(60)
async def test_openai_sdk_through_router_and_qwen_proxy(
    daemon_factory: DaemonFactory, fake: FakeQwen
) -> None:
    router_port = free_port()
    daemon = await daemon_factory(
        env={
            "QWEN_BASE_URL": fake.url,
            "QWEN_PROXY_PORT": str(free_port()),
            "PROVIDER_ROUTER_PORT": str(router_port),
        }
    )
    async with aiohttp.ClientSession() as session:
        api = Api(session, daemon.url)
        status, _ = await api.post(
            "/api/qwen/credentials",
            {"token": TOKEN, "cookies": COOKIES, "expiresAt": int(time.time()) + 3600},
        )
        assert status == 200
        status, body = await api.post("/api/proxy/start")
        assert status == 200 and body["success"], body

        sdk = AsyncOpenAI(
            base_url=f"http://127.0.0.1:{router_port}/v1", api_key="unused", max_retries=0
        )
        try:
            stream = await sdk.chat.completions.create(
                model="qwen3-max",
                messages=[{"role": "user", "content": "explain law to an alien"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
        finally:
            await sdk.close()
        record("e2e stream", "".join(c.model_dump_json() for c in chunks))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == transcript_text()
        assert len(fake.completions) == 1
        assert fake.completions[0].headers["bx-umidtoken"] == TOKEN

        _, requests = await poll(
            lambda: api.get("/api/requests?model=qwen3-max"),
            lambda r: r[0] == 200 and r[1]["requests"],
        )
        row = requests["requests"][0]
        assert row["model"] == "qwen3-max" and row["stream"] in (True, 1)
        _, responses = await poll(
            lambda: api.get("/api/responses"), lambda r: r[0] == 200 and r[1]["responses"]
        )
        answer = responses["responses"][0]
        assert answer["completion_tokens"] == transcript_usage()["output_tokens"]

        # Nothing the three processes said, answered or stored holds the token or cookies.
        assert not [line for line in daemon.lines if SECRET_MARKER in line]
        for path in ("/api/requests", "/api/responses", "/api/sessions", "/api/activity/recent"):
            status, listed = await api.get(path)
            assert status == 200
            assert SECRET_MARKER not in json.dumps(listed)
        status, _ = await api.post("/api/proxy/stop")
        assert status == 200
