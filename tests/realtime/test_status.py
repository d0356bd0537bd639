"""proxy:status from the StatusService (in-process app), and subscriber-only events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer

from apiserver import keys
from apiserver.app import create_app
from apiserver.config import Settings
from apiserver.services.status import aggregate, stopped_child
from tests.realtime.contract import check_event
from tests.support.capture import record
from tests.support.processes import free_port

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


def child(state: str, port: int = 1) -> dict[str, Any]:
    running = state in ("running", "stopping")
    return {**stopped_child(port), "state": state, "running": running}


@pytest.mark.parametrize(
    ("router", "qwen", "expected"),
    [
        ("running", "running", "running"),
        ("stopped", "stopped", "stopped"),
        ("failed", "stopped", "stopped"),
        ("starting", "stopped", "starting"),
        ("backoff", "starting", "starting"),
        ("running", "stopped", "partial"),
        ("running", "starting", "partial"),
        ("stopping", "running", "partial"),
        ("stopping", "stopped", "stopped"),
    ],
)
def test_aggregate_status(router: str, qwen: str, expected: str) -> None:
    assert aggregate({"providerRouter": child(router), "qwenProxy": child(qwen)}) == expected


@pytest.fixture
async def app(tmp_path: Path) -> web.Application:
    settings = Settings(
        database_path=tmp_path / "db.sqlite",
        api_port=0,
        qwen_proxy_port=free_port(),
        provider_router_port=free_port(),
    )
    return create_app(settings)


@pytest.fixture
async def sio_url(app: web.Application, aiohttp_server: ServerFactory) -> str:
    server = await aiohttp_server(app)
    return str(server.make_url("/"))


@pytest.fixture
async def simple_clients() -> AsyncIterator[Callable[[], socketio.AsyncSimpleClient]]:
    made: list[socketio.AsyncSimpleClient] = []

    def factory() -> socketio.AsyncSimpleClient:
        client = socketio.AsyncSimpleClient(handle_sigint=False)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.disconnect()


async def receive(client: socketio.AsyncSimpleClient) -> tuple[str, Any]:
    name, data = await client.receive(timeout=2)
    record(f"event {name}", json.dumps(data))
    return name, data


async def test_publish_status_on_child_transitions(
    app: web.Application,
    sio_url: str,
    simple_clients: Callable[[], socketio.AsyncSimpleClient],
) -> None:
    children: dict[str, Mapping[str, Any]] = {
        "providerRouter": child("stopped", 3001),
        "qwenProxy": child("stopped", 3000),
    }
    status_service = app[keys.STATUS]
    status_service.set_children_status(lambda: children)
    client = simple_clients()
    await client.connect(sio_url, transports=["websocket"])
    name, data = await receive(client)
    assert name == "proxy:status"
    check_event(name, data)
    assert data["status"] == "stopped" and data["providerRouter"]["port"] == 3001
    seq = data["seq"]

    # The supervisor's listener calls notify() synchronously on each transition.
    children["qwenProxy"] = {**child("starting", 3000), "pid": 4242}
    status_service.notify("qwen-proxy starting")
    children["qwenProxy"] = {**child("running", 3000), "pid": 4242, "uptime": 0.5}
    status_service.notify("qwen-proxy running")
    name, data = await receive(client)
    assert (name, data["status"], data["message"]) == ("proxy:status", "starting",
                                                       "qwen-proxy starting")  # fmt: skip
    assert data["qwenProxy"]["pid"] == 4242 and data["seq"] == seq + 1
    name, data = await receive(client)
    assert (data["status"], data["seq"]) == ("partial", seq + 2)
    assert data["qwenProxy"]["state"] == "running"

    children["providerRouter"] = child("running", 3001)
    payload = await status_service.publish_status("Proxy servers started")
    name, data = await receive(client)
    check_event(name, data)
    assert data["status"] == "running" and data["message"] == "Proxy servers started"
    assert data["seq"] == seq + 3
    assert {k: v for k, v in data.items() if k not in ("seq", "instance")} == payload


async def test_subscriber_only_events(
    app: web.Application,
    sio_url: str,
    simple_clients: Callable[[], socketio.AsyncSimpleClient],
) -> None:
    plain, logs = simple_clients(), simple_clients()
    for client in (plain, logs):
        await client.connect(sio_url, transports=["polling"])
        name, status = await receive(client)
        assert name == "proxy:status"
    ack = await logs.call("subscribe", {"events": ["proxy:log", "models:updated"]})
    assert ack == {"events": ["models:updated", "proxy:log"]}

    events = app[keys.EVENTS]
    line = {"child": "qwen-proxy", "stream": "stdout", "line": "listening", "ts": "now"}
    events.publish("proxy:log", line, subscribers_only=True)
    events.publish("models:updated", {"action": "updated", "modelId": None, "items": [],
                                      "total": 0, "timestamp": "2026-01-01T00:00:00Z"})  # fmt: skip
    name, data = await receive(logs)
    assert name == "proxy:log" and data["line"] == "listening"
    assert data["seq"] == status["seq"]  # a subscriber-only event consumes no seq
    name, data = await receive(logs)
    assert (name, data["seq"]) == ("models:updated", status["seq"] + 1)
    name, data = await receive(plain)  # never subscribed: no proxy:log, no gap
    assert (name, data["seq"]) == ("models:updated", status["seq"] + 1)

    stats = app[keys.REALTIME].stats()
    assert stats["clients"]["byTransport"]["polling"] == 2
    assert stats["events"] == {"models:updated": 1, "proxy:log": 1}
