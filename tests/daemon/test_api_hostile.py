"""Inputs that once gave a 500 or an off-contract answer: each is a 4xx in the one error shape."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from typing import Any

import aiohttp
import pytest

from tests.conftest import DaemonFactory
from tests.support.capture import record
from tests.support.daemon import Api, Daemon, assert_error

TOKEN = "tok-s3cr3t-hostile"


async def raw_request(daemon: Daemon, data: bytes) -> tuple[int, dict[str, str], Any]:
    """Send raw bytes on a fresh connection; return the status, headers and parsed body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ")[1])
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            body = await reader.readexactly(length)
    finally:
        writer.close()
    text = body.decode()
    record("raw", text)
    try:
        return status, headers, json.loads(text)
    except ValueError:
        return status, headers, text


def get(path: bytes, *extra: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(extra) + b"\r\n"


def post(path: bytes, body: bytes, *headers: bytes) -> bytes:
    head = b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    head += b"".join(h + b"\r\n" for h in headers)
    if not any(h.lower().startswith(b"content-length") for h in headers):
        head += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    return head + b"\r\n" + body


MODEL = b'{"id": "m-enc", "name": "Encoded"}'


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"G@T /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", id="bad-method"),
        pytest.param(get(b"/api/\xff\xfe\x01health"), id="raw-bytes-in-path"),
        pytest.param(
            post(
                b"/api/models",
                b"5\r\nhello\r\n0\r\n\r\n",
                b"Content-Type: application/json",
                b"Transfer-Encoding: chunked",
                b"Content-Length: 5",
            ),
            id="te-and-cl",
        ),
        pytest.param(
            post(
                b"/api/models",
                b"zz\r\nhello\r\n0\r\n\r\n",
                b"Content-Type: application/json",
                b"Transfer-Encoding: chunked",
            ),
            id="bad-chunk-size",
        ),
        pytest.param(b"GET /api/health HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n", id="bad-version"),
    ],
)
async def test_malformed_http_is_a_json_400_and_one_warning(
    daemon: Daemon, request_bytes: bytes
) -> None:
    status, headers, body = await raw_request(daemon, request_bytes)
    assert status == 400, body
    assert headers["content-type"].startswith("application/json")
    assert_error(status, body, 400, body["error"]["code"])
    assert body["error"]["code"] in {"malformed_request", "invalid_body"}
    assert "HTTP/1.1" not in body["error"]["message"]  # the request line is not echoed
    if body["error"]["code"] == "malformed_request":
        entry = await daemon.wait_for_log("malformed_request")
        assert entry["level"] == "warning" and "exception" not in entry
    assert not [line for line in daemon.lines if "Traceback" in line]
    status, _, body = await raw_request(daemon, get(b"/api/health", b"Connection: close\r\n"))
    assert status == 200  # the daemon carries on


async def test_malformed_http_warnings_are_rate_limited(daemon: Daemon) -> None:
    for _ in range(30):
        status, _, _ = await raw_request(daemon, b"G@T / HTTP/1.1\r\n\r\n")
        assert status == 400
    await daemon.wait_for_log("malformed_request")
    await raw_request(daemon, get(b"/api/health", b"Connection: close\r\n"))
    assert 1 <= len(daemon.logs("malformed_request")) <= 10


@pytest.mark.parametrize("encoding", [b"br", b"zstd", b"compress", b"gzip, br"])
async def test_unaccepted_content_encoding_is_415(daemon: Daemon, encoding: bytes) -> None:
    status, _, body = await raw_request(
        daemon,
        post(
            b"/api/models",
            b"\x8b\x01\x80garbage",
            b"Content-Type: application/json",
            b"Content-Encoding: " + encoding,
        ),
    )
    assert_error(status, body, 415, "unsupported_content_encoding")
    assert "Brotli" not in body["error"]["message"]


@pytest.mark.parametrize("encoding", [b"gzip", b"deflate"])
async def test_corrupt_compressed_body_is_400(daemon: Daemon, encoding: bytes) -> None:
    status, _, body = await raw_request(
        daemon,
        post(
            b"/api/models",
            b"\x1f\x8b\x08\x00this is not a compressed stream at all",
            b"Content-Type: application/json",
            b"Content-Encoding: " + encoding,
        ),
    )
    assert status == 400, body
    assert body["error"]["code"] in {"invalid_body", "malformed_request"}
    status, _, body = await raw_request(daemon, get(b"/api/models/m-enc", b"Connection: close\r\n"))
    assert_error(status, body, 404, "model_not_found")  # nothing half-written


async def test_good_compressed_bodies_are_accepted(daemon: Daemon) -> None:
    for encoding, data in ((b"gzip", gzip.compress(MODEL)), (b"deflate", zlib.compress(MODEL))):
        status, _, body = await raw_request(
            daemon,
            post(
                b"/api/models",
                data,
                b"Content-Type: application/json",
                b"Content-Encoding: " + encoding,
            ),
        )
        assert status in (201, 409), body


