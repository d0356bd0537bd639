"""/api/sessions, /api/requests, /api/responses and /api/activity: the request history."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aiohttp import web

from apiserver import errors
from apiserver.keys import HISTORY
from apiserver.validation import Page, query_bool, query_int
from qwenstack_core.store.history import RequestFilter, ResponseFilter, Row

T = TypeVar("T")

MAX_FILTER_LEN = 256
RESPONSE_STATS_FIELDS = (
    "total_responses",
    "total_tokens",
    "total_completion_tokens",
    "total_prompt_tokens",
    "avg_duration_ms",
    "success_rate",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MS = re.compile(r"[0-9]{1,15}")


class _Query:
    """Read history query parameters, collecting every problem into one 400."""

    def __init__(self, query: Mapping[str, str]) -> None:
        self.query = query
        self.details: list[dict[str, Any]] = []

    def _guard(self, parse: Callable[[], T], fallback: T) -> T:
        try:
            return parse()
        except errors.ValidationFailed as exc:
            self.details.extend(exc.details or [])
            return fallback

    def page(self) -> Page:
        limit = self._guard(lambda: query_int(self.query, "limit", 50, 1, 1000), 50)
        offset = self._guard(lambda: query_int(self.query, "offset", 0, 0, 2**62), 0)
        return Page(limit, offset)

    def limit(self, default: int) -> int:
        return self._guard(lambda: query_int(self.query, "limit", default, 1, 1000), default)

    def boolean(self, name: str) -> bool | None:
        return self._guard(lambda: query_bool(self.query, name), None)

    def text(self, name: str) -> str | None:
        value = self.query.get(name) or None
        if value is not None and len(value) > MAX_FILTER_LEN:
            self.details.append(
                {"field": name, "message": f"must be at most {MAX_FILTER_LEN} characters"}
            )
            return None
        return value

    def dates(self) -> tuple[int | None, int | None]:
        start, end = self._date("start_date"), self._date("end_date")
        if start is not None and end is not None and start > end:
            self.details.append({"field": "end_date", "message": "must not be before start_date"})
        return start, end

    def _date(self, name: str) -> int | None:
        """Return epoch milliseconds from epoch ms or ISO-8601 (naive means UTC)."""
        raw = self.query.get(name)
        if not raw:
            return None
        if _EPOCH_MS.fullmatch(raw):
            return int(raw)
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            self.details.append(
                {"field": name, "message": "must be epoch milliseconds or an ISO-8601 date"}
            )
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return (when - _EPOCH) // timedelta(milliseconds=1)

    def done(self) -> None:
        if self.details:
            raise errors.ValidationFailed(self.details)


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
    q = _Query(request.query)
    page = q.page()
    q.done()
    items, total = await request.app[HISTORY].sessions(page)
    return web.json_response(_listing("sessions", items, total, page))


async def get_session(request: web.Request) -> web.Response:
    """Return one session."""
    return web.json_response(await request.app[HISTORY].session(request.match_info["session_id"]))


async def list_session_requests(request: web.Request) -> web.Response:
    """List one session's requests, newest first."""
    session_id = request.match_info["session_id"]
    q = _Query(request.query)
    page = q.page()
    q.done()
    items, total = await request.app[HISTORY].session_requests(session_id, page)
    return web.json_response({"session_id": session_id, **_listing("requests", items, total, page)})


async def delete_session(request: web.Request) -> web.Response:
    """Delete a session with its requests and responses."""
    counts = await request.app[HISTORY].delete_session(request.match_info["session_id"])
    return _deleted("Session deleted", counts)


# -- requests ------------------------------------------------------------------------------


async def list_requests(request: web.Request) -> web.Response:
    """List requests, newest first, optionally filtered."""
    q = _Query(request.query)
    page = q.page()
    start, end = q.dates()
    filters = RequestFilter(
        session_id=q.text("session_id"),
        model=q.text("model"),
        stream=q.boolean("stream"),
        start=start,
        end=end,
    )
    q.done()
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


def _response_filter(q: _Query) -> ResponseFilter:
    start, end = q.dates()
    return ResponseFilter(
        session_id=q.text("session_id"),
        request=q.text("request_id"),
        provider_id=q.text("provider_id"),
        start=start,
        end=end,
    )


async def list_responses(request: web.Request) -> web.Response:
    """List responses, newest first, optionally filtered."""
    q = _Query(request.query)
    page = q.page()
    filters = _response_filter(q)
    q.done()
    items, total = await request.app[HISTORY].responses(filters, page)
    return web.json_response(_listing("responses", items, total, page))


async def response_stats(request: web.Request) -> web.Response:
    """Return response totals, by provider and by finish reason."""
    q = _Query(request.query)
    filters = _response_filter(q)
    q.done()
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
    q = _Query(request.query)
    limit = q.limit(20)
    q.done()
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
