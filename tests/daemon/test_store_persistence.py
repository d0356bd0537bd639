"""The store across daemon restarts: data kept, older schemas migrated without loss."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from qwenstack_core.store import LATEST_VERSION, connect, migrate
from tests.conftest import DaemonFactory
from tests.support.daemon import Api, Daemon

API_KEY = "sk-s3cr3t-persist"
TOKEN = "tok-s3cr3t-persist"

READ_PATHS = (
    "/api/providers",
    "/api/providers/kept",
    "/api/providers/kept/config",
    "/api/providers/kept/models",
    "/api/models",
    "/api/models/kept-model",
    "/api/settings",
    "/api/qwen/credentials",
)


async def snapshot(api: Api) -> dict[str, Any]:
    out = {}
    for path in READ_PATHS:
        status, body = await api.get(path)
        assert status == 200, (path, body)
        out[path] = body
    return out


async def test_data_survives_restart(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession
) -> None:
    first = await daemon_factory()
    api = Api(http, first.url)
    writes: list[tuple[str, str, Any]] = [
        (
            "POST",
            "/api/providers",
            {
                "id": "kept",
                "name": "Kept",
                "type": "openai-compatible",
                "priority": 50,
                "enabled": False,
                "config": {
                    "baseURL": "http://127.0.0.1:9/v1",
                    "apiKey": API_KEY,
                    "timeout": 2500,
                    "extra": {"a": [1, 2]},
                },
            },
        ),
        ("POST", "/api/models", {"id": "kept-model", "name": "Kept", "capabilities": ["chat"]}),
        (
            "POST",
            "/api/providers/kept/models",
            {"model_id": "kept-model", "is_default": True, "config": {"upstreamModel": "u"}},
        ),
        (
            "POST",
            "/api/settings/bulk",
            {
                "settings": {
                    "logging.logRequests": True,
                    "server.timeout": 7000,
                    "active_provider": "kept",
                }
            },
        ),
        (
            "POST",
            "/api/qwen/credentials",
            {"token": TOKEN, "cookies": TOKEN, "expiresAt": 4102444800},
        ),
        ("DELETE", "/api/providers/qwen-direct-default", None),
        ("DELETE", "/api/models/qwen3-vl-32b", None),
    ]
    for method, path, body in writes:
        status, answer = await api.request(method, path, body)
        assert status in (200, 201), (path, answer)
    before = await snapshot(api)
    assert await first.stop() == 0

    second = await daemon_factory()  # same database file
    after = await snapshot(Api(http, second.url))
    for snap in (before, after):  # the router's port (read-only): a new free port per start
        del snap["/api/settings"]["settings"]["server.port"]
    assert after == before
    # Deleted seed rows stay deleted: the seed only fills a brand-new database.
    assert "qwen-direct-default" not in [p["id"] for p in after["/api/providers"]["providers"]]
    assert "qwen3-vl-32b" not in [m["id"] for m in after["/api/models"]["models"]]
    assert after["/api/providers/kept/config"]["config"]["apiKey"] == "***"
    assert after["/api/settings"]["settings"]["logging.logRequests"] is True
    assert after["/api/qwen/credentials"]["hasCredentials"] is True


def _build_old_database(path: Path, version: int) -> dict[str, int]:
    """Make a database at schema ``version`` with user rows in it; return table row counts."""
    conn = connect(path)
    try:
        assert migrate(conn, target=version) == (0, version)
        now = int(time.time() * 1000)
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO providers (id, name, type, enabled, priority, description, created_at,"
            " updated_at) VALUES ('legacy', 'Legacy', 'openai-compatible', 1, 77, 'old', ?, ?)",
            (now, now),
        )
        conn.executemany(
            "INSERT INTO provider_configs (provider_id, key, value, is_sensitive, created_at,"
            " updated_at) VALUES ('legacy', ?, ?, ?, ?, ?)",
            [
                ("baseURL", json.dumps("http://127.0.0.1:9/v1"), 0, now, now),
                ("apiKey", json.dumps(API_KEY), 1, now, now),
                ("timeout", json.dumps(4000), 0, now, now),
            ],
        )
        conn.execute(
            "INSERT INTO models (id, name, description, capabilities, created_at, updated_at)"
            " VALUES ('legacy-model', 'Legacy Model', NULL, '[\"chat\", \"code\"]', ?, ?)",
            (now, now),
        )
        conn.execute(
            "INSERT INTO provider_models (provider_id, model_id, is_default, config, created_at,"
            " updated_at) VALUES ('legacy', 'legacy-model', 1, '{\"upstreamModel\": \"x\"}', ?, ?)",
            (now, now),
        )
        conn.execute("UPDATE settings SET value = 'true' WHERE key = 'logging.logResponses'")
        conn.execute("UPDATE settings SET value = '\"legacy\"' WHERE key = 'active_provider'")
        conn.execute(
            "INSERT INTO qwen_credentials (id, token, cookies, expires_at, created_at, updated_at)"
            " VALUES (1, ?, ?, 4102444800, 1700000000, 1700000000)",
            (TOKEN, TOKEN),
        )
        conn.execute("DELETE FROM providers WHERE id = 'lm-studio-default'")
        if version >= 2:
            conn.execute(
                "INSERT INTO sessions (id, chat_id, created_at, last_accessed)"
                " VALUES ('sess-1', 'chat-1', ?, ?)",
                (now, now),
            )
            conn.execute(
                "INSERT INTO requests (request_id, session_id, model, created_at)"
                " VALUES ('req-uuid-1', 'sess-1', 'legacy-model', ?)",
                (now,),
            )
            conn.execute(
                "INSERT INTO responses (request_id, session_id, status_code, total_tokens,"
                " created_at) VALUES (1, 'sess-1', 200, 42, ?)",
                (now,),
            )
        conn.execute("COMMIT")
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()


@pytest.mark.parametrize("version", range(1, LATEST_VERSION))
async def test_older_schema_is_migrated_without_loss(
    daemon_factory: DaemonFactory, http: aiohttp.ClientSession, tmp_path: Path, version: int
) -> None:
    db = tmp_path / "old.db"
    counts = _build_old_database(db, version)

    daemon = await daemon_factory(db_path=db)
    opened = daemon.logs("store_opened")
    assert opened and opened[0]["migrated_from"] == version
    api = Api(http, daemon.url)
    status, body = await api.get("/api/providers/legacy")
    assert status == 200
    assert (body["name"], body["priority"], body["enabled"], body["description"]) == (
        "Legacy",
        77,
        True,
        "old",
    )
    assert body["config"] == {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "***", "timeout": 4000}
    assert [(m["id"], m["is_default"], m["provider_config"]) for m in body["models"]] == [
        ("legacy-model", True, {"upstreamModel": "x"})
    ]
    status, body = await api.get("/api/models/legacy-model")
    assert body["model"]["capabilities"] == ["chat", "code"]
    status, body = await api.get("/api/providers")
    assert [p["id"] for p in body["providers"]] == [
        "legacy",
        "qwen-proxy-default",
        "qwen-direct-default",
    ]  # the deleted seed row was not brought back
    status, body = await api.get("/api/settings")
    assert body["settings"]["logging.logResponses"] is True
    assert body["settings"]["active_provider"] == "legacy"
    status, body = await api.get("/api/qwen/credentials")
    assert body["hasCredentials"] is True and body["createdAt"] == 1700000000
    # The migrated database takes writes.
    status, body = await api.post("/api/models", {"id": "after-migration", "name": "A"})
    assert status == 201
    assert await daemon.stop() == 0

    conn = connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"sessions", "requests", "responses", "child_processes", "daemon_state"} <= tables
        for table, count in counts.items():
            now = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            assert now == count + (1 if table == "models" else 0), table
        token = conn.execute("SELECT token FROM qwen_credentials").fetchone()[0]
        assert token == TOKEN
    finally:
        conn.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    conn = connect(db)
    migrate(conn)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    daemon = Daemon(db)
    with pytest.raises(RuntimeError, match="did not start"):
        await daemon.start()
    assert daemon.proc is not None and daemon.proc.returncode not in (0, None)
    failed = daemon.logs("server_failed")  # one structured line, not a bare traceback
    assert failed and "newer" in json.dumps(failed[0])
    conn = connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION + 1
    finally:
        conn.close()
