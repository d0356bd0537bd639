"""Conventions shared by every route: one JSON error shape, request ids, body rules, exact ids."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime
from typing import Any

import aiohttp

from apiserver import __version__
from tests.support.daemon import Api, assert_error

TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
}
MIB = 1024 * 1024


def assert_shape(status: int, body: Any, expected_status: int, code: str) -> None:
    """assert_error plus the documented ``type`` of each status."""
    assert_error(status, body, expected_status, code)
    assert body["error"]["type"] == TYPE_BY_STATUS[expected_status], body


async def test_health_body(api: Api) -> None:
    status, body = await api.get("/api/health")
    assert status == 200
    assert set(body) == {"status", "service", "version", "timestamp"}
    assert body["status"] == "ok"
    assert body["service"] == "api-server"
    assert body["version"] == __version__
    assert datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).tzinfo is not None


async def test_unknown_routes_are_json_404(api: Api, http: aiohttp.ClientSession) -> None:
    for path in ("/api/nope", "/api", "/api/providers/qwen-proxy-default/nope", "/nope.html"):
        status, body = await api.get(path)
        assert_shape(status, body, 404, "route_not_found")
    # A trailing slash is another route, not silently the same one.
    status, body = await api.get("/api/models/qwen3-max/")
    assert_shape(status, body, 404, "route_not_found")
    async with http.get(api.base + "/api/nope") as resp:
        assert resp.content_type == "application/json"


async def test_method_not_allowed_is_json_405_with_allow(api: Api) -> None:
    async with api.session.patch(api.base + "/api/providers") as resp:
        body = await resp.json()
        allow = {m.strip() for m in resp.headers.get("Allow", "").split(",")}
    assert_shape(resp.status, body, 405, "method_not_allowed")
    assert {"GET", "POST"} <= allow
    status, body = await api.post("/api/health")
    assert_shape(status, body, 405, "method_not_allowed")
    status, body = await api.delete("/api/settings")
    assert_shape(status, body, 405, "method_not_allowed")


async def test_malformed_json_is_400_invalid_json(api: Api) -> None:
    for raw in (b"{bad", b'{"id": "x",}', b"[1, 2", b"\xff\xfe"):
        status, body = await api.post(
            "/api/models", data=raw, headers={"Content-Type": "application/json"}
        )
        assert_shape(status, body, 400, "invalid_json")
    status, _ = await api.get("/api/models/x")
    assert status == 404  # nothing was created by any of them


async def test_non_finite_numbers_are_refused(api: Api) -> None:
    # json.loads accepts NaN/Infinity/1e400, but they cannot be written back as JSON.
    for raw in (
        b'{"config": {"x": NaN}}',
        b'{"config": {"x": Infinity}}',
        b'{"config": {"x": -1e400}}',
    ):
        status, body = await api.put(
            "/api/providers/lm-studio-default/config",
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        assert_shape(status, body, 400, "invalid_json")
    status, body = await api.get("/api/providers/lm-studio-default/config")
    assert status == 200 and "x" not in body["config"]


async def test_deeply_nested_json_is_400_not_500(api: Api) -> None:
    raw = b"[" * 100_000 + b"]" * 100_000
    status, body = await api.post(
        "/api/models", data=io.BytesIO(raw), headers={"Content-Type": "application/json"}
    )
    assert_shape(status, body, 400, "invalid_json")


async def test_body_must_be_an_object(api: Api) -> None:
    for body_json in ([1, 2], "text", 3):
        status, body = await api.post("/api/models", body_json)
        assert_shape(status, body, 400, "validation_failed")
        assert body["error"]["details"] == [{"field": "body", "message": "must be a JSON object"}]
    # An empty body where one is required is the same 400.
    status, body = await api.post(
        "/api/models", data=b"", headers={"Content-Type": "application/json"}
    )
    assert_shape(status, body, 400, "validation_failed")


async def test_unpaired_surrogate_in_text_is_400_not_500(api: Api) -> None:
    raw = b'{"id": "sur", "name": "S", "description": "\\ud800"}'
    status, body = await api.post(
        "/api/models", data=raw, headers={"Content-Type": "application/json"}
    )
    assert_shape(status, body, 400, "validation_failed")
    assert body["error"]["details"][0]["field"] == "description"
    status, body = await api.get("/api/models/sur")
    assert status == 404


async def test_validation_reports_every_field(api: Api) -> None:
    status, body = await api.post(
        "/api/providers", {"id": "Bad Id", "type": "nope", "priority": "x"}
    )
    assert_shape(status, body, 400, "validation_failed")
    fields = {d["field"] for d in body["error"]["details"]}
    assert fields == {"id", "name", "type", "priority"}
    assert all(isinstance(d["message"], str) and d["message"] for d in body["error"]["details"])


async def test_other_content_types_are_415(api: Api) -> None:
    for content_type, raw in (
        ("text/plain", b'{"id": "m1", "name": "M"}'),
        ("application/x-www-form-urlencoded", b"id=m1&name=M"),
    ):
        status, body = await api.post(
            "/api/models", data=raw, headers={"Content-Type": content_type}
        )
        assert_shape(status, body, 415, "unsupported_media_type")
    # Routes that take no body refuse a foreign body as well (api.md: any write with a body).
    status, body = await api.post(
        "/api/providers/qwen-direct-default/enable",
        data=b"enabled=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_shape(status, body, 415, "unsupported_media_type")
    status, body = await api.get("/api/providers/qwen-direct-default")
    assert body["enabled"] is False  # refused before anything changed
    # A JSON content type with parameters is still JSON.
    status, body = await api.post(
        "/api/models",
        data=json.dumps({"id": "m1", "name": "M"}).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert status == 201, body


async def test_bodies_over_1_mib_are_413(api: Api) -> None:
    big = json.dumps({"id": "big", "name": "x" * (MIB + 10)}).encode()
    status, body = await api.post(
        "/api/models", data=io.BytesIO(big), headers={"Content-Type": "application/json"}
    )
    assert_shape(status, body, 413, "payload_too_large")

    async def chunks() -> Any:  # no Content-Length: the limit applies while reading
        for _ in range(17):
            yield b" " * (64 * 1024)
        yield big

    status, body = await api.post(
        "/api/models", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_shape(status, body, 413, "payload_too_large")
    status, body = await api.post(
        "/api/providers/qwen-direct-default/enable",
        data=io.BytesIO(big),
        headers={"Content-Type": "application/json"},
    )
    assert_shape(status, body, 413, "payload_too_large")
    # Just under the limit is accepted (and then validated).
    ok = json.dumps({"id": "big", "name": "n", "description": "d" * 4000}).encode()
    status, body = await api.post(
        "/api/models",
        data=io.BytesIO(ok + b" " * (MIB - len(ok) - 1)),
        headers={"Content-Type": "application/json"},
    )
    assert status == 201, body


async def test_bodyless_writes_need_no_content_type(api: Api, http: aiohttp.ClientSession) -> None:
    async with http.post(api.base + "/api/providers/lm-studio-default/disable") as resp:
        assert resp.status == 200
        assert (await resp.json())["enabled"] is False


async def test_request_id_is_echoed_or_generated(api: Api, http: aiohttp.ClientSession) -> None:
    for method, path, expected in (
        ("GET", "/api/health", 200),
        ("GET", "/api/providers/none-such", 404),
        ("GET", "/api/nope", 404),
        ("PATCH", "/api/models", 405),
    ):
        async with http.request(
            method, api.base + path, headers={"X-Request-ID": "trace-abc-123"}
        ) as resp:
            assert resp.status == expected
            assert resp.headers["X-Request-ID"] == "trace-abc-123"
    async with http.post(
        api.base + "/api/models",
        data=b"{",
        headers={"Content-Type": "application/json", "X-Request-ID": "trace-400"},
    ) as resp:
        assert resp.status == 400 and resp.headers["X-Request-ID"] == "trace-400"
    seen = set()
    for _ in range(3):
        async with http.get(api.base + "/api/health") as resp:
            seen.add(resp.headers["X-Request-ID"])
    assert len(seen) == 3 and all(seen)


async def test_ids_are_matched_exactly(api: Api) -> None:
    for path, code in (
        ("/api/providers/QWEN-PROXY-DEFAULT", "provider_not_found"),
        ("/api/providers/qwen-proxy", "provider_not_found"),
        ("/api/providers/qwen-proxy-default%20", "provider_not_found"),
        ("/api/providers/%25", "provider_not_found"),
        ("/api/providers/qwen-proxy-default%25", "provider_not_found"),
        ("/api/models/QWEN3-MAX", "model_not_found"),
        ("/api/models/qwen3", "model_not_found"),
        ("/api/models/qwen3-max.", "model_not_found"),
    ):
        status, body = await api.get(path)
        assert_shape(status, body, 404, code)
    status, body = await api.get("/api/providers/qwen-proxy-default")
    assert status == 200 and body["id"] == "qwen-proxy-default"
    # Updates and deletes never reach a near-miss row either.
    status, body = await api.delete("/api/models/QWEN3-MAX")
    assert_shape(status, body, 404, "model_not_found")
    status, body = await api.get("/api/models/qwen3-max")
    assert status == 200


async def test_conflicts_share_the_shape(api: Api) -> None:
    status, body = await api.post("/api/models", {"id": "qwen3-max", "name": "again"})
    assert_shape(status, body, 409, "model_exists")
    status, body = await api.post(
        "/api/providers", {"id": "lm-studio-default", "name": "x", "type": "lm-studio"}
    )
    assert_shape(status, body, 409, "provider_exists")


async def curl(*args: str) -> tuple[int, Any]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", "-w", "\n%{http_code}", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    text, _, code = out.decode().rpartition("\n")
    return int(code), json.loads(text)


async def test_seed_curl_examples(api: Api) -> None:
    """The three curl commands of the issue, sent by curl itself, answer as documented."""
    json_type = "Content-Type: application/json"
    status, body = await curl(
        "-X", "POST", f"{api.base}/api/qwen/credentials", "-H", json_type,
        "-d", '{"token":"test","cookies":"test","expiresAt":9999999999}',
    )  # fmt: skip
    assert status == 200
    assert body == {
        "success": True,
        "message": "Qwen credentials updated successfully",
        "expiresAt": 9999999999,
    }
    status, body = await curl("-X", "POST", f"{api.base}/api/providers/qwen-direct-default/enable")
    assert status == 200
    assert (body["id"], body["enabled"], body["message"]) == (
        "qwen-direct-default",
        True,
        "Provider enabled",
    )
    status, body = await curl(
        "-X", "POST", f"{api.base}/api/models", "-H", json_type,
        "-d", '{"id":"test-model","name":"Test Model"}',
    )  # fmt: skip
    assert status == 201
    model = body["model"]
    assert (model["id"], model["name"], model["description"], model["capabilities"]) == (
        "test-model",
        "Test Model",
        None,
        [],
    )
    status, body = await api.get("/api/qwen/credentials")
    assert (body["hasCredentials"], body["isValid"], body["expiresAt"]) == (True, True, 9999999999)
