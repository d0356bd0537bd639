"""/api/proxy in process: the proxy service's answers, its remembered wish and its 404s."""

from __future__ import annotations

from typing import Any

from apiserver.services.proxy import DESIRED_KEY, PROVIDER_ROUTER, QWEN_PROXY
from qwenstack_core.store import Store, supervision
from tests.support.daemon import Api, assert_error
from tests.support.fake_supervisor import FakeSupervisor

KEYS = ("qwenProxy", "providerRouter")


def states(body: dict[str, Any]) -> dict[str, str]:
    return {key: body[key]["state"] for key in KEYS}


async def desired(settings_path: Any) -> object:
    store = Store(settings_path, migrate=False)
    await store.open()
    try:
        return await store.read(lambda c: supervision.get_state(c, DESIRED_KEY))
    finally:
        await store.close()


async def test_start_stop_answers_and_remembers(
    api: Api, supervisor: FakeSupervisor, settings: Any
) -> None:
    status, body = await api.post("/api/proxy/start")
    assert status == 200, body
    assert body["success"] is True and body["status"] == "running"
    assert body["message"] == "Proxy servers started"
    assert states(body) == {"qwenProxy": "running", "providerRouter": "running"}
    status, body = await api.post("/api/proxy/start")
    assert body["success"] is True and body["message"] == "Proxy servers are already running"
    assert supervisor.commands == [("start_all", None)]  # the second start ran nothing
    assert await desired(settings.database_path) == {QWEN_PROXY: True, PROVIDER_ROUTER: True}

    status, body = await api.post("/api/proxy/stop")
    assert status == 200 and body["success"] is True and body["status"] == "stopped"
    assert states(body) == {"qwenProxy": "stopped", "providerRouter": "stopped"}
    assert supervisor.commands[-1] == ("stop_all", None)
    assert await desired(settings.database_path) == {QWEN_PROXY: False, PROVIDER_ROUTER: False}


async def test_a_child_that_fails_makes_the_answer_say_so(
    api: Api, supervisor: FakeSupervisor
) -> None:
    supervisor.refusals[PROVIDER_ROUTER] = "port 3001 in use by pid 812 (node)"
    status, body = await api.post("/api/proxy/start")
    assert status == 200
    assert body["success"] is False
    assert body["status"] == "partial"
    assert body["message"] == (
        "Proxy servers started, but provider-router is failed (port 3001 in use by pid 812 (node))"
    )
    assert body["providerRouter"]["reason"] == "port 3001 in use by pid 812 (node)"


async def test_child_commands_logs_and_unknown_children(
    api: Api, supervisor: FakeSupervisor
) -> None:
    status, body = await api.post("/api/proxy/qwen-proxy/start")
    assert status == 200 and body["success"] is True
    assert states(body) == {"qwenProxy": "running", "providerRouter": "stopped"}
    status, body = await api.post("/api/proxy/qwen-proxy/restart")
    assert status == 200 and body["message"] == "qwen-proxy restarted"
    assert supervisor.commands == [("start", QWEN_PROXY), ("restart", QWEN_PROXY)]

    line = {"ts": "2026-01-01T00:00:00.000Z", "stream": "stdout", "line": "listening"}
    supervisor.child(QWEN_PROXY).lines.extend([line, {**line, "line": "ready"}])
    status, body = await api.get("/api/proxy/qwen-proxy/logs?lines=1")
    assert status == 200
    assert body == {"child": QWEN_PROXY, "lines": [{**line, "line": "ready"}]}

    for method, path in (
        ("POST", "/api/proxy/nope/start"),
        ("POST", "/api/proxy/nope/stop"),
        ("POST", "/api/proxy/nope/restart"),
        ("GET", "/api/proxy/nope/logs"),
    ):
        status, body = await api.request(method, path)
        assert_error(status, body, 404, "unknown_child")
    status, body = await api.get("/api/proxy/qwen-proxy/logs?lines=0")
    assert_error(status, body, 400, "validation_failed")
    assert len(supervisor.commands) == 2  # refused requests ran nothing
