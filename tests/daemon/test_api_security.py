"""Who may talk to the daemon: API token, Host check (DNS rebinding), CORS origin policy."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.conftest import DaemonFactory
from tests.support.daemon import Api, assert_error

TOKEN = "tok-s3cr3t-0123456789"


async def _raw(
    http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str]
) -> tuple[int, Any, Any]:
    async with http.request(method, url, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, resp.headers


async def test_token_required_on_api_except_health(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env={"API_TOKEN": TOKEN})
    api = Api(http, daemon.url)
    status, body = await api.get("/api/health")
    assert status == 200 and body["status"] == "ok"
    for method, path in (
        ("GET", "/api/providers"),
        ("GET", "/api/qwen/credentials"),
        ("DELETE", "/api/qwen/credentials"),
        ("POST", "/api/models"),
        ("GET", "/api/settings/server.timeout"),
    ):
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-value"},
            {"Authorization": TOKEN},  # no scheme
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": "Bearer "},
        ):
            status, body = await api.request(method, path, headers=headers)
            assert_error(status, body, 401, "unauthorized")
            assert body["error"]["type"] == "authentication_error"
    # Nothing was changed by the refused writes.
    good = {"Authorization": f"Bearer {TOKEN}"}
    status, body = await api.get("/api/models", headers=good)
    assert status == 200 and body["total"] == 4
    status, body = await api.post(
        "/api/models",
        {"id": "with-token", "name": "T"},
        headers={"Authorization": f"bearer {TOKEN}"},
    )
    assert status == 201
    assert not any(TOKEN in line for line in daemon.lines)


async def test_host_header_checked_on_loopback(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env={"ALLOWED_HOSTS": "proxy.internal"})
    url = daemon.url + "/api/providers"
    for host in ("evil.example", "evil.example:3002", "127.0.0.2", "localhost.evil.example"):
        status, body, _ = await _raw(http, "GET", url, {"Host": host})
        assert_error(status, body, 403, "host_not_allowed")
        assert body["error"]["type"] == "permission_error"
    # Refused before routing: the health route and unknown routes are protected too.
    status, body, _ = await _raw(http, "GET", daemon.url + "/api/health", {"Host": "evil.example"})
    assert_error(status, body, 403, "host_not_allowed")
    for host in (
        "localhost",
        "localhost:3002",
        "127.0.0.1:80",
        "[::1]:3002",
        "[::1]",
        "LOCALHOST",
        "proxy.internal",
        "proxy.internal:8080",
    ):
        status, body, _ = await _raw(http, "GET", url, {"Host": host})
        assert status == 200, (host, body)


async def test_default_cors_policy(api: Api, http: aiohttp.ClientSession) -> None:
    url = api.base + "/api/providers"
    for origin in (
        "http://localhost:5173",
        "http://127.0.0.1:8080",
        "https://localhost",
        "http://[::1]:3000",
        "chrome-extension://abcdefghijklmnop",
        "moz-extension://1234-5678",
    ):
        status, body, headers = await _raw(http, "GET", url, {"Origin": origin})
        assert status == 200, (origin, body)
        assert headers["Access-Control-Allow-Origin"] == origin
        assert "X-Request-ID" in headers["Access-Control-Expose-Headers"]
    for origin in (
        "https://evil.example",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example",
        "null",
        "file://",
    ):
        status, body, headers = await _raw(http, "GET", url, {"Origin": origin})
        assert_error(status, body, 403, "origin_not_allowed")
        assert "Access-Control-Allow-Origin" not in headers
    # A refused origin cannot write: the credentials stay as they were.
    async with http.post(
        api.base + "/api/qwen/credentials",
        json={"token": "evil-s3cr3t", "cookies": "evil-s3cr3t"},
        headers={"Origin": "https://evil.example"},
    ) as resp:
        assert resp.status == 403
    status, body = await api.get("/api/qwen/credentials")
    assert body["hasCredentials"] is False
    # Without an Origin header (curl, scripts) there are no CORS headers and no refusal.
    status, body, headers = await _raw(http, "GET", url, {})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


async def test_preflight(daemon_factory: DaemonFactory, http: aiohttp.ClientSession) -> None:
    # With a token set: browsers send preflights without credentials, they must still pass.
    daemon = await daemon_factory(env={"API_TOKEN": TOKEN})
    url = daemon.url + "/api/providers/lm-studio-default"
    origin = "chrome-extension://abcdefghijklmnop"
    status, body, headers = await _raw(
        http,
        "OPTIONS",
        url,
        {
            "Origin": origin,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert status == 204, body
    assert headers["Access-Control-Allow-Origin"] == origin
    assert "PUT" in headers["Access-Control-Allow-Methods"]
    allowed = headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    status, body, headers = await _raw(
        http,
        "OPTIONS",
        url,
        {"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"},
    )
    assert_error(status, body, 403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in headers
    # The actual request after the preflight still needs the token.
    status, body, _ = await _raw(http, "GET", url, {"Origin": origin})
    assert_error(status, body, 401, "unauthorized")


async def test_cors_origin_override(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env={"CORS_ORIGIN": "https://app.example, http://ui.test:8080/"})
    url = daemon.url + "/api/models"
    for origin in ("https://app.example", "http://ui.test:8080"):
        status, _, headers = await _raw(http, "GET", url, {"Origin": origin})
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] == origin
    # The override replaces the default policy: loopback and extensions are refused now.
    for origin in ("http://localhost:5173", "chrome-extension://abc", "https://other.example"):
        status, body, _ = await _raw(http, "GET", url, {"Origin": origin})
        assert_error(status, body, 403, "origin_not_allowed")


async def test_cors_origin_star_allows_any(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env={"CORS_ORIGIN": "*"})
    for origin in ("https://evil.example", "http://localhost:1"):
        status, _, headers = await _raw(http, "GET", daemon.url + "/api/models", {"Origin": origin})
        assert status == 200
        assert headers["Access-Control-Allow-Origin"] in (origin, "*")


async def test_non_loopback_bind_with_token(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env={"API_HOST": "0.0.0.0", "API_TOKEN": TOKEN})
    url = daemon.url + "/api/providers"
    # Not bound to loopback: any Host is fine (no rebinding risk to guard), the token is not.
    status, body, _ = await _raw(http, "GET", url, {"Host": "lan-box.example"})
    assert_error(status, body, 401, "unauthorized")
    status, body, _ = await _raw(
        http, "GET", url, {"Host": "lan-box.example", "Authorization": f"Bearer {TOKEN}"}
    )
    assert status == 200 and body["total"] == 3
