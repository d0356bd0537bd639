"""Validation at the edge: request bodies and queries into frozen dataclasses, or a 400."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from aiohttp import web

from apiserver import errors
from qwenstack_core.store.providers import PROVIDER_TYPES

ID_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ID_RULE: Final = "must match ^[a-z0-9][a-z0-9._-]{0,63}$"
MAX_SECRET_LEN: Final = 16 * 1024
MAX_TEXT_LEN: Final = 4096
MAX_BODY: Final = 1024 * 1024
_MISSING: Final = object()


def check_body_headers(request: web.Request) -> None:
    """Refuse a body past 1 MiB (413) or of a type other than JSON (415), before reading it."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.PayloadTooLarge("Request body is larger than 1 MiB")
    if request.body_exists and request.content_type != "application/json":
        raise errors.UnsupportedMediaType(
            "Request body must be JSON: send 'Content-Type: application/json'"
        )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


async def read_json(request: web.Request) -> Any:
    """Return the parsed JSON body (415 for another type, 413 past 1 MiB, 400 if malformed)."""
    check_body_headers(request)
    if not request.body_exists:
        return None
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.PayloadTooLarge("Request body is larger than 1 MiB") from None
    if not raw.strip():
        return None
    try:
        # NaN, Infinity and overflowing numbers parse in Python but cannot be written back
        # as JSON; RecursionError is what a too deeply nested document raises.
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        message = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise errors.InvalidRequest(
            f"Request body is not valid JSON: {message}", code="invalid_json"
        ) from None


class Fields:
    """Read typed fields out of a JSON object, collecting every problem before failing."""

    def __init__(self, data: Any, *, required: bool = True) -> None:
        if data is None and not required:
            data = {}
        if not isinstance(data, dict):
            raise errors.ValidationFailed(
                [{"field": "body", "message": "must be a JSON object"}],
                message="Request body must be a JSON object",
            )
        self.data: dict[str, Any] = data
        self.details: list[dict[str, Any]] = []

    def has(self, name: str) -> bool:
        """Return True when the body carries ``name``."""
        return name in self.data

    def fail(self, name: str, message: str) -> None:
        """Record a problem with ``name``."""
        self.details.append({"field": name, "message": message})

    def _get(self, name: str, required: bool) -> Any:
        value = self.data.get(name, _MISSING)
        if value is _MISSING and required:
            self.fail(name, "is required")
        return value

    def string(
        self,
        name: str,
        *,
        required: bool = False,
        nullable: bool = False,
        max_len: int = MAX_TEXT_LEN,
        pattern: re.Pattern[str] | None = None,
        rule: str = "",
        choices: tuple[str, ...] | None = None,
    ) -> str | None:
        """Return a string field (None when absent or null-and-nullable)."""
        value = self._get(name, required)
        if value is _MISSING or (value is None and nullable):
            return None
        if not isinstance(value, str):
            self.fail(name, "must be a string")
        elif required and not value.strip():
            self.fail(name, "must not be empty")
        elif len(value) > max_len:
            self.fail(name, f"must be at most {max_len} characters")
        elif not _is_unicode_text(value):
            self.fail(name, "must be valid Unicode text (no unpaired surrogates)")
        elif pattern is not None and not pattern.match(value):
            self.fail(name, rule or f"must match {pattern.pattern}")
        elif choices is not None and value not in choices:
            self.fail(name, f"must be one of {', '.join(choices)}")
        else:
            return value
        return None

    def integer(
        self,
        name: str,
        *,
        required: bool = False,
        nullable: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        """Return an integer field (booleans and floats are refused)."""
        value = self._get(name, required)
        if value is _MISSING or (value is None and nullable):
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, "must be an integer")
        elif minimum is not None and value < minimum:
            self.fail(name, f"must be >= {minimum}")
        elif maximum is not None and value > maximum:
            self.fail(name, f"must be <= {maximum}")
        else:
            return value
        return None

    def boolean(self, name: str, *, required: bool = False) -> bool | None:
        """Return a boolean field."""
        value = self._get(name, required)
        if value is _MISSING:
            return None
        if not isinstance(value, bool):
            self.fail(name, "must be a boolean")
            return None
        return value

    def obj(
        self, name: str, *, required: bool = False, nullable: bool = False
    ) -> dict[str, Any] | None:
        """Return an object field."""
        value = self._get(name, required)
        if value is _MISSING or (value is None and nullable):
            return None
        if not isinstance(value, dict):
            self.fail(name, "must be an object")
            return None
        return value

    def strings(self, name: str, *, max_items: int = 64) -> list[str] | None:
        """Return a list-of-strings field."""
        value = self._get(name, False)
        if value is _MISSING:
            return None
        if (
            not isinstance(value, list)
            or len(value) > max_items
            or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in value)
        ):
            self.fail(name, f"must be an array of at most {max_items} non-empty strings")
            return None
        return list(dict.fromkeys(value))  # keep order, drop repeats

    def done(self) -> None:
        """Raise a 400 with every recorded problem."""
        if self.details:
            raise errors.ValidationFailed(self.details)


def _is_unicode_text(value: str) -> bool:
    """Return False for a string JSON smuggled unpaired surrogates into (not storable as UTF-8)."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def path_id(request: web.Request, name: str, *, code: str, what: str) -> str:
    """Return a path id; a malformed one cannot exist, so it is a 404 with ``code``."""
    value = request.match_info[name]
    if not ID_PATTERN.match(value):
        raise errors.NotFound(f"{what} '{value}' not found", code=code)
    return value


# -- queries -------------------------------------------------------------------------------


def query_bool(query: Mapping[str, str], name: str) -> bool | None:
    """Return a true/false query parameter, or None when absent."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise errors.invalid_field(name, "must be true or false")


def query_int(query: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    """Return a bounded integer query parameter."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.invalid_field(name, "must be an integer") from None
    if not minimum <= value <= maximum:
        raise errors.invalid_field(name, f"must be between {minimum} and {maximum}")
    return value


@dataclass(frozen=True, slots=True)
class Page:
    """limit/offset of a list request."""

    limit: int
    offset: int

    @classmethod
    def from_query(cls, query: Mapping[str, str], default_limit: int = 50) -> Page:
        """Parse ``limit`` (1..1000) and ``offset`` (>= 0)."""
        return cls(
            limit=query_int(query, "limit", default_limit, 1, 1000),
            offset=query_int(query, "offset", 0, 0, 2**62),
        )


# -- bodies --------------------------------------------------------------------------------


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
