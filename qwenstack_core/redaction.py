"""The one rule for what counts as a secret by name, and masking of nested values by it."""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# Provider config keys (the API contract: containing key, secret, password or token) and log
# fields whose values are secrets.
SECRET_NAME = re.compile(r"key|secret|passw|token|cookie|auth|credential", re.IGNORECASE)
NESTED_SECRET_NAME = re.compile(
    r"api[_-]?key|secret|passw|token(?!s)|cookie|auth|credential|private", re.IGNORECASE
)
# Inside nested objects (headers, link configs) a name is secret when one of its words is: so
# ``access_key``, ``x-access-key``, ``Authorization`` and ``apiKey`` are, while ``maxTokens``,
# ``keepAlive`` or ``keyboard`` stay readable.
SECRET_WORDS = frozenset(
    {
        "key", "apikey", "accesskey", "secretkey", "privatekey", "secret", "secrets",
        "password", "passwd", "pwd", "passphrase", "token", "cookie", "cookies",
        "auth", "authorization", "credential", "credentials", "private", "bearer", "jwt",
    }
)  # fmt: skip
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# Past this depth a value is masked whole: no input is that deep (the API refuses JSON nested
# deeper than 32), and masking must never recurse without bound.
MAX_MASK_DEPTH = 64


def is_secret_name(name: str) -> bool:
    """Return True when a value stored or logged under ``name`` must never be shown."""
    return bool(SECRET_NAME.search(name))


def is_nested_secret_name(name: str) -> bool:
    """Return True when an entry named ``name`` inside a nested object is a secret."""
    if NESTED_SECRET_NAME.search(name):
        return True
    return any(word.lower() in SECRET_WORDS for word in _WORD.findall(name))


def mask_nested(value: Any, depth: int = 0) -> Any:
    """Return ``value`` with every secret-named entry of nested objects replaced by ``***``."""
    if depth > MAX_MASK_DEPTH:
        return MASK
    if isinstance(value, dict):
        return {
            k: (
                MASK
                if v is not None and is_nested_secret_name(str(k))
                else mask_nested(v, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_nested(v, depth + 1) for v in value]
    return value
