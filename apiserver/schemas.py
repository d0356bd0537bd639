"""The request bodies and queries of the REST API: pydantic v2 models, validated at the edge.

Handlers call ``parse_body``/``parse_query`` (apiserver.schema_types) with these models; the
OpenAPI document is generated from the same models, so what is documented is what is checked.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator, model_validator

from apiserver.schema_types import (
    Body,
    Id,
    Name,
    Query,
    QueryBool,
    QueryText,
    Secret,
    Text,
    fail,
    int_query,
    int_query_schema,
)
from qwenstack_core.store.settings import SETTINGS

ProviderType = Literal["qwen-proxy", "lm-studio", "qwen-direct", "openai-compatible"]
SettingsCategory = Literal["server", "logging", "system", "provider"]
CONFIG_KEY: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
CONFIG_KEY_RULE: Final = "key must be 1-64 letters, digits, '_', '.' or '-'"
Capability = Annotated[str, Field(min_length=1, max_length=64)]
Capabilities = Annotated[list[Capability], Field(max_length=64)]
Priority = Annotated[int, Field(ge=-1000, le=1000)]


# -- credentials ---------------------------------------------------------------------------


class CredentialsIn(Body):
    """Body of POST /api/qwen/credentials."""

    token: Secret
    cookies: Secret
    expires_at: Annotated[int | None, Field(alias="expiresAt", ge=0)] = None

    @field_validator("expires_at")
    @classmethod
    def _seconds(cls, value: int | None) -> int | None:
        if value is not None and value > 10**11:
            raise fail("looks like milliseconds: expiresAt must be Unix seconds")
        return value


# -- models --------------------------------------------------------------------------------


def _unique(values: list[str] | None) -> list[str] | None:
    return None if values is None else list(dict.fromkeys(values))  # keep order, drop repeats


class ModelIn(Body):
    """Body of POST /api/models."""

    id: Id
    name: Name
    description: Text | None = None
    # A factory, not ``= []``: pydantic deep-copies a mutable default on every validation.
    capabilities: Capabilities = Field(default_factory=list, json_schema_extra={"default": []})

    @field_validator("capabilities")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return _unique(value) or []


class ModelChanges(Body):
    """Body of PUT /api/models/{id}: at least one field."""

    model_config = Body.model_config | {"json_schema_extra": {"minProperties": 1}}

    # Field(default=None) on a non-optional type: the field may be absent, but not null.
    name: Name = Field(default=None)  # type: ignore[assignment]
    description: Text | None = None
    capabilities: Capabilities = Field(default=None)  # type: ignore[arg-type]

    @field_validator("capabilities")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return _unique(value) or []

    @model_validator(mode="after")
    def _some(self) -> ModelChanges:
        if not self.model_fields_set:
            raise fail("must contain at least one of name, description, capabilities")
        return self

    def changes(self) -> dict[str, Any]:
        """Return the fields sent."""
        return self.model_dump(include=self.model_fields_set)


# -- providers -----------------------------------------------------------------------------


class ProviderConfig(Body):
    """A provider's key/value configuration: known keys typed, any other key allowed."""

    model_config = Body.model_config | {
        "extra": "allow",
        "json_schema_extra": {"propertyNames": {"pattern": CONFIG_KEY.pattern}, "minProperties": 1},
    }

    baseURL: Annotated[str, Field(pattern=r"^https?://", max_length=2048)] = Field(default=None)  # type: ignore[assignment]
    apiKey: Annotated[str, Field(max_length=16 * 1024)] = Field(default=None)  # type: ignore[assignment]
    timeout: Annotated[int, Field(gt=0, le=3_600_000)] = Field(default=None)  # type: ignore[assignment]
    defaultModel: Annotated[str, Field(max_length=256)] = Field(default=None)  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if not isinstance(key, str) or not CONFIG_KEY.match(key):
                    raise fail(CONFIG_KEY_RULE, field=str(key))
        return data

    def values(self) -> dict[str, Any]:
        """Return the keys sent, with their values."""
        return {k: getattr(self, k) for k in self.model_fields_set}


class ProviderIn(Body):
    """Body of POST /api/providers."""

    id: Id
    name: Name
    type: ProviderType
    enabled: bool = True
    priority: Priority = 0
    description: Text | None = None
    config: ProviderConfig | None = None

    def config_values(self) -> dict[str, Any]:
        """Return the initial configuration sent (may be empty)."""
        return self.config.values() if self.config is not None else {}


