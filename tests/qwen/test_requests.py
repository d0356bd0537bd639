"""Bad input is refused in the OpenAI error shape before any upstream call; the model list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from qwenstack_core.store import Store
from qwenstack_core.store import credentials as credential_rows
from tests.fakes.qwen_upstream import FakeQwen, fixture
from tests.qwen.conftest import ProxyFactory, post_raw
from tests.qwen.process import QwenProxyProcess
from tests.support.capture import record

GOOD = {"model": "qwen3-max", "messages": [{"role": "user", "content": "hi"}]}


def error_of(status: int, text: str, expected: int, code: str) -> dict[str, Any]:
    assert status == expected, text
    body = json.loads(text)
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"] and body["error"]["type"]
    return dict(body["error"])


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ("[]", "invalid_request", "body"),
        (json.dumps({"messages": GOOD["messages"]}), "invalid_request", "model"),
        (json.dumps({"model": "qwen3-max"}), "invalid_request", "messages"),
        (json.dumps({"model": "qwen3-max", "messages": []}), "invalid_request", "messages"),
        (
            json.dumps({"model": "qwen3-max", "messages": [{"role": "wizard", "content": "x"}]}),
            "invalid_request",
            "messages[0].role",
        ),
        (
            json.dumps({"model": "qwen3-max", "messages": [{"role": "user", "content": 42}]}),
            "invalid_request",
            "messages[0].content",
        ),
        (
            json.dumps({"model": "qwen3-max", "messages": ["hello"]}),
            "invalid_request",
            "messages[0]",
        ),
        (json.dumps({**GOOD, "stream": "yes"}), "invalid_request", "stream"),
        (
            json.dumps(
                {
                    "model": "qwen3-max",
                    "messages": [{"role": "user", "content": [{"type": "image_url"}]}],
                }
            ),
            "invalid_request",
            "messages[0].content[0]",
        ),
        (json.dumps({**GOOD, "tools": [{"type": "function"}]}), "invalid_request", None),
    ],
)
async def test_bad_requests_are_400_without_upstream_calls(
    proxy: QwenProxyProcess,
    fake: FakeQwen,
    http: aiohttp.ClientSession,
    body: str,
    code: str,
    param: str | None,
):
    status, text, headers = await post_raw(
        http,
        proxy.url + "/v1/chat/completions",
        body,
        headers={"Content-Type": "application/json"},
    )
    error = error_of(status, text, 400, code)
    assert headers["Content-Type"].startswith("application/json")
    if param is not None:
        assert error["param"] == param
    assert fake.calls == []


async def test_unknown_model_is_404_without_chat_calls(
    proxy: QwenProxyProcess, fake: FakeQwen, http: aiohttp.ClientSession
):
    status, text, _ = await post_raw(
        http, proxy.url + "/v1/chat/completions", json.dumps({**GOOD, "model": "gpt-4o"})
    )
    error_of(status, text, 404, "model_not_found")
    assert fake.new_chats == [] and fake.completions == []


async def test_oversize_body_is_413(
    proxy_factory: ProxyFactory, fake: FakeQwen, http: aiohttp.ClientSession
):
    proc = await proxy_factory({"QWEN_MAX_BODY_MB": "0.01"})
    big = json.dumps({**GOOD, "messages": [{"role": "user", "content": "x" * 20000}]})
    status, text, _ = await post_raw(http, proc.url + "/v1/chat/completions", big)
    error_of(status, text, 413, "request_too_large")
    assert fake.calls == []


async def test_unknown_route_and_method_are_json(
    proxy: QwenProxyProcess, http: aiohttp.ClientSession
):
    async with http.get(proxy.url + "/v1/nothing") as resp:
        error_of(resp.status, await resp.text(), 404, "not_found")
    async with http.get(proxy.url + "/v1/chat/completions") as resp:
        error_of(resp.status, await resp.text(), 405, "method_not_allowed")


async def test_models_lists_active_upstream_models_and_is_cached(
    proxy: QwenProxyProcess, fake: FakeQwen, http: aiohttp.ClientSession
):
    async with http.get(proxy.url + "/v1/models") as resp:
        assert resp.status == 200
        body = await resp.json()
    record("qwen models", json.dumps(body))
    expected = [m["id"] for m in fixture("models_response.json")["data"] if m["info"]["is_active"]]
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == expected
    first = body["data"][0]
    assert first["object"] == "model" and first["owned_by"] == "qwen"
    assert first["context_length"] == 262144
    async with http.get(proxy.url + "/v1/models/qwen3-coder-plus") as resp:
        assert resp.status == 200
        assert (await resp.json())["id"] == "qwen3-coder-plus"
    async with http.get(proxy.url + "/v1/models/nope") as resp:
        error_of(resp.status, await resp.text(), 404, "model_not_found")
    assert len(fake.calls_to("/api/models")) == 1  # cached


async def test_inactive_models_are_left_out(
    proxy: QwenProxyProcess, fake: FakeQwen, http: aiohttp.ClientSession
):
    models = fixture("models_response.json")
    models["data"][1]["info"]["is_active"] = False
    fake.plan("/api/models", 200, json.dumps(models))
    async with http.get(proxy.url + "/v1/models") as resp:
        ids = [m["id"] for m in (await resp.json())["data"]]
    assert models["data"][1]["id"] not in ids and len(ids) == len(models["data"]) - 1


async def test_models_fall_back_to_the_stored_catalogue(
    proxy: QwenProxyProcess, fake: FakeQwen, http: aiohttp.ClientSession, db_path: Path
):
    for _ in range(4):
        fake.plan("/api/models", 503, b"down", content_type="text/plain")
    async with http.get(proxy.url + "/v1/models") as resp:
        assert resp.status == 200
        ids = [m["id"] for m in (await resp.json())["data"]]
    assert ids == ["qwen3-coder-plus", "qwen3-max", "qwen3-vl-32b", "qwen3-vl-plus"]

    store = Store(db_path)
    await store.open()
    await store.write(credential_rows.delete)
    await store.close()
    async with http.get(proxy.url + "/v1/models") as resp:  # no credentials: stored list
        assert resp.status == 200
        assert len((await resp.json())["data"]) == 4