async def test_non_utf8_authorization_is_401(daemon_factory: DaemonFactory) -> None:
    daemon = await daemon_factory(env={"API_TOKEN": TOKEN})
    status, _, body = await raw_request(
        daemon, get(b"/api/providers", b"Authorization: Bearer \xff\xfe\xc3(\r\n")
    )
    assert_error(status, body, 401, "unauthorized")
    status, _, body = await raw_request(
        daemon, get(b"/api/providers", b"Authorization: \xe9\r\nConnection: close\r\n")
    )
    assert_error(status, body, 401, "unauthorized")


async def test_non_ascii_request_id_is_not_echoed(daemon: Daemon) -> None:
    status, headers, _ = await raw_request(
        daemon, get(b"/api/health", b"X-Request-ID: \xff\xfe\r\nConnection: close\r\n")
    )
    assert status == 200
    assert headers["x-request-id"].isascii() and headers["x-request-id"]


async def test_each_request_logs_its_own_id_method_and_path(
    daemon: Daemon, http: aiohttp.ClientSession
) -> None:
    # Two requests on one kept-alive connection: the second must not inherit the first's id.
    first = asyncio.ensure_future(daemon.next_log("request_finished"))
    await asyncio.sleep(0)  # waiting for the line before the request is sent
    async with http.get(daemon.url + "/api/no-such-route", headers={"X-Request-ID": "rid-1"}):
        pass
    line = await first
    assert {k: line.get(k) for k in ("request_id", "method", "path", "status")} == {
        "request_id": "rid-1", "method": "GET", "path": "/api/no-such-route", "status": 404,
    }  # fmt: skip
    second = asyncio.ensure_future(daemon.next_log("request_finished"))
    await asyncio.sleep(0)
    async with http.delete(daemon.url + "/api/models/no-such-model") as resp:
        generated = resp.headers["X-Request-ID"]
    line = await second
    assert generated != "rid-1"
    assert (line["request_id"], line["method"], line["path"]) == (
        generated, "DELETE", "/api/models/no-such-model",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("PUT", "/api/settings/active_provider", '{"value": "\\ud800"}'),
        ("POST", "/api/settings/bulk", '{"settings": {"active_provider": "\\udfff"}}'),
        ("PUT", "/api/settings/server.host", '{"value": "a\\ud800b"}'),
        ("POST", "/api/models", '{"id": "m1", "name": "x", "capabilities": ["\\ud83d"]}'),
        ("PUT", "/api/providers/lm-studio-default/config", '{"config": {"\\ud800": 1}}'),
    ],
)
async def test_lone_surrogates_are_400(
    api: Api, http: aiohttp.ClientSession, method: str, path: str, payload: str
) -> None:
    async with http.request(
        method, api.base + path, data=payload, headers={"Content-Type": "application/json"}
    ) as resp:
        body = await resp.json()
    assert_error(resp.status, body, 400, "validation_failed")
    assert "surrogate" in body["error"]["details"][0]["message"]


def nested(depth: int) -> Any:
    value: Any = {"apiKey": "s3cr3t-deep"}
    for i in range(depth):
        value = {"level": value} if i % 2 else [value]
    return value


def nested_text(depth: int) -> str:
    """Return JSON nested ``depth`` levels, as text (the client's encoder would recurse)."""
    return '{"level": [' * (depth // 2) + '"s3cr3t-deep"' + "]}" * (depth // 2)


@pytest.mark.parametrize("depth", [34, 500, 976, 5000])
async def test_deep_json_is_refused_before_parsing(
    api: Api, http: aiohttp.ClientSession, depth: int
) -> None:
    for path, template in (
        ("/api/providers/lm-studio-default/config", '{"config": {"extra": %s}}'),
        ("/api/providers/lm-studio-default/models", '{"model_id": "qwen3-max", "config": %s}'),
    ):
        async with (
            http.put(
                api.base + path,
                data=template % nested_text(depth),
                headers={"Content-Type": "application/json"},
            )
            if "config" in path.rsplit("/", 1)[-1]
            else http.post(
                api.base + path,
                data=template % nested_text(depth),
                headers={"Content-Type": "application/json"},
            ) as resp
        ):
            body = await resp.json()
        assert_error(resp.status, body, 400, "invalid_json")
        assert "nested deeper than 32" in body["error"]["message"]


async def test_json_at_the_depth_limit_is_stored_and_masked(api: Api) -> None:
    status, body = await api.put(
        "/api/providers/lm-studio-default/config", {"config": {"extra": nested(29)}}
    )
    assert status == 200, body
    assert "s3cr3t" not in json.dumps(body)


async def test_static_directory_and_missing_files_are_route_not_found(api: Api) -> None:
    for path in (
        "/static/",
        "/static",
        "/static/missing.js",
        "/static/dashboard.js/more",
        "/static/..%2Fdashboard.py",
    ):
        status, body = await api.get(path)
        assert_error(status, body, 404, "route_not_found")
    status, body = await api.get("/static/dashboard.js")  # a file of the package still is one
    assert status == 200 and isinstance(body, str) and body, body


async def test_refused_socketio_origin_is_the_error_shape(api: Api) -> None:
    status, body = await api.get(
        "/socket.io/?EIO=4&transport=polling", headers={"Origin": "https://evil.example"}
    )
    assert_error(status, body, 403, "origin_not_allowed")
