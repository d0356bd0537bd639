"""GET /api/openapi.json: the REST contract as an OpenAPI 3.1 document.

Built once from the same pydantic models that validate every body and query
(apiserver.schemas) and from the documented answers (apiserver.responses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from apiserver import __version__, schemas
from apiserver import responses as r

REF = "#/components/schemas/{model}"
ERROR_TEXT = {
    400: "Bad request: malformed JSON, a validation failure (with details) or an undecodable body",
    401: "Missing or wrong API token (when API_TOKEN is set)",
    403: "Host or Origin refused",
    404: "No such resource or route",
    405: "Method not allowed on this path",
    409: "Conflict with existing data",
    413: "Body larger than 1 MiB",
    415: "Body not JSON, or in a Content-Encoding other than identity, gzip or deflate",
    500: "Internal error (details only in the log, with the request id)",
    503: "storage_unavailable: the database cannot be written (read-only, full, gone, replaced)",
}
READ_ERRORS = (400, 401, 403, 404, 405, 500, 503)
WRITE_ERRORS = (400, 401, 403, 404, 405, 409, 413, 415, 500, 503)


@dataclass(frozen=True)
class Op:
    """One operation of the API."""

    method: str
    path: str
    summary: str
    ok: type[BaseModel]
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    links: dict[str, Any] = field(default_factory=dict)
    public: bool = False


def _id_link(operation: str, param: str, pointer: str = "/id") -> dict[str, Any]:
    return {"operationId": operation, "parameters": {param: f"$response.body#{pointer}"}}


P, M, C = (
    "/api/providers/{provider_id}",
    "/api/models/{model_id}",
    "/api/providers/{provider_id}/config",
)
OPS: tuple[Op, ...] = (
    Op("get", "/api/health", "Is the daemon up (degraded: storage fault)", r.Health, public=True),
    Op("get", "/api/openapi.json", "This document", r.Anything, public=True),
    Op("get", "/api/proxy/status", "Status of both children", r.ProxyStatus),
    Op("post", "/api/proxy/start", "Start both children", r.ProxyStatus, query=schemas.StartQuery),
    Op("post", "/api/proxy/stop", "Stop both children", r.ProxyStatus),
    Op("post", "/api/proxy/restart", "Restart both children", r.ProxyStatus),
    Op("post", "/api/proxy/{child}/start", "Start one child", r.ProxyStatus),
    Op("post", "/api/proxy/{child}/stop", "Stop one child", r.ProxyStatus),
    Op("post", "/api/proxy/{child}/restart", "Restart one child", r.ProxyStatus),
    Op(
        "get",
        "/api/proxy/{child}/logs",
        "A child's recent output",
        r.ChildLogs,
        query=schemas.LogsQuery,
    ),
    Op(
        "post",
        "/api/qwen/credentials",
        "Replace the Qwen credentials",
        r.CredentialsSaved,
        body=schemas.CredentialsIn,
    ),
    Op(
        "get",
        "/api/qwen/credentials",
        "Qwen credentials status (never the secrets)",
        r.CredentialsStatus,
    ),
    Op("delete", "/api/qwen/credentials", "Delete the Qwen credentials", r.Success),
    Op("get", "/api/providers", "List providers", r.ProviderList, query=schemas.ProviderQuery),
    Op(
        "post",
        "/api/providers",
        "Create a provider",
        r.ProviderWithConfig,
        201,
        schemas.ProviderIn,
        links={
            "GetProvider": _id_link("get_api_providers_provider_id", "provider_id"),
            "DeleteProvider": _id_link("delete_api_providers_provider_id", "provider_id"),
            "GetProviderConfig": _id_link("get_api_providers_provider_id_config", "provider_id"),
        },
    ),
    Op("get", P, "A provider with its config (masked) and models", r.ProviderDetail),
    Op("put", P, "Change provider fields", r.Provider, body=schemas.ProviderChanges),
    Op("delete", P, "Delete a provider", r.Success),
    Op("post", P + "/enable", "Enable a provider", r.Provider),
    Op("post", P + "/disable", "Disable a provider", r.Provider),
    Op("post", P + "/test", "Call the provider's model list", r.ProviderTest),
    Op("post", P + "/reload", "Make the router re-read the provider", r.ProviderReload),
    Op("get", C, "A provider's configuration (secrets masked)", r.ProviderConfigView),
    Op("put", C, "Upsert configuration keys", r.ProviderConfigView, body=schemas.ConfigIn),
    Op(
        "patch",
        C + "/{key}",
        "Set one configuration key",
        r.ConfigEntryView,
        body=schemas.ConfigValueIn,
    ),
    Op("delete", C + "/{key}", "Delete one configuration key", r.Success),
    Op("get", P + "/models", "Models linked to a provider", r.LinkList),
    Op("post", P + "/models", "Link a model", r.Anything, 201, schemas.LinkIn),
    Op("delete", P + "/models/{model_id}", "Unlink a model", r.Success),
    Op("put", P + "/models/{model_id}/default", "Make a linked model the default", r.Anything),
    Op("get", "/api/models", "List models", r.ModelList, query=schemas.ModelQuery),
    Op(
        "post",
        "/api/models",
        "Create a model",
        r.ModelEnvelope,
        201,
        schemas.ModelIn,
        links={
            "GetModel": _id_link("get_api_models_model_id", "model_id", "/model/id"),
            "DeleteModel": _id_link("delete_api_models_model_id", "model_id", "/model/id"),
        },
    ),
    Op("get", M, "A model with its providers", r.ModelEnvelope),
    Op("put", M, "Change a model", r.ModelEnvelope, body=schemas.ModelChanges),
    Op("delete", M, "Delete a model", r.Success),
    Op(
        "get",
        "/api/settings",
        "All settings, or one category",
        r.SettingsList,
        query=schemas.SettingsQuery,
    ),
    Op(
        "post",
        "/api/settings/bulk",
        "Change several settings, all or nothing",
        r.BulkResult,
        body=schemas.BulkSettingsIn,
    ),
    Op("get", "/api/settings/{key}", "One setting", r.SettingView),
    Op("put", "/api/settings/{key}", "Change one setting", r.SettingView, body=schemas.SettingIn),
    Op("delete", "/api/settings/{key}", "Reset a setting to its default", r.SettingView),
    Op("get", "/api/events/stats", "Socket.IO clients and event counters", r.Anything),
    Op("get", "/api/sessions", "List sessions", r.SessionList, query=schemas.PageQuery),
    Op("get", "/api/sessions/{session_id}", "One session", r.Session),
    Op("delete", "/api/sessions/{session_id}", "Delete a session with its history", r.Deleted),
    Op(
        "get",
        "/api/sessions/{session_id}/requests",
        "A session's requests",
        r.RequestList,
        query=schemas.PageQuery,
    ),
    Op("get", "/api/requests", "List requests", r.RequestList, query=schemas.RequestQuery),
    Op("get", "/api/requests/{request_ref}", "One request (row id or request UUID)", r.Request),
    Op("delete", "/api/requests/{request_ref}", "Delete a request with its responses", r.Deleted),
    Op("get", "/api/responses", "List responses", r.ResponseList, query=schemas.ResponseQuery),
    Op(
        "get",
        "/api/responses/stats",
        "Response totals",
        r.ResponseStats,
        query=schemas.ResponseFilterQuery,
    ),
    Op("get", "/api/responses/{response_ref}", "One response", r.Response),
    Op("delete", "/api/responses/{response_ref}", "Delete a response", r.Deleted),
    Op(
        "get",
        "/api/activity/recent",
        "The newest requests with their outcome",
        r.ActivityList,
        query=schemas.ActivityQuery,
    ),
    Op("get", "/api/activity/stats", "History counters", r.ActivityStats),
)

_PARAM = re.compile(r"{([^}]+)}")


def operation_id(op: Op) -> str:
    """Return a stable operationId such as ``get_api_providers_provider_id``."""
    return op.method + "_" + re.sub(r"[^a-z0-9]+", "_", op.path.lower()).strip("_")


def _operation(op: Op, components: dict[str, Any], token: bool) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(op.path)
    ]
    if op.query is not None:
        schema = components[op.query.__name__]
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": False, "schema": prop})
    responses: dict[str, Any] = {
        str(op.status): {
            "description": op.summary,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=op.ok.__name__)}}},
        }
    }
    if op.links:
        responses[str(op.status)]["links"] = op.links
    writes = op.method != "get"
    for status in WRITE_ERRORS if writes else READ_ERRORS:
        if status == 401 and (op.public or not token):
            continue
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    doc: dict[str, Any] = {
        "operationId": operation_id(op),
        "summary": op.summary,
        "tags": [op.path.split("/")[2]],
        "parameters": params,
        "responses": responses,
    }
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model=op.body.__name__)}}
            },
        }
    if op.public:
        doc["security"] = []
    return doc


def _without_null_defaults(schema: Any) -> Any:
    """Drop ``"default": null`` (pydantic's mark of "may be absent"; null itself is refused)."""
    if isinstance(schema, dict):
        return {
            k: _without_null_defaults(v)
            for k, v in schema.items()
            if not (k == "default" and v is None)
        }
    if isinstance(schema, list):
        return [_without_null_defaults(v) for v in schema]
    return schema


def build_document(*, token: bool = False) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document (``token``: the API requires a bearer token)."""
    models: set[type[BaseModel]] = {r.Error}
    for op in OPS:
        models.add(op.ok)
        models.update(m for m in (op.body, op.query) if m is not None)
    _, defs = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template=REF,
    )
    components: dict[str, Any] = _without_null_defaults(defs.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in OPS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, components, token)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "qwen-proxy-stack API server",
            "version": __version__,
            "description": "Control plane of the local LLM-proxy stack. Every error has the "
            "shape {error: {message, type, code, details?}}.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "responses": {
                f"E{status}": {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": REF.format(model="Error")}}
                    },
                }
                for status, text in ERROR_TEXT.items()
            },
        },
    }
    if token:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
