"""Data migrations on a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qwenstack_core.store import LATEST_VERSION, connect, migrate
from qwenstack_core.store.providers import get_config
from qwenstack_core.store.schema import OLD_QWEN_PROXY_URL


@pytest.mark.parametrize(
    ("provider_id", "edited", "kept"),
    [
        ("qwen-proxy-default", False, False),  # the untouched seed value goes
        ("qwen-proxy-default", True, True),  # written again by a user: theirs, kept
        ("lm-studio-default", False, True),  # another provider's: kept
    ],
)
def test_v5_drops_only_the_untouched_seeded_qwen_proxy_url(
    tmp_path: Path, provider_id: str, edited: bool, kept: bool
) -> None:
    conn = connect(tmp_path / "store.db")
    try:
        migrate(conn, target=4)
        # As versions 1-4 seeded it (created_at = updated_at), or as a user re-saved it.
        conn.execute(
            "INSERT OR REPLACE INTO provider_configs (provider_id, key, value, is_sensitive,"
            " created_at, updated_at) VALUES (?, 'baseURL', ?, 0, 1000, ?)",
            (provider_id, json.dumps(OLD_QWEN_PROXY_URL), 2000 if edited else 1000),
        )
        assert migrate(conn) == (4, LATEST_VERSION)
        assert ("baseURL" in get_config(conn, provider_id)) is kept
    finally:
        conn.close()
