"""The one rule for what counts as a secret by name, and masking of nested values by it."""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# Provider config keys (the API contract: containing key, secret, password or token) and log
# fields whose values are secrets.
SECRET_NAME = re.compile(r"key|secret|passw|token|cookie|auth|credential", re.IGNORECASE)
# Inside nested objects (headers, link configs) a narrower rule, so that settings such as
# ``maxTokens`` or ``keepAlive`` stay readable while ``Authorization`` or ``apiKey`` do not.
NESTED_SECRET_NAME = re.compile(
    r"api[_-]?key|secret|passw|token(?!s)|cookie|auth|credential|private", re.IGNORECASE
)


def is_secret_name(name: str) -> bool:
    """Return True when a value stored or logged under ``name`` must never be shown."""
    return bool(SECRET_NAME.search(name))


def mask_nested(value: Any) -> Any:
    """Return ``value`` with every secret-named entry of nested objects replaced by ``***``."""
    if isinstance(value, dict):
        return {
            k: (MASK if NESTED_SECRET_NAME.search(str(k)) and v is not None else mask_nested(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_nested(v) for v in value]
    return value
