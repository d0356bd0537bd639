"""Request history aggregates: response totals and the activity views (read-only)."""

from __future__ import annotations

import sqlite3

from qwenstack_core.store.history import Page, ResponseFilter, Row, count_rows, response_where

HOUR_MS = 60 * 60 * 1000
DAY_MS = 24 * HOUR_MS

# One definition of "this response is an error", shared by every count.
_IS_ERROR = "(r.error IS NOT NULL OR r.status_code >= 400)"


def _avg(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _percent(part: int, whole: int) -> float | int:
    return round(100 * part / whole, 2) if whole else 0


def response_stats(conn: sqlite3.Connection, filters: ResponseFilter) -> Row:
    """Return totals over the responses matching ``filters``, by provider and finish reason."""
    where = response_where(filters)
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
        "success_rate": _percent(total["count"] - total["error_count"], total["count"]),
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
    return items, count_rows(conn, "SELECT COUNT(*) FROM requests", ())


def activity_stats(conn: sqlite3.Connection, *, now: int) -> Row:
    """Return overall history counters; "last 24h" is relative to ``now`` (epoch ms).

    The prototype's field names (``total_api_requests`` …) sit beside ours; every one is a
    number, 0 on an empty history.
    """
    day_ago, hour_ago = now - DAY_MS, now - HOUR_MS
    requests = conn.execute(
        "SELECT COUNT(*) AS total, COALESCE(SUM(created_at >= ?), 0) AS recent,"
        " COALESCE(SUM(created_at >= ?), 0) AS last_hour FROM requests",
        (day_ago, hour_ago),
    ).fetchone()
    responses = conn.execute(
        "SELECT COUNT(*) AS total, AVG(r.duration_ms) AS avg_duration_ms,"
        f" COALESCE(SUM({_IS_ERROR}), 0) AS errors,"
        f" COALESCE(SUM({_IS_ERROR} AND r.created_at >= ?), 0) AS recent_errors,"
        " COALESCE(SUM(r.prompt_tokens), 0) AS prompt_tokens,"
        " COALESCE(SUM(r.completion_tokens), 0) AS completion_tokens,"
        " COALESCE(SUM(r.total_tokens), 0) AS total_tokens FROM responses r",
        (day_ago,),
    ).fetchone()
    total_responses = responses["total"]
    avg_duration = _avg(responses["avg_duration_ms"])
    success = total_responses - responses["errors"]
    return {
        "total_requests": requests["total"],
        "requests_last_24h": requests["recent"],
        "total_sessions": count_rows(conn, "SELECT COUNT(*) FROM sessions", ()),
        "total_responses": total_responses,
        "error_count": responses["errors"],
        "avg_duration_ms": avg_duration,
        "total_prompt_tokens": responses["prompt_tokens"],
        "total_completion_tokens": responses["completion_tokens"],
        "total_tokens": responses["total_tokens"],
        # The prototype's names.
        "total_api_requests": requests["total"],
        "avg_response_time_ms": avg_duration or 0,
        "active_sessions": count_rows(
            conn, "SELECT COUNT(*) FROM sessions WHERE last_accessed >= ?", (day_ago,)
        ),
        "recent_errors": responses["recent_errors"],
        "total_providers": count_rows(conn, "SELECT COUNT(*) FROM providers", ()),
        "total_models": count_rows(conn, "SELECT COUNT(*) FROM models", ()),
        "requests_last_hour": requests["last_hour"],
        "requests_last_day": requests["recent"],
        "success_rate_percent": _percent(success, total_responses),
    }
