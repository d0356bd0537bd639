"""Hundreds of concurrent writes against the running daemon end consistent."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.daemon import Api, Daemon

Op = tuple[str, str, Any, frozenset[int]]


async def run_all(api: Api, ops: list[Op]) -> list[tuple[Op, int, Any]]:
    """Send every op at once; check each status is one the op allows (never a 500)."""
    results = await asyncio.gather(*(api.request(m, p, b) for m, p, b, _ in ops))
    out = []
    for op, (status, body) in zip(ops, results, strict=True):
        assert status in op[3], (op[:3], status, body)
        out.append((op, status, body))
    return out


@pytest.fixture
async def api(daemon: Daemon) -> AsyncIterator[Api]:
    """A client without aiohttp's 100-connection cap: every request really is in flight."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield Api(session, daemon.url)


def ok(*codes: int) -> frozenset[int]:
    return frozenset(codes)


async def test_concurrent_creates_updates_deletes(api: Api) -> None:
    # Round 1 (220 requests): models and providers created at once, every model id twice,
    # and ten providers racing for one name.
    ops: list[Op] = []
    for i in range(100):
        ops.append(("POST", "/api/models", {"id": f"m-{i:03}", "name": f"Model {i}"}, ok(201, 409)))
    for i in range(50):
        ops.append(("POST", "/api/models", {"id": f"m-{i:03}", "name": "dup"}, ok(201, 409)))
    for i in range(60):
        ops.append(
            (
                "POST",
                "/api/providers",
                {"id": f"p-{i:03}", "name": f"P {i}", "type": "openai-compatible"},
                ok(201),
            )
        )
    for i in range(10):
        ops.append(
            (
                "POST",
                "/api/providers",
                {"id": f"same-name-{i}", "name": "Same", "type": "lm-studio"},
                ok(201, 409),
            )
        )
    results = await run_all(api, ops)
    created = Counter(op[2]["id"] for op, status, _ in results if status == 201)
    assert all(n == 1 for n in created.values())  # each id created exactly once
    assert {f"m-{i:03}" for i in range(100)} <= set(created)
    conflicts = Counter(body["error"]["code"] for _, status, body in results if status == 409)
    assert conflicts == {"model_exists": 50, "provider_name_taken": 9}

    # Round 2 (250 requests): update, delete, link and re-delete at once.
    ops = []
    for i in range(50):  # rename models 0..49
        ops.append(("PUT", f"/api/models/m-{i:03}", {"name": f"Renamed {i}"}, ok(200)))
    for i in range(50, 100):  # delete models 50..99, each twice
        ops.append(("DELETE", f"/api/models/m-{i:03}", None, ok(200, 404)))
        ops.append(("DELETE", f"/api/models/m-{i:03}", None, ok(200, 404)))
    for i in range(30):  # reprioritise the providers that stay
        ops.append(("PUT", f"/api/providers/p-{i:03}", {"priority": i}, ok(200)))
    for i in range(30, 60):  # update and delete the others at the same time
        ops.append(("PUT", f"/api/providers/p-{i:03}", {"priority": 1}, ok(200, 404)))
        ops.append(("DELETE", f"/api/providers/p-{i:03}", None, ok(200, 404)))
    for i in range(50):  # link renamed models to the staying providers
        ops.append(
            (
                "POST",
                f"/api/providers/p-{i % 30:03}/models",
                {"model_id": f"m-{i:03}", "is_default": True},
                ok(201),
            )
        )
    for i in range(10):  # toggle seeded providers
        action = "disable" if i % 2 else "enable"
        ops.append(("POST", f"/api/providers/lm-studio-default/{action}", None, ok(200)))
    results = await run_all(api, ops)
    deletes = Counter((op[1], status) for op, status, _ in results if op[0] == "DELETE")
    for i in range(50, 100):
        assert deletes[(f"/api/models/m-{i:03}", 200)] == 1
        assert deletes[(f"/api/models/m-{i:03}", 404)] == 1
    for i in range(30, 60):
        assert deletes[(f"/api/providers/p-{i:03}", 200)] == 1

    # The end state is exactly what the successful writes describe.
    status, body = await api.get("/api/models")
    ids = [m["id"] for m in body["models"]]
    assert len(ids) == len(set(ids)) == body["total"] == 4 + 50
    assert {m["name"] for m in body["models"] if m["id"].startswith("m-")} == {
        f"Renamed {i}" for i in range(50)
    }
    status, body = await api.get("/api/providers")
    ids = [p["id"] for p in body["providers"]]
    assert len(ids) == len(set(ids)) == body["total"] == 3 + 30 + 1
    assert sorted(ids) == sorted(
        ["qwen-proxy-default", "lm-studio-default", "qwen-direct-default"]
        + [f"p-{i:03}" for i in range(30)]
        + [next(k for k in created if k.startswith("same-name-"))]
    )
    priorities = {p["id"]: p["priority"] for p in body["providers"]}
    assert all(priorities[f"p-{i:03}"] == i for i in range(30))
    for i in range(30):
        status, body = await api.get(f"/api/providers/p-{i:03}/models")
        linked = sorted(m["id"] for m in body["models"])
        expected = sorted(f"m-{j:03}" for j in (i, i + 30) if j < 50)
        assert linked == expected
        assert sum(m["is_default"] for m in body["models"]) == 1  # never two defaults


async def test_concurrent_link_and_settings_races(api: Api) -> None:
    # 200 requests: everyone links the same model and sets the default; bulk settings race.
    ops: list[Op] = []
    for _ in range(50):
        ops.append(
            (
                "POST",
                "/api/providers/lm-studio-default/models",
                {"model_id": "qwen3-max", "is_default": True},
                ok(201, 409),
            )
        )
    for model in ("qwen3-coder-plus", "qwen3-vl-plus", "qwen3-vl-32b") * 20:
        ops.append(
            ("PUT", f"/api/providers/qwen-proxy-default/models/{model}/default", None, ok(200))
        )
    for i in range(90):
        ops.append(
            (
                "POST",
                "/api/settings/bulk",
                {"settings": {"server.timeout": 1000 + i, "logging.level": "debug"}}
                if i % 3
                else {"settings": {"server.timeout": 2000, "logging.level": "x"}},
                ok(200) if i % 3 else ok(400),
            )
        )
    results = await run_all(api, ops)
    links = Counter(status for op, status, _ in results if op[1].endswith("/models"))
    assert links == {201: 1, 409: 49}
    status, body = await api.get("/api/providers/qwen-proxy-default/models")
    assert sum(m["is_default"] for m in body["models"]) == 1
    status, body = await api.get("/api/settings/server.timeout")
    # The failing bulk writes (2000) never landed; one of the good ones is the last.
    assert body["value"] in {1000 + i for i in range(90) if i % 3}
    status, body = await api.get("/api/settings/logging.level")
    assert body["value"] == "debug"
