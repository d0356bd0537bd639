"""Secrets are write-only: no response, log line or error shows a stored secret."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.conftest import DaemonFactory
from tests.support import capture
from tests.support.capture import SECRET_MARKER
from tests.support.daemon import Api, Daemon, assert_error

TOKEN = "tok-s3cr3t-9f8e7d"
COOKIES = "cna=xyz; token=ck-s3cr3t-6c5b4a"
API_KEY = "sk-s3cr3t-1a2b3c"
PASSWORD = "pw-s3cr3t-777"
FLAGGED = "hdr-s3cr3t-888"


async def test_no_read_endpoint_reveals_a_secret(api: Api, daemon: Daemon) -> None:
    writes = [
        (
            "POST",
            "/api/qwen/credentials",
            {"token": TOKEN, "cookies": COOKIES, "expiresAt": 4102444800},
        ),
        (
            "POST",
            "/api/providers",
            {
                "id": "sec",
                "name": "Sec",
                "type": "openai-compatible",
                "config": {"baseURL": "http://127.0.0.1:9/v1", "apiKey": API_KEY},
            },
        ),
        (
            "PUT",
            "/api/providers/sec/config",
            {"config": {"db_password": PASSWORD, "authToken": TOKEN}},
        ),
        ("PATCH", "/api/providers/sec/config/x-header", {"value": FLAGGED, "is_sensitive": True}),
        ("PATCH", "/api/providers/sec/config/apiKey", {"value": API_KEY + "-v2"}),
        ("POST", "/api/models", {"id": "sec-model", "name": "M"}),
        ("POST", "/api/providers/sec/models", {"model_id": "sec-model"}),
        ("POST", "/api/providers/sec/test", None),
        ("POST", "/api/providers/sec/reload", None),
    ]
    for method, path, body in writes:
        status, answer = await api.request(method, path, body)
        assert status in (200, 201), (path, answer)
        assert SECRET_MARKER not in json.dumps(answer), (path, answer)

    reads = [
        "/api/qwen/credentials",
        "/api/providers",
        "/api/providers/sec",
        "/api/providers/sec/config",
        "/api/providers/sec/config?mask=false",
        "/api/providers/sec/config?reveal=true&unmask=1&raw=true",
        "/api/providers/sec?mask=false",
        "/api/providers/sec/models",
        "/api/models",
        "/api/models/sec-model",
        "/api/models?provider=sec",
        "/api/settings",
    ]
    for path in reads:
        status, answer = await api.get(path)
        assert status == 200, path
        assert SECRET_MARKER not in json.dumps(answer), (path, answer)
    status, answer = await api.get("/api/providers/sec/config")
    assert answer["config"] == {
        "baseURL": "http://127.0.0.1:9/v1",
        "apiKey": "***",
        "db_password": "***",
        "authToken": "***",
        "x-header": "***",
    }
    status, answer = await api.get("/api/qwen/credentials")
    assert "token" not in answer and "cookies" not in answer

    # Errors about requests that carry secrets do not echo them.
    bad = [
        (
            "POST",
            "/api/qwen/credentials",
            {"token": TOKEN, "cookies": COOKIES, "expiresAt": 4102444800000},
        ),
        ("POST", "/api/qwen/credentials", {"token": TOKEN, "cookies": ""}),
        ("PUT", "/api/providers/sec/config", {"config": {"apiKey": [API_KEY]}}),
        ("PUT", "/api/providers/sec/config", {"config": {"baseURL": API_KEY}}),
        (
            "POST",
            "/api/providers",
            {"id": "sec", "name": "Sec", "type": "lm-studio", "config": {"apiKey": API_KEY}},
        ),
    ]
    for method, path, body in bad:
        status, answer = await api.request(method, path, body)
        assert 400 <= status < 500
        assert SECRET_MARKER not in json.dumps(answer), (path, answer)
    status, answer = await api.post(
        "/api/qwen/credentials",
        data=f'{{"token": "{TOKEN}", "cookies": '.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert_error(status, answer, 400, "invalid_json")
    assert SECRET_MARKER not in json.dumps(answer)

    # And the daemon's own log lines (debug level in tests) never contain them.
    assert daemon.lines, "the daemon's output was captured"
    assert not [line for line in daemon.lines if SECRET_MARKER in line]


async def test_api_token_and_env_key_never_logged_or_echoed(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env={"API_TOKEN": TOKEN, "QWEN_API_KEY": API_KEY})
    api = Api(http, daemon.url)
    status, body = await api.get("/api/providers", headers={"Authorization": "Bearer wrong"})
    assert_error(status, body, 401, "unauthorized")
    assert SECRET_MARKER not in json.dumps(body)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # QWEN_API_KEY seeds qwen-direct-default enabled, with the key stored as a secret.
    status, body = await api.get("/api/providers/qwen-direct-default", headers=auth)
    assert status == 200
    assert body["enabled"] is True and body["config"]["apiKey"] == "***"
    assert not [line for line in daemon.lines if SECRET_MARKER in line]


def test_capture_scanner_detects_a_planted_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    real = capture.CAPTURED
    planted = f'GET /api/providers/x/config: {{"apiKey": "sk-{SECRET_MARKER}-planted"}}'
    with monkeypatch.context() as patch:
        patch.setattr(capture, "CAPTURED", [])
        capture.record("daemon stdout", '{"event": "request_finished", "status": 200}')
        assert capture.leaks() == []
        capture.record("GET /api/providers/x/config", planted)
        capture.record("daemon stdout", "clean line")
        assert capture.leaks() == [("GET /api/providers/x/config", planted)]
    assert capture.CAPTURED is real
    assert not any(planted in text for _, text in capture.CAPTURED)


async def test_responses_and_daemon_logs_are_captured(api: Api) -> None:
    # The session-end scan only proves something if it sees both kinds of output.
    before = len(capture.CAPTURED)
    status, _ = await api.get("/api/providers")
    assert status == 200
    assert any(where == "GET /api/providers" for where, _ in capture.CAPTURED[before:])
    assert any(where.startswith("daemon ") for where, _ in capture.CAPTURED)


async def test_nested_and_link_secrets_are_masked(api: Api) -> None:
    headers = {"Authorization": "Bearer nest-s3cr3t-1", "X-Trace": "visible"}
    status, _ = await api.put(
        "/api/providers/lm-studio-default/config", {"config": {"extra": {"headers": headers}}}
    )
    assert status == 200
    link = {"upstreamModel": "qwen3", "maxTokens": 4096, "apiKey": "link-s3cr3t-2"}
    status, body = await api.post(
        "/api/providers/lm-studio-default/models", {"model_id": "qwen3-max", "config": link}
    )
    assert status == 201
    assert body["config"] == {"upstreamModel": "qwen3", "maxTokens": 4096, "apiKey": "***"}

    _, config = await api.get("/api/providers/lm-studio-default/config")
    assert config["config"]["extra"] == {"headers": {"Authorization": "***", "X-Trace": "visible"}}
    _, links = await api.get("/api/providers/lm-studio-default/models")
    (linked,) = [m for m in links["models"] if m["id"] == "qwen3-max"]
    assert linked["provider_config"]["apiKey"] == "***"
    assert linked["provider_config"]["maxTokens"] == 4096
    _, model = await api.get("/api/models/qwen3-max")
    (via,) = [p for p in model["model"]["providers"] if p["id"] == "lm-studio-default"]
    assert via["provider_config"]["apiKey"] == "***"
