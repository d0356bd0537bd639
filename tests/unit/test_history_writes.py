"""The history write side on a real SQLite file: batched inserts and retention pruning."""

from __future__ import annotations

from pathlib import Path

from qwenstack_core.store import connect, migrate
from qwenstack_core.store.history_writes import DAY_MS, Exchange, insert_exchanges, prune

NOW = 1_800_000_000_000


def exchange(n: int, created_at: int) -> Exchange:
    return Exchange(
        request_id=f"r{n}", provider_id="p", model="m", stream=False,
        path="/v1/chat/completions", request_body=None, created_at=created_at, status_code=200,
        response_body=None, prompt_tokens=1, completion_tokens=2, total_tokens=3,
        finish_reason="stop", error=None, error_class=None, duration_ms=5, ttfb_ms=4,
    )  # fmt: skip


def counts(conn) -> tuple[int, int]:
    requests = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    responses = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    return requests, responses


def test_insert_is_idempotent_per_request_id(tmp_path: Path) -> None:
    conn = connect(tmp_path / "store.db")
    migrate(conn)
    assert insert_exchanges(conn, [exchange(1, NOW), exchange(2, NOW)]) == 2
    assert insert_exchanges(conn, [exchange(2, NOW)]) == 0  # a batch written twice
    assert counts(conn) == (2, 2)
    row = conn.execute("SELECT ttfb_ms, duration_ms, created_at FROM responses LIMIT 1").fetchone()
    assert tuple(row) == (4, 5, NOW + 5)
    conn.close()


def test_prune_by_count_and_by_age_takes_the_responses_along(tmp_path: Path) -> None:
    conn = connect(tmp_path / "store.db")
    migrate(conn)
    old = [exchange(i, NOW - 40 * DAY_MS + i) for i in range(3)]
    new = [exchange(10 + i, NOW - i) for i in range(5)]
    insert_exchanges(conn, [*old, *new])
    assert prune(conn, max_rows=100, max_age_days=30, now_ms=NOW) == 3  # by age
    assert counts(conn) == (5, 5)
    assert prune(conn, max_rows=2, max_age_days=30, now_ms=NOW) == 3  # by count: newest kept
    assert counts(conn) == (2, 2)
    kept = [r[0] for r in conn.execute("SELECT request_id FROM requests ORDER BY id")]
    assert kept == ["r13", "r14"]
    assert prune(conn, max_rows=2, max_age_days=30, now_ms=NOW) == 0
    conn.close()
