"""The write side of request history: batched inserts by the children, retention pruning."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class Exchange:
    """One chat request and its outcome, as recorded by a child (times in epoch ms)."""

    request_id: str
    provider_id: str | None
    model: str | None
    stream: bool
    path: str
    request_body: str | None  # JSON text, only when logging.logRequests is on
    created_at: int
    status_code: int | None
    response_body: str | None  # only when logging.logResponses is on
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    finish_reason: str | None
    error: str | None
    error_class: str | None
    duration_ms: int | None
    ttfb_ms: int | None
    method: str = "POST"
    session_id: str | None = None


def insert_exchanges(conn: sqlite3.Connection, exchanges: Iterable[Exchange]) -> int:
    """Insert one request row and one response row per exchange; return how many."""
    count = 0
    for x in exchanges:
        cur = conn.execute(
            "INSERT INTO requests (request_id, session_id, provider_id, model, stream, method,"
            " path, body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (request_id) DO NOTHING",
            (x.request_id, x.session_id, x.provider_id, x.model, int(x.stream), x.method,
             x.path, x.request_body, x.created_at),
        )  # fmt: skip
        if cur.rowcount != 1:
            continue  # already recorded (a retried batch): never a second response row
        conn.execute(
            "INSERT INTO responses (request_id, session_id, provider_id, status_code, body,"
            " prompt_tokens, completion_tokens, total_tokens, finish_reason, error, duration_ms,"
            " ttfb_ms, error_class, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cur.lastrowid, x.session_id, x.provider_id, x.status_code, x.response_body,
             x.prompt_tokens, x.completion_tokens, x.total_tokens, x.finish_reason, x.error,
             x.duration_ms, x.ttfb_ms, x.error_class, x.created_at + (x.duration_ms or 0)),
        )  # fmt: skip
        count += 1
    return count


def prune(conn: sqlite3.Connection, *, max_rows: int, max_age_days: int, now_ms: int) -> int:
    """Delete the requests beyond the newest ``max_rows`` or older than ``max_age_days``.

    Their responses go with them. Returns how many requests were deleted.
    """
    cutoff = now_ms - max_age_days * DAY_MS
    # The id of the oldest request still kept by count (ids grow with time: AUTOINCREMENT).
    row = conn.execute(
        "SELECT id FROM requests ORDER BY id DESC LIMIT 1 OFFSET ?", (max_rows - 1,)
    ).fetchone()
    keep_from = int(row[0]) if row is not None else 0
    doomed = "SELECT id FROM requests WHERE id < ? OR created_at < ?"
    conn.execute(f"DELETE FROM responses WHERE request_id IN ({doomed})", (keep_from, cutoff))
    return conn.execute(
        "DELETE FROM requests WHERE id < ? OR created_at < ?", (keep_from, cutoff)
    ).rowcount
