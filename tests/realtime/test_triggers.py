"""Every trigger of the seed emits its event once, with every seed field; nothing else emits.

Runs with python-socketio's client and Node's socket.io-client, each over websocket and over
polling. "Nothing else emits" is proven without sleeping: after failed writes and reads, the
next event a client receives is the one of the next successful write, with ``seq`` exactly one
more than the previous event's.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import DaemonFactory
from tests.realtime.clients import EventClient
from tests.realtime.conftest import CLIENT_MATRIX, Connect
from tests.realtime.contract import check_event
from tests.support.daemon import Api

PROVIDER = "rt-provider"
MODEL = "rt-model"
CREDENTIALS = {"token": "s3cr3t-token", "cookies": "s3cr3t=cookie", "expiresAt": 4102444800}

# (method, path, body, expected status, event, action, id field value); event None: no event.
Step = tuple[str, str, Any, int, str | None, str | None, str | None]
STEPS: list[Step] = [
    ("POST", "/api/qwen/credentials", CREDENTIALS, 200, "credentials:updated", "updated", None),
    ("GET", "/api/qwen/credentials", None, 200, None, None, None),
    ("POST", "/api/qwen/credentials", {"token": ""}, 400, None, None, None),
    ("DELETE", "/api/qwen/credentials", None, 200, "credentials:updated", "deleted", None),
    (
        "POST",
        "/api/providers",
        {
            "id": PROVIDER,
            "name": "RT provider",
            "type": "openai-compatible",
            "config": {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "sk-s3cr3t-provider"},
        },
        201,
        "providers:updated",
        "created",
        PROVIDER,
    ),
    (
        "POST",
        "/api/providers",
        {"id": PROVIDER, "name": "Other", "type": "lm-studio"},
        409,
        None,
        None,
        None,
    ),  # fmt: skip
    ("GET", "/api/providers", None, 200, None, None, None),
    ("GET", f"/api/providers/{PROVIDER}", None, 200, None, None, None),
    (
        "PUT",
        f"/api/providers/{PROVIDER}",
        {"priority": 7},
        200,
        "providers:updated",
        "updated",
        PROVIDER,
    ),  # fmt: skip
    ("PUT", "/api/providers/none-such", {"priority": 7}, 404, None, None, None),
    ("PUT", f"/api/providers/{PROVIDER}", {}, 400, None, None, None),
    (
        "POST",
        f"/api/providers/{PROVIDER}/disable",
        None,
        200,
        "providers:updated",
        "disabled",
        PROVIDER,
    ),  # fmt: skip
    (
        "POST",
        f"/api/providers/{PROVIDER}/enable",
        None,
        200,
        "providers:updated",
        "enabled",
        PROVIDER,
    ),  # fmt: skip
    ("POST", "/api/providers/none-such/enable", None, 404, None, None, None),
    (
        "POST",
        f"/api/providers/{PROVIDER}/reload",
        None,
        200,
        "providers:updated",
        "reloaded",
        PROVIDER,
    ),  # fmt: skip
    ("POST", "/api/providers/none-such/reload", None, 404, None, None, None),
    # Config and model-link changes count as "updated".
    (
        "PUT",
        f"/api/providers/{PROVIDER}/config",
        {"config": {"timeout": 5000}},
        200,
        "providers:updated",
        "updated",
        PROVIDER,
    ),  # fmt: skip
    (
        "PATCH",
        f"/api/providers/{PROVIDER}/config/timeout",
        {"value": 6000},
        200,
        "providers:updated",
        "updated",
        PROVIDER,
    ),  # fmt: skip
    ("PATCH", f"/api/providers/{PROVIDER}/config/timeout", {"value": -1}, 400, None, None, None),
    (
        "DELETE",
        f"/api/providers/{PROVIDER}/config/timeout",
        None,
        200,
        "providers:updated",
        "updated",
        PROVIDER,
    ),  # fmt: skip
    ("GET", f"/api/providers/{PROVIDER}/config", None, 200, None, None, None),
    (
        "POST",
        "/api/models",
        {"id": MODEL, "name": "RT model"},
        201,
        "models:updated",
        "created",
        MODEL,
    ),  # fmt: skip
    ("POST", "/api/models", {"id": MODEL, "name": "RT model"}, 409, None, None, None),
    ("GET", "/api/models", None, 200, None, None, None),
    (
        "PUT",
        f"/api/models/{MODEL}",
        {"name": "RT model 2"},
        200,
        "models:updated",
        "updated",
        MODEL,
    ),  # fmt: skip
    ("PUT", "/api/models/none-such", {"name": "x"}, 404, None, None, None),
    (
        "POST",
        f"/api/providers/{PROVIDER}/models",
        {"model_id": MODEL},
        201,
        "providers:updated",
        "updated",
        PROVIDER,
    ),  # fmt: skip
    ("POST", f"/api/providers/{PROVIDER}/models", {"model_id": MODEL}, 409, None, None, None),
    (
        "PUT",
        f"/api/providers/{PROVIDER}/models/{MODEL}/default",
        None,
        200,
        "providers:updated",
        "updated",
        PROVIDER,
    ),  # fmt: skip
    (
        "DELETE",
        f"/api/providers/{PROVIDER}/models/{MODEL}",
        None,
        200,
        "providers:updated",
        "updated",
        PROVIDER,
    ),  # fmt: skip
    ("DELETE", f"/api/providers/{PROVIDER}/models/{MODEL}", None, 404, None, None, None),
    (
        "PUT",
        "/api/settings/server.timeout",
        {"value": 60000},
        200,
        "settings:updated",
        "updated",
        None,
    ),  # fmt: skip
    ("PUT", "/api/settings/server.timeout", {"value": "soon"}, 400, None, None, None),
    ("DELETE", f"/api/models/{MODEL}", None, 200, "models:updated", "deleted", MODEL),
    ("DELETE", f"/api/models/{MODEL}", None, 404, None, None, None),
    ("DELETE", f"/api/providers/{PROVIDER}", None, 200, "providers:updated", "deleted", PROVIDER),
    ("DELETE", f"/api/providers/{PROVIDER}", None, 404, None, None, None),
    # Proxy control: proxy:status to everyone (both children are stopped here already).
    ("GET", "/api/proxy/status", None, 200, None, None, None),
    ("POST", "/api/proxy/stop", None, 200, "proxy:status", None, None),
    ("POST", "/api/proxy/none-such/stop", None, 404, None, None, None),
]
ID_FIELD = {"providers:updated": "providerId", "models:updated": "modelId"}


async def run_steps(api: Api, client: EventClient, seq: int) -> int:
    """Run STEPS; after each successful write, its event must be the very next one."""
    for method, path, body, status, event, action, target in STEPS:
        got, resp = await api.request(method, path, body)
        assert got == status, (method, path, got, resp)
        if event is None:
            continue  # proven silent by the next expected event's seq
        data = await client.expect(event)
        check_event(event, data)
        assert data.get("action") == action, (method, path, data.get("action"))
        assert data["seq"] == seq + 1, f"{method} {path}: seq {data['seq']} after {seq}"
        if event in ID_FIELD:
            assert data[ID_FIELD[event]] == target
        seq = data["seq"]
    return seq


@pytest.mark.parametrize(("kind", "transport"), CLIENT_MATRIX)
async def test_every_seed_trigger_emits_once(
    daemon_factory: DaemonFactory,
    http: aiohttp.ClientSession,
    connect: Connect,
    kind: str,
    transport: str,
) -> None:
    daemon = await daemon_factory()
    api = Api(http, daemon.url)
    client = await connect(daemon, kind, transport, greeting=False)
    status = await client.expect("proxy:status")  # right after connect
    check_event("proxy:status", status)
    assert status["status"] == "stopped"
    assert status["providerRouter"]["running"] is False
    assert status["qwenProxy"]["pid"] is None
    seq = await run_steps(api, client, status["seq"])

    # A last write: nothing arrived in between, and nothing arrives twice.
    got, _ = await api.post("/api/providers/lm-studio-default/disable")
    assert got == 200
    data = await client.expect("providers:updated")
    assert data["seq"] == seq + 1 and data["action"] == "disabled"
    assert client.pending() == []

    # Reconnect: proxy:status again, with the current seq (not consuming one).
    await client.close()
    again = await connect(daemon, kind, transport, greeting=False)
    status = await again.expect("proxy:status")
    check_event("proxy:status", status)
    assert status["seq"] == seq + 1
    assert status["instance"] == data["instance"]
    assert status["providers"]["enabled"] == data["enabled"]


async def test_deleting_the_active_provider_announces_the_cleared_setting(
    daemon_factory: DaemonFactory, connect: Connect, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory()
    api = Api(http, daemon.url)
    status, _ = await api.put("/api/settings/active_provider", {"value": "lm-studio-default"})
    assert status == 200
    client = await connect(daemon)
    status, _ = await api.delete("/api/providers/lm-studio-default")
    assert status == 200
    deleted = await client.expect("providers:updated")
    assert deleted["action"] == "deleted"
    cleared = await client.expect("settings:updated")
    assert cleared["key"] == "active_provider"
    assert cleared["settings"]["active_provider"] is None
    assert cleared["seq"] == deleted["seq"] + 1
