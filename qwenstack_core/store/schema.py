"""The one copy of the database schema: versioned migrations and the default data.

Every process of the stack (the API server and both children) opens the database through
``Store``, which applies these migrations, so the schema exists in exactly one place.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run DDL statements one by one (``executescript`` would commit our open transaction)."""
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v1_core(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE providers (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            priority INTEGER NOT NULL DEFAULT 0,
            description TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE TABLE provider_configs (
            provider_id TEXT NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL,              -- JSON
            is_sensitive INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (provider_id, key)
        );
        CREATE TABLE models (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            description TEXT,
            capabilities TEXT NOT NULL DEFAULT '[]',  -- JSON array
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE TABLE provider_models (
            provider_id TEXT NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
            model_id TEXT NOT NULL REFERENCES models(id) ON DELETE CASCADE,
            is_default INTEGER NOT NULL DEFAULT 0,
            config TEXT,                      -- JSON object or NULL
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (provider_id, model_id)
        );
        CREATE INDEX provider_models_model ON provider_models(model_id);
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,              -- JSON
            updated_at INTEGER NOT NULL
        );
        CREATE TABLE qwen_credentials (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            token TEXT NOT NULL,
            cookies TEXT NOT NULL,
            expires_at INTEGER,               -- Unix seconds
            created_at INTEGER NOT NULL,      -- Unix seconds
            updated_at INTEGER NOT NULL       -- Unix seconds
        );
        """,
    )


def _v2_history(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            chat_id TEXT,
            parent_id TEXT,
            first_user_message TEXT,
            message_count INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            last_accessed INTEGER NOT NULL
        );
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id TEXT NOT NULL UNIQUE,
            session_id TEXT REFERENCES sessions(id) ON DELETE CASCADE,
            provider_id TEXT,
            model TEXT,
            stream INTEGER NOT NULL DEFAULT 0,
            method TEXT NOT NULL DEFAULT 'POST',
            path TEXT NOT NULL DEFAULT '/v1/chat/completions',
            body TEXT,                        -- JSON, only when logging.logRequests is on
            created_at INTEGER NOT NULL
        );
        CREATE INDEX requests_session ON requests(session_id);
        CREATE INDEX requests_created ON requests(created_at);
        CREATE TABLE responses (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            request_id INTEGER NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
            session_id TEXT REFERENCES sessions(id) ON DELETE CASCADE,
            provider_id TEXT,
            status_code INTEGER,
            body TEXT,                        -- JSON, only when logging.logResponses is on
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            total_tokens INTEGER,
            finish_reason TEXT,
            error TEXT,
            duration_ms INTEGER,
            created_at INTEGER NOT NULL
        );
        CREATE INDEX responses_request ON responses(request_id);
        CREATE INDEX responses_created ON responses(created_at);
        """,
    )


def _v3_supervision(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        -- One row per supervised child while it runs: how to recognise it after a daemon crash.
        CREATE TABLE child_processes (
            name TEXT PRIMARY KEY,
            pid INTEGER NOT NULL,
            create_time REAL NOT NULL,
            argv TEXT NOT NULL,               -- JSON array
            port INTEGER,
            recorded_at INTEGER NOT NULL
        );
        -- Desired state of the proxies (running or not), restored at daemon start.
        CREATE TABLE daemon_state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL               -- JSON
        );
        CREATE INDEX requests_model ON requests(model);
        """,
    )


def _v4_children(conn: sqlite3.Connection) -> None:
    _script(
        conn,
        """
        -- qwen-proxy: an OpenAI conversation (hash of its first user message and first assistant
        -- reply) mapped to its Qwen web chat, so turn N+1 continues the same chat.
        CREATE TABLE qwen_conversations (
            key TEXT PRIMARY KEY,
            chat_id TEXT NOT NULL,
            parent_id TEXT,                   -- id of the last assistant message in the chat
            model TEXT,
            turns INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,      -- Unix ms
            updated_at INTEGER NOT NULL       -- Unix ms
        );
        CREATE INDEX qwen_conversations_updated ON qwen_conversations(updated_at);
        -- provider-router: time to first byte and the class of error of each answer.
        ALTER TABLE responses ADD COLUMN ttfb_ms INTEGER;
        ALTER TABLE responses ADD COLUMN error_class TEXT
        """,
    )


# What versions 1-4 seeded for qwen-proxy-default: an address pinned to port 3000.
OLD_QWEN_PROXY_URL = "http://127.0.0.1:3000/v1"


def _v5_qwen_proxy_url(conn: sqlite3.Connection) -> None:
    # Drop that seeded baseURL if nobody changed it since (written once: created = updated), so
    # the provider follows QWEN_PROXY_PORT like a newly seeded one. At port 3000 nothing changes.
    conn.execute(
        "DELETE FROM provider_configs WHERE provider_id = 'qwen-proxy-default'"
        " AND key = 'baseURL' AND value = ? AND created_at = updated_at",
        (json.dumps(OLD_QWEN_PROXY_URL),),
    )


# The tables whose rows decide routing; any write to them bumps ``catalog_version``.
CATALOG_TABLES = ("providers", "provider_configs", "models", "provider_models", "settings")


def _v6_catalog_version(conn: sqlite3.Connection) -> None:
    """A counter of catalog writes, kept by triggers.

    ``PRAGMA data_version`` says that *something* was committed: the children's own history
    writes too. Reading this one row then tells whether routing data changed, so the router
    re-reads its table only for those commits.
    """
    conn.execute(
        "CREATE TABLE catalog_version (id INTEGER PRIMARY KEY CHECK (id = 1),"
        " version INTEGER NOT NULL)"
    )
    conn.execute("INSERT INTO catalog_version (id, version) VALUES (1, 0)")
    for table in CATALOG_TABLES:
        for event in ("INSERT", "UPDATE", "DELETE"):
            # One statement each: the trigger bodies contain ';', which _script splits on.
            conn.execute(
                f"CREATE TRIGGER {table}_{event.lower()}_bumps_catalog AFTER {event} ON {table}"
                " BEGIN UPDATE catalog_version SET version = version + 1 WHERE id = 1; END"
            )


MIGRATIONS: tuple[Migration, ...] = (
    _v1_core,
    _v2_history,
    _v3_supervision,
    _v4_children,
    _v5_qwen_proxy_url,
    _v6_catalog_version,
)
LATEST_VERSION = len(MIGRATIONS)

DEFAULT_MODELS: tuple[tuple[str, str, str, list[str]], ...] = (
    ("qwen3-max", "Qwen3-Max", "Qwen's most capable model", ["chat", "tools", "reasoning"]),
    ("qwen3-coder-plus", "Qwen3-Coder-Plus", "Qwen's coding model", ["chat", "tools", "code"]),
    ("qwen3-vl-plus", "Qwen3-VL-Plus", "Qwen vision-language model", ["chat", "vision"]),
    ("qwen3-vl-32b", "Qwen3-VL-32B", "Qwen vision-language 32B model", ["chat", "vision"]),
)


def catalog_version(conn: sqlite3.Connection) -> int:
    """Return the counter of writes to the routing tables (providers, configs, links, ...)."""
    row = conn.execute("SELECT version FROM catalog_version WHERE id = 1").fetchone()
    return int(row[0]) if row is not None else 0


def schema_version(conn: sqlite3.Connection) -> int:
    """Return the schema version recorded in the file (0 for an empty database)."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def data_version(conn: sqlite3.Connection) -> int:
    """Return SQLite's ``PRAGMA data_version``: it changes when *another* connection commits.

    The children poll it to know, without a query of their tables, whether the daemon changed
    anything since they last read it.
    """
    row = conn.execute("PRAGMA data_version").fetchone()
    return int(row[0])


class SchemaMismatch(RuntimeError):
    """The database file's schema is not the one this program was built for."""


def require_version(conn: sqlite3.Connection) -> int:
    """Refuse a schema other than ``LATEST_VERSION`` (a child never migrates; the daemon does)."""
    version = schema_version(conn)
    if version != LATEST_VERSION:
        raise SchemaMismatch(
            f"database schema version {version} is not the version this program knows"
            f" ({LATEST_VERSION}); start the API server of the same release to migrate it"
        )
    return version


def migrate(
    conn: sqlite3.Connection,
    *,
    target: int = LATEST_VERSION,
    seed_options: dict[str, object] | None = None,
) -> tuple[int, int]:
    """Bring the schema up to ``target``, each step in its own transaction.

    A brand-new database is also seeded with the defaults (only then: a user who deleted the
    default providers does not get them back at the next start). Returns (from, to) versions.
    """
    start = schema_version(conn)
    if start > LATEST_VERSION:
        raise RuntimeError(
            f"database schema version {start} is newer than this program ({LATEST_VERSION})"
        )
    for version in range(start + 1, target + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated between our read and our lock.
            if schema_version(conn) >= version:
                conn.execute("ROLLBACK")
                continue
            MIGRATIONS[version - 1](conn)
            if version == 1:
                seed(conn, **(seed_options or {}))
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return start, schema_version(conn)


def seed(conn: sqlite3.Connection, *, qwen_api_key: object = None) -> None:
    """Insert the default providers, models and links (children.md).

    qwen-proxy-default gets no ``baseURL``: provider_urls supplies the sibling's address from
    ``QWEN_PROXY_PORT`` when it is used, so a changed port needs no change in the database.
    """
    now = int(time.time() * 1000)
    providers: tuple[tuple[str, str, str, int, int, str, dict[str, str]], ...] = (
        ("qwen-proxy-default", "Qwen Proxy", "qwen-proxy", 1, 10,
         "Qwen web chat through the local qwen-proxy", {}),
        ("lm-studio-default", "LM Studio", "lm-studio", 1, 5,
         "Local LM Studio server", {"baseURL": "http://localhost:1234/v1"}),
        ("qwen-direct-default", "Qwen Direct (DashScope)", "qwen-direct", 1 if qwen_api_key else 0,
         1, "DashScope's OpenAI-compatible API (needs an API key)",
         {"baseURL": "https://dashscope.aliyuncs.com/compatible-mode/v1"}),
    )  # fmt: skip
    for pid, name, ptype, enabled, priority, description, config in providers:
        conn.execute(
            "INSERT INTO providers (id, name, type, enabled, priority, description, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (pid, name, ptype, enabled, priority, description, now, now),
        )
        for key, value in config.items():
            conn.execute(
                "INSERT INTO provider_configs (provider_id, key, value, is_sensitive, created_at,"
                " updated_at) VALUES (?, ?, ?, 0, ?, ?)",
                (pid, key, json.dumps(value), now, now),
            )
    if qwen_api_key:
        conn.execute(
            "INSERT INTO provider_configs (provider_id, key, value, is_sensitive, created_at,"
            " updated_at) VALUES ('qwen-direct-default', 'apiKey', ?, 1, ?, ?)",
            (json.dumps(qwen_api_key), now, now),
        )
    for mid, name, description, capabilities in DEFAULT_MODELS:
        conn.execute(
            "INSERT INTO models (id, name, description, capabilities, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (mid, name, description, json.dumps(capabilities), now, now),
        )
        conn.execute(
            "INSERT INTO provider_models (provider_id, model_id, is_default, config, created_at,"
            " updated_at) VALUES ('qwen-proxy-default', ?, ?, NULL, ?, ?)",
            (mid, 1 if mid == "qwen3-max" else 0, now, now),
        )
    # Imported here: the registry lives beside its validation, and imports this package.
    from qwenstack_core.store.settings import SETTINGS

    for key, definition in SETTINGS.items():
        conn.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)",
            (key, json.dumps(definition.default), now),
        )