class ProviderChanges(Body):
    """Body of PUT /api/providers/{id}: at least one field."""

    model_config = Body.model_config | {"json_schema_extra": {"minProperties": 1}}

    name: Name = Field(default=None)  # type: ignore[assignment]
    type: ProviderType = Field(default=None)  # type: ignore[arg-type]
    enabled: bool = Field(default=None)  # type: ignore[assignment]
    priority: Priority = Field(default=None)  # type: ignore[assignment]
    description: Text | None = None

    @model_validator(mode="after")
    def _some(self) -> ProviderChanges:
        if not self.model_fields_set:
            raise fail("must contain at least one of name, type, enabled, priority, description")
        return self

    def changes(self) -> dict[str, Any]:
        """Return the fields sent."""
        return self.model_dump(include=self.model_fields_set)


class ConfigIn(Body):
    """Body of PUT /api/providers/{id}/config."""

    config: ProviderConfig

    @field_validator("config", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, dict) and not value:
            raise fail("must contain at least one key")
        return value


class ConfigValueIn(Body):
    """Body of PATCH /api/providers/{id}/config/{key} (``value`` is checked by its key)."""

    value: Any
    is_sensitive: bool | None = None


class LinkIn(Body):
    """Body of POST /api/providers/{id}/models."""

    model_id: Id
    is_default: bool = False
    config: dict[str, Any] | None = None


# -- settings ------------------------------------------------------------------------------


class SettingIn(Body):
    """Body of PUT /api/settings/{key} (the value is checked by the setting's type)."""

    value: Any


class BulkSettingsIn(Body):
    """Body of POST /api/settings/bulk."""

    settings: Annotated[
        dict[str, Any],
        Field(min_length=1, json_schema_extra={"propertyNames": {"enum": list(SETTINGS)}}),
    ]


# -- queries -------------------------------------------------------------------------------

Limit = Annotated[int, BeforeValidator(int_query(1, 1000, 50)), int_query_schema(1, 1000, 50)]
Offset = Annotated[int, BeforeValidator(int_query(0, 2**62, 0)), int_query_schema(0, 2**62, 0)]
ActivityLimit = Annotated[
    int, BeforeValidator(int_query(1, 1000, 20)), int_query_schema(1, 1000, 20)
]
LogLines = Annotated[
    int, BeforeValidator(int_query(1, 10000, 200)), int_query_schema(1, 10000, 200)
]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MS = re.compile(r"[0-9]{1,15}")


def _date(raw: Any) -> int | None:
    """Return epoch milliseconds from epoch ms or ISO-8601 (naive means UTC)."""
    if raw is None or raw == "":
        return None
    text = str(raw)
    if _EPOCH_MS.fullmatch(text):
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise fail("must be epoch milliseconds or an ISO-8601 date") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // timedelta(milliseconds=1)


DateQuery = Annotated[
    int | None,
    BeforeValidator(_date),
    WithJsonSchema({"type": "string", "description": "epoch milliseconds or ISO-8601"}),
]


def _blank(value: Any) -> Any:
    return None if value == "" else value


class ProviderQuery(Query):
    """Query of GET /api/providers."""

    type: Annotated[ProviderType | None, BeforeValidator(_blank)] = None
    enabled: QueryBool = None


class ModelQuery(Query):
    """Query of GET /api/models."""

    capability: QueryText = None
    provider: QueryText = None


class SettingsQuery(Query):
    """Query of GET /api/settings."""

    category: Annotated[SettingsCategory | None, BeforeValidator(_blank)] = None


class PageQuery(Query):
    """``limit`` (1..1000, default 50) and ``offset`` of a list."""

    limit: Limit = 50
    offset: Offset = 0


class RequestQuery(PageQuery):
    """Query of GET /api/requests."""

    session_id: QueryText = None
    model: QueryText = None
    stream: QueryBool = None
    start_date: DateQuery = None
    end_date: DateQuery = None

    @model_validator(mode="after")
    def _range(self) -> RequestQuery:
        _check_range(self.start_date, self.end_date)
        return self


class ResponseFilterQuery(Query):
    """Filters of GET /api/responses and /api/responses/stats."""

    session_id: QueryText = None
    request_id: QueryText = None
    provider_id: QueryText = None
    start_date: DateQuery = None
    end_date: DateQuery = None

    @model_validator(mode="after")
    def _range(self) -> ResponseFilterQuery:
        _check_range(self.start_date, self.end_date)
        return self


class ResponseQuery(ResponseFilterQuery, PageQuery):
    """Query of GET /api/responses."""


def _check_range(start: int | None, end: int | None) -> None:
    if start is not None and end is not None and start > end:
        raise fail("must not be before start_date", field="end_date")


class ActivityQuery(Query):
    """Query of GET /api/activity/recent."""

    limit: ActivityLimit = 20


class LogsQuery(Query):
    """Query of GET /api/proxy/{child}/logs."""

    lines: LogLines = 200


class StartQuery(Query):
    """Query of POST /api/proxy/start."""

    wait: QueryBool = None
