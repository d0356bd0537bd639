"""The router with the API server: live configuration, history views, supervision end to end."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import DaemonFactory
from tests.fakes.openai_upstream import FakeUpstream
from tests.realtime.clients import PyClient
from tests.router.conftest import UpstreamFactory, openai_client
from tests.support.daemon import Api, Daemon, free_port
from tests.support.router import RouterProcess

FAKES = Path(__file__).resolve().parents[1] / "fakes"
MESSAGES = [{"role": "user", "content": "hi"}]


async def _catalog(api: Api, fakes: dict[str, FakeUpstream], priorities: dict[str, int]) -> None:
    """Disable the seeded providers; add one openai-compatible provider per fake, model 'm'."""
    for seeded in ("qwen-proxy-default", "lm-studio-default", "qwen-direct-default"):
        status, body = await api.post(f"/api/providers/{seeded}/disable")
        assert status == 200, body
    status, body = await api.post("/api/models", {"id": "m", "name": "M"})
    assert status == 201, body
    for name, fake in fakes.items():
        status, body = await api.post(
            "/api/providers",
            {
                "id": name,
                "name": name,
                "type": "openai-compatible",
                "priority": priorities[name],
                "config": {"baseURL": fake.base_url, "apiKey": f"sk-{name}-s3cr3t"},
            },
        )
        assert status == 201, body
        status, body = await api.post(f"/api/providers/{name}/models", {"model_id": "m"})
        assert status == 201, body


async def _served_by(client: Any, model: str = "m") -> str:
    raw = await client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    return str(raw.headers["x-provider-id"])


async def test_api_changes_route_the_very_next_request(
    daemon: Daemon, api: Api, upstreams: UpstreamFactory
) -> None:
    fakes = {"alpha": await upstreams("alpha"), "beta": await upstreams("beta")}
    await _catalog(api, fakes, {"alpha": 10, "beta": 5})
    router = await RouterProcess(daemon.db_path).start()
    try:
        client = openai_client(router)
        assert await _served_by(client) == "alpha"
        status, _ = await api.put("/api/providers/beta", {"priority": 20})
        assert status == 200
        assert await _served_by(client) == "beta"  # priority
        await api.post("/api/providers/beta/disable")
        assert await _served_by(client) == "alpha"  # disabled
        await api.post("/api/providers/beta/enable")
        status, _ = await api.put("/api/settings/active_provider", {"value": "alpha"})
        assert status == 200
        assert await _served_by(client) == "alpha"  # pinned despite beta's priority
        await api.put("/api/settings/active_provider", {"value": None})
        assert await _served_by(client) == "beta"
        # An unlinked model goes to every enabled provider (beta first); linking it to alpha
        # makes alpha its only provider, with the link's upstream name.
        assert await _served_by(client, "m2") == "beta"
        await api.post("/api/models", {"id": "m2", "name": "M2"})
        status, body = await api.post(
            "/api/providers/alpha/models", {"model_id": "m2", "config": {"upstreamModel": "up-m2"}}
        )
        assert status == 201, body
        assert await _served_by(client, "m2") == "alpha"
        assert fakes["alpha"].seen[-1].body["model"] == "up-m2"
        # A config change (the base URL) applies at once too.
        status, body = await api.put(
            "/api/providers/alpha/config",
            {"config": {"baseURL": fakes["beta"].base_url, "apiKey": "sk-moved-s3cr3t"}},
        )
        assert status == 200, body
        before = len(fakes["beta"].seen)
        assert await _served_by(client, "m2") == "alpha"
        assert len(fakes["beta"].seen) == before + 1
        assert fakes["beta"].seen[-1].headers["Authorization"] == "Bearer sk-moved-s3cr3t"
        await client.close()
        # No re-read while nothing changes: the table is read once per change, not per request,
        # and the router's own history writes (commits too) are not routing changes.
        reloads = len(router.logs("routing_reloaded"))
        batches = len(router.logs("history_written"))
        client = openai_client(router)
        for _ in range(20):
            await _served_by(client)
        await client.close()
        deadline = time.monotonic() + 5
        while len(router.logs("history_written")) == batches:  # a commit of our own happened
            assert time.monotonic() < deadline
            await _pause()
        client = openai_client(router)
        assert await _served_by(client) == "beta"  # the request after it, still no re-read
        await client.close()
        assert len(router.logs("routing_reloaded")) == reloads
    finally:
        assert await router.stop() == 0


async def _wait_rows(api: Api, path: str, check: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + 5
    while True:
        status, body = await api.get(path)
        assert status == 200, body
        if check(body):
            return body
        assert time.monotonic() < deadline, body
        await _pause()


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.05)


async def test_history_rows_appear_in_the_api_and_are_pruned_by_count(
    daemon: Daemon, api: Api, upstreams: UpstreamFactory
) -> None:
    fakes = {"alpha": await upstreams("alpha")}
    await _catalog(api, fakes, {"alpha": 1})
    await api.put("/api/settings/logging.logRequests", {"value": True})
    router = await RouterProcess(daemon.db_path).start()
    try:
        client = openai_client(router)
        await client.chat.completions.create(model="m", messages=MESSAGES)
        stream = await client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        async for _ in stream:
            pass
        body = await _wait_rows(api, "/api/requests", lambda b: b["total"] == 2)
        streamed, plain = body["requests"]
        assert (streamed["stream"], plain["stream"]) == (True, False)
        assert plain["provider_id"] == "alpha" and plain["model"] == "m"
        assert plain["body"]["messages"] == MESSAGES  # logging.logRequests is on
        status, detail = await api.get(f"/api/requests/{streamed['request_id']}")
        assert status == 200
        # Either shape of the item (api.md's top-level fields, or wrapped in "request").
        found = detail.get("request", detail)
        response = found.get("response") or found["responses"][0]
        assert response["status_code"] == 200
        assert response["finish_reason"] == "stop"
        assert response["total_tokens"] == 9  # from the stream's usage chunk
        assert isinstance(response["ttfb_ms"], int)
        assert response["ttfb_ms"] <= response["duration_ms"]
        assert response["error_class"] is None
        assert response["body"] is None  # logging.logResponses is off
        status, activity = await api.get("/api/activity/recent")
        assert status == 200 and activity["total"] == 2
        newest = activity["activities"][0]
        assert newest.get("metadata", newest)["status"] == "success"

        status, _ = await api.put("/api/settings/history.maxRows", {"value": 3})
        assert status == 200
        for _ in range(4):
            await client.chat.completions.create(model="m", messages=MESSAGES)
        await _wait_rows(api, "/api/requests", lambda b: b["total"] == 3)
        await client.close()
    finally:
        assert await router.stop() == 0


@pytest.mark.timeout(60)
async def test_through_the_daemon_start_crash_restart_and_chat(
    daemon_factory: DaemonFactory, upstreams: UpstreamFactory
) -> None:
    router_port = free_port()
    fake_qwen = shlex.join([sys.executable, "-u", str(FAKES / "ready_then_wait.py")])
    daemon = await daemon_factory(
        env={
            "PROVIDER_ROUTER_PORT": str(router_port),
            "QWEN_PROXY_COMMAND": fake_qwen,  # this test is about the router
            "CHILD_BACKOFF_BASE": "0.05",
            "CHILD_BACKOFF_CAP": "0.2",
            "ROUTER_API_KEY": "router-key-s3cr3t",
        }
    )
    async with aiohttp.ClientSession() as http:
        api = Api(http, daemon.url)
        fake = await upstreams("alpha")
        await _catalog(api, {"alpha": fake}, {"alpha": 3})
        events = PyClient(daemon.url, "websocket")
        await events.connect()
        try:
            status, body = await api.post("/api/proxy/start")
            assert status == 200 and body["success"] is True, body
            first = await _router_event(events, lambda r: r["state"] == "running")
            old_pid = first["pid"]
            assert isinstance(old_pid, int)

            status, body = await api.post("/api/providers/alpha/reload")
            assert body["reloaded"] is True and body["router_state"] == "running", body

            os.kill(old_pid, signal.SIGKILL)
            again = await _router_event(
                events, lambda r: r["state"] == "running" and r["pid"] != old_pid
            )
            assert again["pid"] != old_pid

            client = openai_client_at(router_port, "router-key-s3cr3t")
            answer = await client.chat.completions.create(model="m", messages=MESSAGES)
            assert answer.choices[0].message.content == "Hello from alpha"
            await client.close()
            # Without the key: 401 in the OpenAI shape.
            async with http.get(f"http://127.0.0.1:{router_port}/v1/models") as resp:
                assert resp.status == 401
                assert (await resp.json())["error"]["code"] == "invalid_api_key"
            status, body = await api.post("/api/proxy/stop")
            assert status == 200, body
        finally:
            await events.close()


def openai_client_at(port: int, key: str) -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=10
    )


async def _router_event(client: PyClient, check: Callable[[dict[str, Any]], bool]) -> Any:
    """Return the providerRouter part of the next ``proxy:status`` that satisfies ``check``."""
    while True:
        name, data = await client.receive(timeout=15)
        if name == "proxy:status" and isinstance(data, dict):
            router = data.get("providerRouter")
            if isinstance(router, dict) and check(router):
                return router
