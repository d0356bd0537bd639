"""Request history: read and prune what the children record (no caching: they write it)."""

from __future__ import annotations

from apiserver.validation import Page
from qwenstack_core.store import Connection, Store, history_stats
from qwenstack_core.store import history as rows
from qwenstack_core.store.history import RequestFilter, ResponseFilter, Row
from qwenstack_core.store.providers import now_ms

Listing = tuple[list[Row], int]


def time_ago(then_ms: int, now_ms_: int) -> str:
    """Return a human "N minutes ago" for an epoch-ms instant."""
    seconds = max(0, (now_ms_ - then_ms) // 1000)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def activity_item(item: Row, now: int) -> Row:
    """Add the prototype's activity fields to one recent-activity row."""
    failed = item["status"] == "error"
    metadata: Row = {
        "method": item["method"],
        "path": item["path"],
        "status": "error" if failed else "success",
        "duration_ms": item["duration_ms"],
        "session_id": item["session_id"],
        "request_id": item["request_id"],
    }
    if item["error"] is not None:
        metadata["error"] = item["error"]
    if item["finish_reason"] is not None:
        metadata["finish_reason"] = item["finish_reason"]
    model = item["model"] or "unknown model"
    return {
        **item,
        "type": "api_request",
        "action": "failed" if failed else "completed",
        "description": f"{item['method']} {item['path']} ({model}) "
        + ("failed" if failed else "completed"),
        "timestamp": time_ago(item["created_at"], now),
        "timestamp_ms": item["created_at"],
        "metadata": metadata,
    }


class HistoryService:
    """Sessions, requests, responses and activity views over the shared store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- sessions --------------------------------------------------------------------------

    async def sessions(self, page: Page) -> Listing:
        return await self._store.read(
            lambda c: rows.list_sessions(c, limit=page.limit, offset=page.offset)
        )

    async def session(self, session_id: str) -> Row:
        """Return the session's fields (with ``request_count``) at the top level."""
        session = await self._store.read(lambda c: rows.get_session(c, session_id))
        # "session" repeats them for the clients of the first versions of this daemon.
        return {**session, "session": session}

    async def session_requests(self, session_id: str, page: Page) -> Listing:
        """Return a page of one session's requests (404 for an unknown session)."""

        def read(conn: Connection) -> Listing:
            rows.get_session(conn, session_id)
            return rows.list_requests(
                conn, RequestFilter(session_id=session_id), limit=page.limit, offset=page.offset
            )

        return await self._store.read(read)

    async def delete_session(self, session_id: str) -> Row:
        return await self._store.write(lambda c: rows.delete_session(c, session_id))

    # -- requests --------------------------------------------------------------------------

    async def requests(self, filters: RequestFilter, page: Page) -> Listing:
        return await self._store.read(
            lambda c: rows.list_requests(c, filters, limit=page.limit, offset=page.offset)
        )

    async def request(self, ref: str) -> Row:
        """Return the request's fields + ``response`` (its latest response row, or null)."""
        found = await self._store.read(lambda c: rows.get_request(c, ref))
        responses = found["responses"]
        return {**found, "response": responses[-1] if responses else None, "request": found}

    async def delete_request(self, ref: str) -> Row:
        return await self._store.write(lambda c: rows.delete_request(c, ref))

    # -- responses -------------------------------------------------------------------------

    async def responses(self, filters: ResponseFilter, page: Page) -> Listing:
        return await self._store.read(
            lambda c: rows.list_responses(c, filters, limit=page.limit, offset=page.offset)
        )

    async def response_stats(self, filters: ResponseFilter) -> Row:
        return await self._store.read(lambda c: history_stats.response_stats(c, filters))

    async def response(self, ref: str) -> Row:
        """Return the response's fields + ``request`` (a summary of its request, or null)."""

        def read(conn: Connection) -> Row:
            found = rows.get_response(conn, ref)
            return {
                **found,
                "request": rows.request_summary(conn, found["request_id"]),
                "response": found,
            }

        return await self._store.read(read)

    async def delete_response(self, ref: str) -> Row:
        return await self._store.write(lambda c: rows.delete_response(c, ref))

    # -- activity --------------------------------------------------------------------------

    async def recent_activity(self, limit: int) -> Listing:
        """Return the newest requests as activity items (the prototype's fields added)."""
        items, total = await self._store.read(
            lambda c: history_stats.recent_activity(c, limit=limit)
        )
        now = now_ms()
        return [activity_item(item, now) for item in items], total

    async def activity_stats(self) -> Row:
        now = now_ms()
        return await self._store.read(lambda c: history_stats.activity_stats(c, now=now))
