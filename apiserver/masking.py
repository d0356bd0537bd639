"""Secrets out of everything the daemon shows: the store returns real values, this masks them.

Every provider config value stored as sensitive (by its key's name or an explicit flag) becomes
``***``; inside other values and in model-link configs, entries with secret-looking names do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from qwenstack_core.redaction import MASK, mask_nested
from qwenstack_core.store.providers import ConfigEntry

Row = dict[str, Any]


def shown_value(entry: ConfigEntry) -> Any:
    """Return a config value as it may be shown."""
    return MASK if entry.is_sensitive else mask_nested(entry.value)


def config_view(entries: Iterable[ConfigEntry]) -> Row:
    """Return a provider's config as key -> shown value."""
    return {entry.key: shown_value(entry) for entry in entries}


def config_entry_view(entry: ConfigEntry) -> Row:
    """Return one config entry as the API shows it."""
    return {
        "provider_id": entry.provider_id,
        "key": entry.key,
        "value": shown_value(entry),
        "is_sensitive": entry.is_sensitive,
        "updated_at": entry.updated_at,
    }


def link_view(link: Row, field: str = "provider_config") -> Row:
    """Return a row carrying a model-link config in ``field``, that config masked."""
    return {**link, field: mask_nested(link[field])}
