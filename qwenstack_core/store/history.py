"""Request history: list, read and delete sessions, requests and responses.

The children write these rows; aggregates over them are in history_stats.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from qwenstack_core.errors import NotFound

Row = dict[str, Any]
Page = tuple[list[Row], int]

# A row id given as text: plain ASCII digits, no sign, no leading zero, within SQLite's int64.
# Anything else ("12abc", "012", "+12", "１２") is not an id, so it cannot match one.
_ROW_ID = re.compile(r"0|[1-9][0-9]{0,17}")

_SESSION_COLUMNS = (
    "s.id, s.chat_id, s.parent_id, s.first_user_message, s.message_count, s.created_at,"
    " s.last_accessed,"
    " (SELECT COUNT(*) FROM requests q WHERE q.session_id = s.id) AS request_count"
)
_REQUEST_COLUMNS = (
    "q.id, q.request_id, q.session_id, q.provider_id, q.model, q.stream, q.method, q.path,"
    " q.body, q.created_at"
)
_RESPONSE_COLUMNS = (
    "r.id, r.request_id, q.request_id AS request_uuid, r.session_id, r.provider_id, q.model,"
    " r.status_code, r.body, r.prompt_tokens, r.completion_tokens, r.total_tokens,"
    " r.finish_reason, r.error, r.error_class, r.duration_ms, r.ttfb_ms, r.created_at"
)


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """Filters of a request list (``start``/``end`` in epoch ms, inclusive)."""

    session_id: str | None = None
    model: str | None = None
    stream: bool | None = None
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True, slots=True)
class ResponseFilter:
    """Filters of a response list or its stats (``request`` is a row id or a request UUID)."""

    session_id: str | None = None
    request: str | None = None
    provider_id: str | None = None
    start: int | None = None
    end: int | None = None


def row_id(ref: str) -> int | None:
    """Return ``ref`` as a row id when it is exactly one, else None."""
    return int(ref) if _ROW_ID.fullmatch(ref) else None


def _json(text: str | None) -> Any:
    """Parse a stored JSON column; a value that is not JSON is returned as it is."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _session(row: sqlite3.Row) -> Row:
    return {
        "id": row["id"],
        "chat_id": row["chat_id"],
        "parent_id": row["parent_id"],
        "first_user_message": row["first_user_message"],
        "message_count": row["message_count"],
        "request_count": row["request_count"],
        "created_at": row["created_at"],
        "last_accessed": row["last_accessed"],
    }


def _request(row: sqlite3.Row) -> Row:
    return {
        "id": row["id"],
        "request_id": row["request_id"],
        "session_id": row["session_id"],
        "provider_id": row["provider_id"],
        "model": row["model"],
        "stream": bool(row["stream"]),
        "method": row["method"],
        "path": row["path"],
        "body": _json(row["body"]),
        "created_at": row["created_at"],
    }


def _response(row: sqlite3.Row) -> Row:
    return {
        "id": row["id"],
        "request_id": row["request_id"],
        "request_uuid": row["request_uuid"],
        "session_id": row["session_id"],
        "provider_id": row["provider_id"],
        "model": row["model"],
        "status_code": row["status_code"],
        "body": _json(row["body"]),
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "total_tokens": row["total_tokens"],
        "finish_reason": row["finish_reason"],
        "error": row["error"],
        "error_class": row["error_class"],
        "duration_ms": row["duration_ms"],
        "ttfb_ms": row["ttfb_ms"],
        "created_at": row["created_at"],
    }


class Where:
    """AND-ed conditions with their arguments."""

    def __init__(self) -> None:
        self.terms: list[str] = []
        self.args: list[Any] = []

    def add(self, term: str, *args: Any) -> None:
        self.terms.append(term)
        self.args.extend(args)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.terms) if self.terms else ""


def _time_range(where: Where, column: str, start: int | None, end: int | None) -> None:
    if start is not None:
        where.add(f"{column} >= ?", start)
    if end is not None:
        where.add(f"{column} <= ?", end)


def count_rows(conn: sqlite3.Connection, sql: str, args: list[Any] | tuple[Any, ...]) -> int:
    """Return the single integer a ``SELECT COUNT(*)`` query yields."""
    return int(conn.execute(sql, args).fetchone()[0])


# -- sessions ------------------------------------------------------------------------------


def list_sessions(conn: sqlite3.Connection, *, limit: int, offset: int) -> Page:
    """Return a page of sessions (most recently used first) and the total count."""
    rows = conn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM sessions s"
        " ORDER BY s.last_accessed DESC, s.created_at DESC, s.id LIMIT ? OFFSET ?",
        (limit, offset),
    )
    return [_session(r) for r in rows], count_rows(conn, "SELECT COUNT(*) FROM sessions", ())


def get_session(conn: sqlite3.Connection, session_id: str) -> Row:
    """Return one session or raise 404."""
    row = conn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM sessions s WHERE s.id = ?", (session_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"Session '{session_id}' not found", code="session_not_found")
    return _session(row)


def delete_session(conn: sqlite3.Connection, session_id: str) -> Row:
    """Delete a session with its requests and responses; return how many rows went."""
    get_session(conn, session_id)
    # Explicit deletes (children first) rather than relying on the foreign-key cascade alone:
    # the counts come for free and nothing depends on the connection's foreign_keys pragma.
    responses = conn.execute(
        "DELETE FROM responses WHERE session_id = ?"
        " OR request_id IN (SELECT id FROM requests WHERE session_id = ?)",
        (session_id, session_id),
    ).rowcount
    requests = conn.execute("DELETE FROM requests WHERE session_id = ?", (session_id,)).rowcount
    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
    return {"sessions": 1, "requests": requests, "responses": responses}


