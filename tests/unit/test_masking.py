"""apiserver.masking: what the API shows of values the store returns as they are."""

from __future__ import annotations

from apiserver.masking import config_entry_view, config_view, link_view
from qwenstack_core.store.providers import ConfigEntry

KEY = "sk-s3cr3t-mask"


def entry(key: str, value: object, sensitive: bool) -> ConfigEntry:
    return ConfigEntry("p", key, value, sensitive, 1700000000000)


def test_config_view_masks_sensitive_values_and_nested_secrets() -> None:
    entries = [
        entry("apiKey", KEY, True),
        entry("note", "flagged by the client", True),
        entry("baseURL", "http://127.0.0.1:9/v1", False),
        entry("headers", {"Authorization": f"Bearer {KEY}", "Accept": "json"}, False),
        entry("maxTokens", 4096, False),
    ]
    assert config_view(entries) == {
        "apiKey": "***",
        "note": "***",
        "baseURL": "http://127.0.0.1:9/v1",
        "headers": {"Authorization": "***", "Accept": "json"},
        "maxTokens": 4096,
    }
    assert entries[0].value == KEY  # the store's row is left as it was


def test_config_entry_view_keeps_the_api_shape() -> None:
    assert config_entry_view(entry("token", KEY, True)) == {
        "provider_id": "p",
        "key": "token",
        "value": "***",
        "is_sensitive": True,
        "updated_at": 1700000000000,
    }


def test_link_view_masks_one_field_and_copies() -> None:
    link = {"id": "m", "provider_config": {"apiKey": KEY, "upstreamModel": "x"}}
    assert link_view(link) == {
        "id": "m",
        "provider_config": {"apiKey": "***", "upstreamModel": "x"},
    }
    assert link["provider_config"]["apiKey"] == KEY
    assert link_view({"config": None}, "config") == {"config": None}
