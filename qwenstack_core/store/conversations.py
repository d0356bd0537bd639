"""qwen-proxy's conversation map: an OpenAI conversation → its Qwen web chat.

An OpenAI client resends the whole history on every turn while Qwen keeps the conversation on
its side, so qwen-proxy remembers, per conversation (keyed by a hash of the first user message
and the first assistant reply), which Qwen chat holds it, the message id the next turn chains to
and how many assistant replies that chat has.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Conversation:
    """One row of ``qwen_conversations``."""

    key: str
    chat_id: str
    parent_id: str | None
    model: str | None
    turns: int


def _now_ms() -> int:
    return int(time.time() * 1000)


def find(conn: sqlite3.Connection, key: str) -> Conversation | None:
    """Return the conversation stored under ``key``, if any."""
    row = conn.execute(
        "SELECT key, chat_id, parent_id, model, turns FROM qwen_conversations WHERE key = ?",
        (key,),
    ).fetchone()
    if row is None:
        return None
    return Conversation(row["key"], row["chat_id"], row["parent_id"], row["model"], row["turns"])


def save(conn: sqlite3.Connection, conversation: Conversation) -> None:
    """Insert or replace the conversation under its key (creation time kept)."""
    now = _now_ms()
    conn.execute(
        "INSERT INTO qwen_conversations (key, chat_id, parent_id, model, turns, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
        " chat_id = excluded.chat_id, parent_id = excluded.parent_id, model = excluded.model,"
        " turns = excluded.turns, updated_at = excluded.updated_at",
        (
            conversation.key,
            conversation.chat_id,
            conversation.parent_id,
            conversation.model,
            conversation.turns,
            now,
            now,
        ),
    )


def prune(conn: sqlite3.Connection, *, max_age_s: int, max_rows: int) -> int:
    """Delete conversations unused for ``max_age_s`` and all but the newest ``max_rows``."""
    cutoff = _now_ms() - max_age_s * 1000
    removed = conn.execute("DELETE FROM qwen_conversations WHERE updated_at < ?", (cutoff,))
    count = removed.rowcount
    overflow = conn.execute(
        "DELETE FROM qwen_conversations WHERE key IN (SELECT key FROM qwen_conversations"
        " ORDER BY updated_at DESC LIMIT -1 OFFSET ?)",
        (max_rows,),
    )
    return count + overflow.rowcount


def count(conn: sqlite3.Connection) -> int:
    """Return the number of stored conversations."""
    return int(conn.execute("SELECT COUNT(*) FROM qwen_conversations").fetchone()[0])
