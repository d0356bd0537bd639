"""The request bodies of the REST API: each parsed into a frozen dataclass, or a 400."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, cast

from apiserver.validation import ID_PATTERN, ID_RULE, Fields
from qwenstack_core.store.providers import PROVIDER_TYPES

MAX_SECRET_LEN: Final = 16 * 1024


@dataclass(frozen=True, slots=True)
class CredentialsIn:
    """Body of POST /api/qwen/credentials."""

    token: str
    cookies: str
    expires_at: int | None

    @classmethod
    def parse(cls, data: Any) -> CredentialsIn:
        """Validate the body; milliseconds in ``expiresAt`` are refused with a clear message."""
        f = Fields(data)
        token = f.string("token", required=True, max_len=MAX_SECRET_LEN)
        cookies = f.string("cookies", required=True, max_len=MAX_SECRET_LEN)
        expires_at = f.integer("expiresAt", nullable=True, minimum=0)
        if expires_at is not None and expires_at > 10**11:
            f.fail("expiresAt", "looks like milliseconds: expiresAt must be Unix seconds")
        f.done()
        return cls(cast(str, token), cast(str, cookies), expires_at)


@dataclass(frozen=True, slots=True)
class ModelIn:
    """Body of POST /api/models."""

    id: str
    name: str
    description: str | None
    capabilities: list[str]

    @classmethod
    def parse(cls, data: Any) -> ModelIn:
        """Validate a new model."""
        f = Fields(data)
        model_id = f.string("id", required=True, max_len=64, pattern=ID_PATTERN, rule=ID_RULE)
        name = f.string("name", required=True, max_len=200)
        description = f.string("description", nullable=True)
        capabilities = f.strings("capabilities")
        f.done()
        return cls(cast(str, model_id), cast(str, name), description, capabilities or [])


def model_changes(data: Any) -> dict[str, Any]:
    """Validate the body of PUT /api/models/{id}: the fields to change (at least one)."""
    f = Fields(data)
    changes: dict[str, Any] = {}
    if f.has("name"):
        changes["name"] = f.string("name", required=True, max_len=200)
    if f.has("description"):
        changes["description"] = f.string("description", nullable=True)
    if f.has("capabilities"):
        changes["capabilities"] = f.strings("capabilities")
    if not (f.has("name") or f.has("description") or f.has("capabilities")):
        f.fail("body", "must contain at least one of name, description, capabilities")
    f.done()
    return changes


@dataclass(frozen=True, slots=True)
class ProviderIn:
    """Body of POST /api/providers."""

    id: str
    name: str
    type: str
    enabled: bool
    priority: int
    description: str | None
    config: dict[str, Any]

    @classmethod
    def parse(cls, data: Any) -> ProviderIn:
        """Validate a new provider."""
        f = Fields(data)
        provider_id = f.string("id", required=True, max_len=64, pattern=ID_PATTERN, rule=ID_RULE)
        name = f.string("name", required=True, max_len=200)
        ptype = f.string("type", required=True, choices=PROVIDER_TYPES)
        enabled = f.boolean("enabled")
        priority = f.integer("priority", minimum=-1000, maximum=1000)
        description = f.string("description", nullable=True)
        config = f.obj("config", nullable=True)
        if config:
            _check_config(f, config)
        f.done()
        return cls(
            cast(str, provider_id),
            cast(str, name),
            cast(str, ptype),
            True if enabled is None else enabled,
            priority or 0,
            description,
            config or {},
        )


def provider_changes(data: Any) -> dict[str, Any]:
    """Validate the body of PUT /api/providers/{id}: the fields to change (at least one)."""
    f = Fields(data)
    changes: dict[str, Any] = {}
    if f.has("name"):
        changes["name"] = f.string("name", required=True, max_len=200)
    if f.has("type"):
        changes["type"] = f.string("type", required=True, choices=PROVIDER_TYPES)
    if f.has("enabled"):
        changes["enabled"] = f.boolean("enabled", required=True)
    if f.has("priority"):
        changes["priority"] = f.integer("priority", required=True, minimum=-1000, maximum=1000)
    if f.has("description"):
        changes["description"] = f.string("description", nullable=True)
    if not changes and not f.details:
        f.fail("body", "must contain at least one of name, type, enabled, priority, description")
    f.done()
    return changes


CONFIG_KEY: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _check_config(f: Fields, config: dict[str, Any]) -> None:
    for key, value in config.items():
        field = f"config.{key}"
        if not CONFIG_KEY.match(key):
            f.fail(field, "key must be 1-64 letters, digits, '_', '.' or '-'")
        elif key == "baseURL" and not (
            isinstance(value, str) and value.startswith(("http://", "https://"))
        ):
            f.fail(field, "must be an http:// or https:// URL")
        elif key == "timeout" and (
            isinstance(value, bool) or not isinstance(value, int) or value <= 0
        ):
            f.fail(field, "must be a positive integer (milliseconds)")
        elif key == "apiKey" and not isinstance(value, str):
            f.fail(field, "must be a string")


def config_values(data: Any) -> dict[str, Any]:
    """Validate the body of PUT /api/providers/{id}/config."""
    f = Fields(data)
    config = f.obj("config", required=True)
    if config is not None:
        if not config:
            f.fail("config", "must contain at least one key")
        _check_config(f, config)
    f.done()
    return config or {}


@dataclass(frozen=True, slots=True)
class ConfigValueIn:
    """Body of PATCH /api/providers/{id}/config/{key}."""

    value: Any
    is_sensitive: bool | None

    @classmethod
    def parse(cls, key: str, data: Any) -> ConfigValueIn:
        """Validate one config value for ``key``."""
        f = Fields(data)
        if not f.has("value"):
            f.fail("value", "is required")
        if not CONFIG_KEY.match(key):
            f.fail("key", "must be 1-64 letters, digits, '_', '.' or '-'")
        else:
            _check_config(f, {key: f.data.get("value")} if f.has("value") else {})
        is_sensitive = f.boolean("is_sensitive")
        f.done()
        return cls(f.data["value"], is_sensitive)


@dataclass(frozen=True, slots=True)
class LinkIn:
    """Body of POST /api/providers/{id}/models."""

    model_id: str
    is_default: bool
    config: dict[str, Any] | None

    @classmethod
    def parse(cls, data: Any) -> LinkIn:
        """Validate a new provider↔model link."""
        f = Fields(data)
        model_id = f.string("model_id", required=True, max_len=64, pattern=ID_PATTERN, rule=ID_RULE)
        is_default = f.boolean("is_default")
        config = f.obj("config", nullable=True)
        f.done()
        return cls(cast(str, model_id), bool(is_default), config)


def setting_value(data: Any) -> Any:
    """Return the ``value`` of a settings body (which may be null)."""
    f = Fields(data)
    if not f.has("value"):
        f.fail("value", "is required")
    f.done()
    return f.data["value"]


def bulk_settings(data: Any) -> dict[str, Any]:
    """Return the ``settings`` object of POST /api/settings/bulk."""
    f = Fields(data)
    settings = f.obj("settings", required=True)
    if settings is not None and not settings:
        f.fail("settings", "must contain at least one key")
    f.done()
    return settings or {}
