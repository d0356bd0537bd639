"""Request history: sessions, requests and responses (written by the children, read here)."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from qwenstack_core.errors import NotFound

Row = dict[str, Any]
Page = tuple[list[Row], int]

DAY_MS = 24 * 60 * 60 * 1000

# A row id given as text: plain ASCII digits, no sign, no leading zero, within SQLite's int64.
# Anything else ("12abc", "012", "+12", "１２") is not an id, so it cannot match one.
_ROW_ID = re.compile(r"0|[1-9][0-9]{0,17}")

# One definition of "this response is an error", shared by every count.
_IS_ERROR = "(r.error IS NOT NULL OR r.status_code >= 400)"

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
    " r.finish_reason, r.error, r.duration_ms, r.created_at"
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
        "duration_ms": row["duration_ms"],
        "created_at": row["created_at"],
    }


def _avg(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class _Where:
    """AND-ed conditions with their arguments."""

    def __init__(self) -> None:
        self.terms: list[str] = []
        self.args: list[Any] = []

    def add(self, term: str, *args: Any) -> None:
        self.terms.append(term)
        self.args.extend(args)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.terms) if self.terms else ""


def _time_range(where: _Where, column: str, start: int | None, end: int | None) -> None:
    if start is not None:
        where.add(f"{column} >= ?", start)
    if end is not None:
        where.add(f"{column} <= ?", end)


def _count(conn: sqlite3.Connection, sql: str, args: list[Any] | tuple[Any, ...]) -> int:
    return int(conn.execute(sql, args).fetchone()[0])


# -- sessions ------------------------------------------------------------------------------


def list_sessions(conn: sqlite3.Connection, *, limit: int, offset: int) -> Page:
    """Return a page of sessions (most recently used first) and the total count."""
    rows = conn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM sessions s"
        " ORDER BY s.last_accessed DESC, s.created_at DESC, s.id LIMIT ? OFFSET ?",
        (limit, offset),
    )
    return [_session(r) for r in rows], _count(conn, "SELECT COUNT(*) FROM sessions", ())


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
    where = _Where()
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
    return items, _count(conn, f"SELECT COUNT(*) FROM requests q{where.sql()}", where.args)


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


def _response_where(filters: ResponseFilter) -> _Where:
    where = _Where()
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
    where = _response_where(filters)
    rows = conn.execute(
        f"SELECT {_RESPONSE_COLUMNS} FROM responses r LEFT JOIN requests q ON q.id = r.request_id"
        f"{where.sql()} ORDER BY r.created_at DESC, r.id DESC LIMIT ? OFFSET ?",
        (*where.args, limit, offset),
    )
    items = [_response(r) for r in rows]
    return items, _count(conn, f"SELECT COUNT(*) FROM responses r{where.sql()}", where.args)


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


def response_stats(conn: sqlite3.Connection, filters: ResponseFilter) -> Row:
    """Return totals over the responses matching ``filters``, by provider and finish reason."""
    where = _response_where(filters)
    total = conn.execute(
        "SELECT COUNT(*) AS count, AVG(r.duration_ms) AS avg_duration_ms,"
        " COALESCE(SUM(r.prompt_tokens), 0) AS prompt_tokens,"
        " COALESCE(SUM(r.completion_tokens), 0) AS completion_tokens,"
        " COALESCE(SUM(r.total_tokens), 0) AS total_tokens,"
        f" COALESCE(SUM({_IS_ERROR}), 0) AS error_count"
        f" FROM responses r{where.sql()}",
        where.args,
    ).fetchone()
    by_provider = conn.execute(
        "SELECT r.provider_id, COUNT(*) AS count, AVG(r.duration_ms) AS avg_duration_ms,"
        f" COALESCE(SUM(r.total_tokens), 0) AS total_tokens, SUM({_IS_ERROR}) AS error_count"
        f" FROM responses r{where.sql()}"
        " GROUP BY r.provider_id ORDER BY count DESC, r.provider_id",
        where.args,
    )
    by_finish = conn.execute(
        f"SELECT r.finish_reason, COUNT(*) AS count FROM responses r{where.sql()}"
        " GROUP BY r.finish_reason ORDER BY count DESC, r.finish_reason",
        where.args,
    )
    return {
        "total_responses": total["count"],
        "avg_duration_ms": _avg(total["avg_duration_ms"]),
        "total_prompt_tokens": total["prompt_tokens"],
        "total_completion_tokens": total["completion_tokens"],
        "total_tokens": total["total_tokens"],
        "error_count": total["error_count"],
        "by_provider": [
            {
                "provider_id": r["provider_id"],
                "count": r["count"],
                "avg_duration_ms": _avg(r["avg_duration_ms"]),
                "total_tokens": r["total_tokens"],
                "error_count": r["error_count"],
            }
            for r in by_provider
        ],
        "by_finish_reason": [
            {"finish_reason": r["finish_reason"], "count": r["count"]} for r in by_finish
        ],
    }


# -- activity ------------------------------------------------------------------------------


def _outcome(row: sqlite3.Row) -> str:
    if row["response_id"] is None:
        return "pending"
    status = row["status_code"]
    if row["error"] is not None or (status is not None and status >= 400):
        return "error"
    return "success"


def recent_activity(conn: sqlite3.Connection, *, limit: int) -> Page:
    """Return the newest requests, each with its latest response's outcome, and the total."""
    rows = conn.execute(
        "SELECT q.id, q.request_id, q.session_id, q.model, q.stream, q.method, q.path,"
        " q.created_at, COALESCE(r.provider_id, q.provider_id) AS provider_id,"
        " r.id AS response_id, r.status_code, r.duration_ms, r.prompt_tokens,"
        " r.completion_tokens, r.total_tokens, r.finish_reason, r.error,"
        " r.created_at AS completed_at"
        " FROM requests q LEFT JOIN responses r"
        " ON r.id = (SELECT MAX(id) FROM responses WHERE request_id = q.id)"
        " ORDER BY q.created_at DESC, q.id DESC LIMIT ?",
        (limit,),
    )
    items = [
        {
            "id": r["id"],
            "request_id": r["request_id"],
            "session_id": r["session_id"],
            "provider_id": r["provider_id"],
            "model": r["model"],
            "stream": bool(r["stream"]),
            "method": r["method"],
            "path": r["path"],
            "created_at": r["created_at"],
            "status": _outcome(r),
            "response_id": r["response_id"],
            "status_code": r["status_code"],
            "duration_ms": r["duration_ms"],
            "prompt_tokens": r["prompt_tokens"],
            "completion_tokens": r["completion_tokens"],
            "total_tokens": r["total_tokens"],
            "finish_reason": r["finish_reason"],
            "error": r["error"],
            "completed_at": r["completed_at"],
        }
        for r in rows
    ]
    return items, _count(conn, "SELECT COUNT(*) FROM requests", ())


