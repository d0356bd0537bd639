"""Request history: read and prune what the children record (no caching: they write it)."""

from __future__ import annotations

from apiserver.validation import Page
from qwenstack_core.store import Connection, Store, history_stats
from qwenstack_core.store import history as rows
from qwenstack_core.store.history import RequestFilter, ResponseFilter, Row
from qwenstack_core.store.providers import now_ms

Listing = tuple[list[Row], int]


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
        return await self._store.read(lambda c: rows.get_session(c, session_id))

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
        return await self._store.read(lambda c: rows.get_request(c, ref))

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
        return await self._store.read(lambda c: rows.get_response(c, ref))

    async def delete_response(self, ref: str) -> Row:
        return await self._store.write(lambda c: rows.delete_response(c, ref))

    # -- activity --------------------------------------------------------------------------

    async def recent_activity(self, limit: int) -> Listing:
        return await self._store.read(lambda c: history_stats.recent_activity(c, limit=limit))

    async def activity_stats(self) -> Row:
        now = now_ms()
        return await self._store.read(lambda c: history_stats.activity_stats(c, now=now))
