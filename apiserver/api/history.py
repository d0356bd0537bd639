"""/api/sessions, /api/requests, /api/responses and /api/activity: the request history."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from apiserver.keys import HISTORY
from apiserver.schema_types import parse_query
from apiserver.schemas import (
    ActivityQuery,
    PageQuery,
    RequestQuery,
    ResponseFilterQuery,
    ResponseQuery,
)
from apiserver.validation import Page
from qwenstack_core.store.history import RequestFilter, ResponseFilter, Row

RESPONSE_STATS_FIELDS = (
    "total_responses",
    "total_tokens",
    "total_completion_tokens",
    "total_prompt_tokens",
    "avg_duration_ms",
    "success_rate",
)


def _listing(name: str, items: list[Row], total: int, page: Page) -> dict[str, Any]:
    return {
        name: items,
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
        "has_more": page.offset + len(items) < total,
    }


def _deleted(message: str, counts: Row) -> web.Response:
    return web.json_response({"success": True, "message": message, "deleted": counts})


# -- sessions ------------------------------------------------------------------------------


async def list_sessions(request: web.Request) -> web.Response:
    """List sessions, most recently used first."""
    page = _page(parse_query(PageQuery, request.query))
    items, total = await request.app[HISTORY].sessions(page)
    return web.json_response(_listing("sessions", items, total, page))


async def get_session(request: web.Request) -> web.Response:
    """Return one session."""
    return web.json_response(await request.app[HISTORY].session(request.match_info["session_id"]))


async def list_session_requests(request: web.Request) -> web.Response:
    """List one session's requests, newest first."""
    session_id = request.match_info["session_id"]
    page = _page(parse_query(PageQuery, request.query))
    items, total = await request.app[HISTORY].session_requests(session_id, page)
    return web.json_response({"session_id": session_id, **_listing("requests", items, total, page)})


async def delete_session(request: web.Request) -> web.Response:
    """Delete a session with its requests and responses."""
    counts = await request.app[HISTORY].delete_session(request.match_info["session_id"])
    return _deleted("Session deleted", counts)


# -- requests ------------------------------------------------------------------------------


async def list_requests(request: web.Request) -> web.Response:
    """List requests, newest first, optionally filtered."""
    q = parse_query(RequestQuery, request.query)
    page = _page(q)
    filters = RequestFilter(
        session_id=q.session_id,
        model=q.model,
        stream=q.stream,
        start=q.start_date,
        end=q.end_date,
    )
    items, total = await request.app[HISTORY].requests(filters, page)
    return web.json_response(_listing("requests", items, total, page))


async def get_request(request: web.Request) -> web.Response:
    """Return one request (by row id or request UUID) with its responses."""
    return web.json_response(await request.app[HISTORY].request(request.match_info["request_ref"]))


async def delete_request(request: web.Request) -> web.Response:
    """Delete a request with its responses."""
    counts = await request.app[HISTORY].delete_request(request.match_info["request_ref"])
    return _deleted("Request deleted", counts)


# -- responses -----------------------------------------------------------------------------


def _response_filter(q: ResponseFilterQuery) -> ResponseFilter:
    return ResponseFilter(
        session_id=q.session_id,
        request=q.request_id,
        provider_id=q.provider_id,
        start=q.start_date,
        end=q.end_date,
    )


def _page(q: PageQuery) -> Page:
    return Page(q.limit, q.offset)


async def list_responses(request: web.Request) -> web.Response:
    """List responses, newest first, optionally filtered."""
    q = parse_query(ResponseQuery, request.query)
    page = _page(q)
    filters = _response_filter(q)
    items, total = await request.app[HISTORY].responses(filters, page)
    return web.json_response(_listing("responses", items, total, page))


async def response_stats(request: web.Request) -> web.Response:
    """Return response totals, by provider and by finish reason."""
    filters = _response_filter(parse_query(ResponseFilterQuery, request.query))
    stats = await request.app[HISTORY].response_stats(filters)
    # The prototype's fields at the top level (numbers, never null); "stats" has them all.
    top = {key: stats[key] or 0 for key in RESPONSE_STATS_FIELDS}
    return web.json_response({**top, "stats": stats})


async def get_response(request: web.Request) -> web.Response:
    """Return one response."""
    found = await request.app[HISTORY].response(request.match_info["response_ref"])
    return web.json_response(found)


async def delete_response(request: web.Request) -> web.Response:
    """Delete one response."""
    counts = await request.app[HISTORY].delete_response(request.match_info["response_ref"])
    return _deleted("Response deleted", counts)


# -- activity ------------------------------------------------------------------------------


async def recent_activity(request: web.Request) -> web.Response:
    """Return the newest requests with their outcome."""
    limit = parse_query(ActivityQuery, request.query).limit
    items, total = await request.app[HISTORY].recent_activity(limit)
    return web.json_response({"activities": items, "total": total, "limit": limit})


async def activity_stats(request: web.Request) -> web.Response:
    """Return overall history counters."""
    return web.json_response({"stats": await request.app[HISTORY].activity_stats()})


def setup(app: web.Application) -> None:
    """Register the routes."""
    r = app.router
    r.add_get("/api/sessions", list_sessions)
    r.add_get("/api/sessions/{session_id}", get_session)
    r.add_delete("/api/sessions/{session_id}", delete_session)
    r.add_get("/api/sessions/{session_id}/requests", list_session_requests)
    r.add_get("/api/requests", list_requests)
    r.add_get("/api/requests/{request_ref}", get_request)
    r.add_delete("/api/requests/{request_ref}", delete_request)
    r.add_get("/api/responses", list_responses)
    r.add_get("/api/responses/stats", response_stats)  # before {response_ref}
    r.add_get("/api/responses/{response_ref}", get_response)
    r.add_delete("/api/responses/{response_ref}", delete_response)
    r.add_get("/api/activity/recent", recent_activity)
    r.add_get("/api/activity/stats", activity_stats)