def activity_stats(conn: sqlite3.Connection, *, now: int) -> Row:
    """Return overall history counters; "last 24h" is relative to ``now`` (epoch ms)."""
    requests = conn.execute(
        "SELECT COUNT(*) AS total, COALESCE(SUM(created_at >= ?), 0) AS recent FROM requests",
        (now - DAY_MS,),
    ).fetchone()
    responses = conn.execute(
        "SELECT COUNT(*) AS total, AVG(r.duration_ms) AS avg_duration_ms,"
        f" COALESCE(SUM({_IS_ERROR}), 0) AS errors,"
        " COALESCE(SUM(r.prompt_tokens), 0) AS prompt_tokens,"
        " COALESCE(SUM(r.completion_tokens), 0) AS completion_tokens,"
        " COALESCE(SUM(r.total_tokens), 0) AS total_tokens FROM responses r"
    ).fetchone()
    return {
        "total_requests": requests["total"],
        "requests_last_24h": requests["recent"],
        "total_sessions": _count(conn, "SELECT COUNT(*) FROM sessions", ()),
        "total_responses": responses["total"],
        "error_count": responses["errors"],
        "avg_duration_ms": _avg(responses["avg_duration_ms"]),
        "total_prompt_tokens": responses["prompt_tokens"],
        "total_completion_tokens": responses["completion_tokens"],
        "total_tokens": responses["total_tokens"],
    }
