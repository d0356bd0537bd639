"""Secrets are masked at any depth, cannot be downgraded, and stay bound to their origin."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.support.capture import SECRET_MARKER
from tests.support.daemon import Api, assert_error

API_KEY = "sk-s3cr3t-bound-1"
BACKUP = "bk-s3cr3t-2"
NESTED = "nk-s3cr3t-3"


class FakeProvider:
    """An OpenAI-compatible model list on a loopback port that records what it was sent."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        self.bodies: list[str] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def models(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        self.bodies.append(json.dumps(dict(request.headers)))
        return web.json_response({"object": "list", "data": [{"id": "fake-model"}]})

    async def start(self) -> FakeProvider:
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeProvider, FakeProvider]]:
    first, second = await FakeProvider().start(), await FakeProvider().start()
    yield first, second
    for fake in (first, second):
        assert fake.runner is not None
        await fake.runner.cleanup()


async def create(api: Api, base_url: str) -> None:
    status, body = await api.post(
        "/api/providers",
        {
            "id": "bound",
            "name": "Bound",
            "type": "openai-compatible",
            "config": {"baseURL": base_url, "apiKey": API_KEY},
        },
    )
    assert status == 201, body


async def test_test_call_sends_the_key_only_to_its_origin(
    api: Api, fakes: tuple[FakeProvider, FakeProvider]
) -> None:
    home, elsewhere = fakes
    await create(api, home.url)
    status, body = await api.post("/api/providers/bound/test")
    assert status == 200 and body["healthy"] is True
    assert home.authorizations == [f"Bearer {API_KEY}"]

    # Moving baseURL to another origin without the key drops it, and the answer says so.
    status, body = await api.patch("/api/providers/bound/config/baseURL", {"value": elsewhere.url})
    assert status == 200, body
    assert body["secrets_dropped"] == ["apiKey"] and "apiKey" in body["secrets_message"]
    status, body = await api.post("/api/providers/bound/test")
    assert status == 200
    assert elsewhere.authorizations == [None]  # the fake server received no key
    assert API_KEY not in "".join(elsewhere.bodies)
    status, body = await api.get("/api/providers/bound/config")
    assert "apiKey" not in body["config"]


async def test_moving_with_the_key_in_the_same_request_keeps_it(
    api: Api, fakes: tuple[FakeProvider, FakeProvider]
) -> None:
    home, elsewhere = fakes
    await create(api, home.url)
    new_key = API_KEY + "-new"
    status, body = await api.put(
        "/api/providers/bound/config", {"config": {"baseURL": elsewhere.url, "apiKey": new_key}}
    )
    assert status == 200, body
    assert "secrets_dropped" not in body and body["config"]["apiKey"] == "***"
    await api.post("/api/providers/bound/test")
    assert elsewhere.authorizations == [f"Bearer {new_key}"]


async def test_same_origin_path_change_keeps_the_key(
    api: Api, fakes: tuple[FakeProvider, FakeProvider]
) -> None:
    home, _ = fakes
    await create(api, home.url)
    status, body = await api.put(
        "/api/providers/bound/config", {"config": {"baseURL": home.url + "/"}}
    )
    assert status == 200 and "secrets_dropped" not in body
    await api.post("/api/providers/bound/test")
    assert home.authorizations == [f"Bearer {API_KEY}"]


async def test_type_change_or_baseurl_removal_drops_the_key(
    api: Api, fakes: tuple[FakeProvider, FakeProvider]
) -> None:
    home, _ = fakes
    await create(api, home.url)
    status, body = await api.delete("/api/providers/bound/config/baseURL")
    assert status == 200 and body["secrets_dropped"] == ["apiKey"]
    status, body = await api.put(
        "/api/providers/bound/config", {"config": {"baseURL": home.url, "apiKey": API_KEY}}
    )
    assert status == 200 and "secrets_dropped" not in body
    status, body = await api.put("/api/providers/bound", {"type": "lm-studio"})
    assert status == 200  # baseURL is still set: same origin, the key stays
    assert "secrets_dropped" not in body


async def test_secret_names_cannot_be_downgraded_and_are_masked_at_any_depth(api: Api) -> None:
    status, body = await api.patch(
        "/api/providers/lm-studio-default/config/backupApiKey",
        {"value": BACKUP, "is_sensitive": False},
    )
    assert status == 200, body
    assert body["value"] == "***" and body["is_sensitive"] is True
    status, body = await api.patch(
        "/api/providers/lm-studio-default/config/extra",
        {
            "value": {
                "headers": {"x-access-key": NESTED, "X-Api-Key": NESTED},
                "deep": [[{"access_key": NESTED, "maxTokens": 5}]],
            },
            "is_sensitive": False,
        },
    )
    assert status == 200, body
    assert SECRET_MARKER not in json.dumps(body)
    assert body["value"]["deep"][0][0]["maxTokens"] == 5  # not a secret: readable
    status, body = await api.post(
        "/api/providers/lm-studio-default/models",
        {"model_id": "qwen3-max", "config": {"nested": {"x-access-key": NESTED}}},
    )
    assert status == 201 and SECRET_MARKER not in json.dumps(body)
    for path in (
        "/api/providers/lm-studio-default",
        "/api/providers/lm-studio-default/config",
        "/api/providers/lm-studio-default/models",
        "/api/models/qwen3-max",
    ):
        status, body = await api.get(path)
        assert status == 200 and SECRET_MARKER not in json.dumps(body), path
    status, body = await api.get("/api/providers/lm-studio-default/config?mask=false")
    assert SECRET_MARKER not in json.dumps(body)


async def test_unknown_provider_move_is_404(api: Api) -> None:
    status, body = await api.patch("/api/providers/none-such/config/baseURL", {"value": "http://x"})
    assert_error(status, body, 404, "provider_not_found")
