"""Store repositories on a real SQLite file: providers, their config and links, models, settings.

The readers return real values (provider-router needs them); masking is the API's job.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwenstack_core import provider_urls
from qwenstack_core.errors import Conflict, Invalid, NotFound
from qwenstack_core.store import connect, migrate
from qwenstack_core.store import models as model_rows
from qwenstack_core.store import providers as provider_rows
from qwenstack_core.store import settings as setting_rows

KEY = "sk-s3cr3t-unit"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = connect(tmp_path / "store.db")
    migrate(connection, seed_options={"qwen_api_key": KEY})
    yield connection
    connection.close()


def test_config_readers_return_real_values_with_their_sensitivity(
    conn: sqlite3.Connection,
) -> None:
    provider_rows.create_provider(
        conn,
        id="p",
        name="P",
        type="openai-compatible",
        enabled=True,
        priority=0,
        description=None,
        config={"baseURL": "http://127.0.0.1:9/v1", "apiKey": KEY, "headers": {"X-Token": KEY}},
    )
    assert provider_rows.get_config(conn, "p") == {
        "apiKey": KEY,
        "baseURL": "http://127.0.0.1:9/v1",
        "headers": {"X-Token": KEY},
    }
    entries = {e.key: e for e in provider_rows.config_entries(conn, "p")}
    assert list(entries) == ["apiKey", "baseURL", "headers"]  # ordered by key
    assert entries["apiKey"].is_sensitive is True and entries["apiKey"].value == KEY
    assert entries["baseURL"].is_sensitive is False
    assert entries["headers"].is_sensitive is False  # its nested secret is masked on display
    with pytest.raises(NotFound) as info:
        provider_rows.config_entries(conn, "none-such")
    assert info.value.code == "provider_not_found"


def test_sensitivity_is_sticky(conn: sqlite3.Connection) -> None:
    entry = provider_rows.set_config_value(conn, "lm-studio-default", "extra", "a", True)
    assert entry.is_sensitive is True and entry.value == "a"
    # Re-written without the flag (or with False), a secret stays a secret.
    entry = provider_rows.set_config_value(conn, "lm-studio-default", "extra", "b", False)
    assert entry.is_sensitive is True and entry.value == "b"
    assert provider_rows.set_config_value(
        conn, "lm-studio-default", "myToken", 1, None
    ).is_sensitive


def test_seeded_qwen_proxy_provider_follows_the_port(conn: sqlite3.Connection) -> None:
    provider = provider_rows.get_provider(conn, "qwen-proxy-default")
    config = provider_rows.get_config(conn, "qwen-proxy-default")
    assert config == {}  # no stored address: it would pin port 3000
    url = provider_urls.base_url(provider["type"], config, qwen_proxy_port=4123)
    assert url == "http://127.0.0.1:4123/v1"
    assert provider_rows.get_config(conn, "qwen-direct-default")["apiKey"] == KEY
    assert provider_rows.get_provider(conn, "qwen-direct-default")["enabled"] is True


def test_link_configs_are_stored_and_read_as_given(conn: sqlite3.Connection) -> None:
    link = {"upstreamModel": "x", "apiKey": KEY}
    created = provider_rows.link_model(
        conn, "lm-studio-default", "qwen3-max", is_default=True, config=link
    )
    assert created["config"] == link
    (linked,) = provider_rows.linked_models(conn, "lm-studio-default")
    assert linked["provider_config"] == link and linked["is_default"] is True
    model = model_rows.get_model_with_providers(conn, "qwen3-max")
    via = {p["id"]: p for p in model["providers"]}
    assert via["lm-studio-default"]["provider_config"] == link
    assert via["qwen-proxy-default"]["provider_config"] is None
    with pytest.raises(Conflict) as conflict:
        provider_rows.link_model(
            conn, "lm-studio-default", "qwen3-max", is_default=False, config=None
        )
    assert conflict.value.code == "model_already_linked"


def test_deleting_the_active_provider_clears_the_setting(conn: sqlite3.Connection) -> None:
    setting_rows.put(conn, "active_provider", "lm-studio-default")
    assert provider_rows.delete_provider(conn, "lm-studio-default") is True
    assert setting_rows.all_values(conn)["active_provider"] is None
    assert provider_rows.delete_provider(conn, "qwen-proxy-default") is False
    assert provider_rows.get_config(conn, "qwen-direct-default")  # others untouched
    assert conn.execute("SELECT COUNT(*) FROM provider_configs WHERE provider_id ="
                        " 'lm-studio-default'").fetchone()[0] == 0  # fmt: skip


def test_settings_are_validated_against_the_catalog(conn: sqlite3.Connection) -> None:
    with pytest.raises(Invalid):
        setting_rows.put(conn, "active_provider", "none-such")
    with pytest.raises(Invalid):
        setting_rows.put(conn, "server.timeout", 999)
    assert setting_rows.put(conn, "server.timeout", 1000)["value"] == 1000
