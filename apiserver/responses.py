"""The response bodies of the REST API, as pydantic models used only to document them.

Answers are built by the services as plain dicts (cheaper than building models per request);
these models describe them for the OpenAPI document, and the schemathesis run against the live
daemon checks that every answer conforms. New fields may be added: every object allows more.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Shape(BaseModel):
    """An object of an answer: the fields named here, and possibly more."""

    model_config = ConfigDict(extra="allow")


class ErrorDetail(Shape):
    """One problem of a request."""

    field: str
    message: str


class ErrorInfo(BaseModel):
    """The inside of the one error shape."""

    model_config = ConfigDict(extra="forbid")

    message: str
    type: str
    code: str
    details: list[ErrorDetail] | None = None


class Error(BaseModel):
    """The one error shape of every 4xx and 5xx."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorInfo


class Health(Shape):
    """GET /api/health."""

    status: Literal["ok", "degraded"]
    service: str
    version: str
    timestamp: str
    reason: str | None = None


class Success(Shape):
    """A write that answers with a sentence."""

    success: bool
    message: str


class Provider(Shape):
    """A provider row."""

    id: str
    name: str
    type: str
    enabled: bool
    priority: int
    description: str | None
    created_at: int
    updated_at: int


class Model(Shape):
    """A model row."""

    id: str
    name: str
    description: str | None
    capabilities: list[str]
    created_at: int
    updated_at: int


class ProviderList(Shape):
    """GET /api/providers."""

    providers: list[Provider]
    total: int


class ProviderDetail(Provider):
    """GET /api/providers/{id}: the provider with its masked config and linked models."""

    config: dict[str, Any]
    models: list[dict[str, Any]]


class ProviderWithConfig(Provider):
    """POST /api/providers."""

    config: dict[str, Any]


class ProviderConfigView(Shape):
    """GET and PUT /api/providers/{id}/config (secrets "***")."""

    provider_id: str
    config: dict[str, Any]
    updated_count: int | None = None
    secrets_dropped: list[str] | None = None


class ConfigEntryView(Shape):
    """PATCH /api/providers/{id}/config/{key}."""

    provider_id: str
    key: str
    value: Any
    is_sensitive: bool
    updated_at: int


class LinkList(Shape):
    """GET /api/providers/{id}/models."""

    provider_id: str
    models: list[dict[str, Any]]
    total: int


class ModelList(Shape):
    """GET /api/models."""

    models: list[Model]
    total: int


class ModelEnvelope(Shape):
    """A model in ``{"model": ...}``."""

    model: Model


class ProviderTest(Shape):
    """POST /api/providers/{id}/test."""

    provider_id: str
    healthy: bool
    duration_ms: float
    timestamp: str
    models: list[str] | None = None
    error: str | None = None


class ProviderReload(Shape):
    """POST /api/providers/{id}/reload."""

    provider_id: str
    message: str
    timestamp: str


class SettingsList(Shape):
    """GET /api/settings."""

    settings: dict[str, Any]
    category: str


class SettingView(Shape):
    """One setting (GET, PUT, DELETE /api/settings/{key})."""

    key: str
    value: Any
    requiresRestart: bool


class BulkResult(Shape):
    """POST /api/settings/bulk."""

    updated: list[str]
    requiresRestart: bool
    message: str


class CredentialsStatus(Shape):
    """GET /api/qwen/credentials (never the secrets)."""

    hasCredentials: bool
    isValid: bool
    isExpired: bool
    expiresAt: int | None
    createdAt: int | None
    updatedAt: int | None


class CredentialsSaved(Success):
    """POST /api/qwen/credentials."""

    expiresAt: int | None


class Listing(Shape):
    """A page of history rows."""

    total: int
    limit: int
    offset: int
    has_more: bool


class SessionList(Listing):
    """GET /api/sessions."""

    sessions: list[dict[str, Any]]


class RequestList(Listing):
    """GET /api/requests and /api/sessions/{id}/requests."""

    requests: list[dict[str, Any]]


class ResponseList(Listing):
    """GET /api/responses."""

    responses: list[dict[str, Any]]


class Session(Shape):
    """GET /api/sessions/{id}: the session's fields at the top level."""

    id: str
    request_count: int
    created_at: int
    last_accessed: int


class Request(Shape):
    """GET /api/requests/{id}: the request's fields + its latest response."""

    id: int
    request_id: str | None
    model: str | None
    stream: bool
    created_at: int
    response: dict[str, Any] | None


class RequestSummary(Shape):
    """The request a response answered."""

    id: int
    request_id: str | None
    model: str | None
    stream: bool
    timestamp: int


class Response(Shape):
    """GET /api/responses/{id}: the response's fields + its request."""

    id: int
    created_at: int
    request: RequestSummary | None


class ResponseStats(Shape):
    """GET /api/responses/stats."""

    total_responses: int
    total_tokens: int
    total_completion_tokens: int
    total_prompt_tokens: int
    avg_duration_ms: float
    success_rate: float


class Deleted(Success):
    """A history delete: the rows removed per table."""

    deleted: dict[str, int]


class ActivityMetadata(Shape):
    """What an activity item is about."""

    method: str
    path: str
    status: Literal["success", "error"]
    duration_ms: float | None
    session_id: str | None
    request_id: str | None


class Activity(Shape):
    """One item of GET /api/activity/recent."""

    id: int
    type: Literal["api_request"]
    action: Literal["completed", "failed"]
    description: str
    timestamp: str
    timestamp_ms: int
    metadata: ActivityMetadata


class ActivityList(Shape):
    """GET /api/activity/recent."""

    activities: list[Activity]
    total: int
    limit: int


class ActivityStatsBody(Shape):
    """The counters of GET /api/activity/stats (all numbers)."""

    total_api_requests: int
    avg_response_time_ms: float
    active_sessions: int
    recent_errors: int
    total_providers: int
    total_models: int
    requests_last_hour: int
    requests_last_day: int
    success_rate_percent: float


class ActivityStats(Shape):
    """GET /api/activity/stats."""

    stats: ActivityStatsBody


class ProxyStatus(Shape):
    """GET /api/proxy/status and the answers of start/stop/restart."""

    status: str
    providerRouter: dict[str, Any]
    qwenProxy: dict[str, Any]


class ChildLogs(Shape):
    """GET /api/proxy/{child}/logs."""

    child: str
    lines: list[dict[str, Any]]


class Anything(Shape):
    """An object this document does not detail."""
