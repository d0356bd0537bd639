"""The store's own errors: a stable code and a sentence, no HTTP status.

The daemon's error middleware maps each kind to HTTP once (not found → 404, conflict → 409,
invalid → 400); the children map them to their own error shapes.
"""

from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """Base of the store's errors: ``code`` is stable, ``message`` is safe to show a client."""

    default_code = "store_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class NotFound(StoreError):
    """No row with that id."""

    default_code = "not_found"


class Conflict(StoreError):
    """The write clashes with existing data (duplicate id or name, a row still in use)."""

    default_code = "conflict"


class Invalid(StoreError):
    """A value the store refuses, with per-field details ``[{field, message}]``."""

    default_code = "validation_failed"

    def __init__(self, details: list[dict[str, Any]], message: str | None = None) -> None:
        super().__init__(summarize_details(details) if message is None else message)
        self.details = details


def summarize_details(details: list[dict[str, Any]]) -> str:
    """Return the one-line message for per-field ``details``: the first problem, and a count."""
    first = details[0] if details else {"field": "body", "message": "is invalid"}
    message = f"Invalid request: {first['field']} {first['message']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more)"
    return message


def invalid_field(name: str, message: str) -> Invalid:
    """Return the error for one bad field."""
    return Invalid([{"field": name, "message": message}])


class StorageUnavailable(StoreError):
    """The database cannot be written (or read): read-only, disk full, file gone or replaced.

    Nothing was written; ``message`` says which fault it is, in a sentence a user can act on.
    """

    default_code = "storage_unavailable"