# -- requests ------------------------------------------------------------------------------


def list_requests(
    conn: sqlite3.Connection, filters: RequestFilter, *, limit: int, offset: int
) -> Page:
    """Return a page of requests (newest first) matching ``filters`` and the total count."""
    where = Where()
    if filters.session_id is not None:
        where.add("q.session_id = ?", filters.session_id)
    if filters.model is not None:
        where.add("q.model = ?", filters.model)
    if filters.stream is not None:
        where.add("q.stream = ?", int(filters.stream))
    _time_range(where, "q.created_at", filters.start, filters.end)
    rows = conn.execute(
        f"SELECT {_REQUEST_COLUMNS} FROM requests q{where.sql()}"
        " ORDER BY q.created_at DESC, q.id DESC LIMIT ? OFFSET ?",
        (*where.args, limit, offset),
    )
    items = [_request(r) for r in rows]
    return items, count_rows(conn, f"SELECT COUNT(*) FROM requests q{where.sql()}", where.args)


def _find_request(conn: sqlite3.Connection, ref: str) -> sqlite3.Row:
    """Return the request whose row id or request UUID is exactly ``ref``, or raise 404."""
    row: sqlite3.Row | None = None
    numeric = row_id(ref)
    if numeric is not None:
        row = conn.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests q WHERE q.id = ?", (numeric,)
        ).fetchone()
    if row is None:
        row = conn.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests q WHERE q.request_id = ?", (ref,)
        ).fetchone()
    if row is None:
        raise NotFound(f"Request '{ref}' not found", code="request_not_found")
    return row


def _responses_of(conn: sqlite3.Connection, request_pk: int) -> list[Row]:
    rows = conn.execute(
        f"SELECT {_RESPONSE_COLUMNS} FROM responses r JOIN requests q ON q.id = r.request_id"
        " WHERE r.request_id = ? ORDER BY r.created_at, r.id",
        (request_pk,),
    )
    return [_response(r) for r in rows]


def get_request(conn: sqlite3.Connection, ref: str) -> Row:
    """Return one request (by row id or request UUID) with its responses, or raise 404."""
    request = _request(_find_request(conn, ref))
    request["responses"] = _responses_of(conn, request["id"])
    return request


def delete_request(conn: sqlite3.Connection, ref: str) -> Row:
    """Delete a request (by row id or request UUID) with its responses; return the counts."""
    pk = _find_request(conn, ref)["id"]
    responses = conn.execute("DELETE FROM responses WHERE request_id = ?", (pk,)).rowcount
    conn.execute("DELETE FROM requests WHERE id = ?", (pk,))
    return {"requests": 1, "responses": responses}


# -- responses -----------------------------------------------------------------------------


def response_where(filters: ResponseFilter) -> Where:
    """Return the conditions on responses (alias ``r``) that ``filters`` asks for."""
    where = Where()
    if filters.session_id is not None:
        where.add("r.session_id = ?", filters.session_id)
    if filters.request is not None:
        where.add(
            "r.request_id IN (SELECT id FROM requests WHERE id = ? OR request_id = ?)",
            row_id(filters.request),
            filters.request,
        )
    if filters.provider_id is not None:
        where.add("r.provider_id = ?", filters.provider_id)
    _time_range(where, "r.created_at", filters.start, filters.end)
    return where


def list_responses(
    conn: sqlite3.Connection, filters: ResponseFilter, *, limit: int, offset: int
) -> Page:
    """Return a page of responses (newest first) matching ``filters`` and the total count."""
    where = response_where(filters)
    rows = conn.execute(
        f"SELECT {_RESPONSE_COLUMNS} FROM responses r LEFT JOIN requests q ON q.id = r.request_id"
        f"{where.sql()} ORDER BY r.created_at DESC, r.id DESC LIMIT ? OFFSET ?",
        (*where.args, limit, offset),
    )
    items = [_response(r) for r in rows]
    return items, count_rows(conn, f"SELECT COUNT(*) FROM responses r{where.sql()}", where.args)


def _find_response(conn: sqlite3.Connection, ref: str) -> sqlite3.Row:
    numeric = row_id(ref)
    row: sqlite3.Row | None = None
    if numeric is not None:
        row = conn.execute(
            f"SELECT {_RESPONSE_COLUMNS} FROM responses r"
            " LEFT JOIN requests q ON q.id = r.request_id WHERE r.id = ?",
            (numeric,),
        ).fetchone()
    if row is None:
        raise NotFound(f"Response '{ref}' not found", code="response_not_found")
    return row


def get_response(conn: sqlite3.Connection, ref: str) -> Row:
    """Return one response by its row id, or raise 404."""
    return _response(_find_response(conn, ref))


def delete_response(conn: sqlite3.Connection, ref: str) -> Row:
    """Delete one response by its row id; return the count."""
    pk = _find_response(conn, ref)["id"]
    conn.execute("DELETE FROM responses WHERE id = ?", (pk,))
    return {"responses": 1}


def request_summary(conn: sqlite3.Connection, request_pk: int | None) -> Row | None:
    """Return ``{id, request_id, model, stream, timestamp}`` of a request row, or None."""
    if request_pk is None:
        return None
    row = conn.execute(
        "SELECT id, request_id, model, stream, created_at FROM requests WHERE id = ?",
        (request_pk,),
    ).fetchone()
    if row is None:
        return None
    return {
        "id": row["id"],
        "request_id": row["request_id"],
        "model": row["model"],
        "stream": bool(row["stream"]),
        "timestamp": row["created_at"],
    }
