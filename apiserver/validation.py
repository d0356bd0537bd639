"""Validation at the edge: body headers, JSON, typed fields, ids and queries, or a 400."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from apiserver import errors

ID_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ID_RULE: Final = "must match ^[a-z0-9][a-z0-9._-]{0,63}$"
MAX_TEXT_LEN: Final = 4096
MAX_BODY: Final = 1024 * 1024
# Deeper JSON is refused before it is parsed: nothing we store needs more, and every later
# step that walks a value (masking, validation, encoding) stays far from the recursion limit.
MAX_JSON_DEPTH: Final = 32
ACCEPTED_ENCODINGS: Final = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
_MISSING: Final = object()
_JSON_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET: Final = re.compile(rb"[\[\]{}]")
_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89a-fA-F]")


def check_body_headers(request: web.Request) -> None:
    """Refuse a body past 1 MiB (413), not JSON or in an unaccepted encoding (415), early."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.PayloadTooLarge("Request body is larger than 1 MiB")
    if not request.body_exists:
        return
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ACCEPTED_ENCODINGS:
        raise unsupported_encoding(encoding)
    if request.content_type != "application/json":
        raise errors.UnsupportedMediaType(
            "Request body must be JSON: send 'Content-Type: application/json'"
        )


def unsupported_encoding(encoding: str) -> errors.UnsupportedMediaType:
    """Return the 415 for a Content-Encoding other than identity, gzip or deflate."""
    shown = encoding.encode("ascii", "replace").decode()[:32]
    return errors.UnsupportedMediaType(
        f"Content-Encoding '{shown}' is not accepted: send the body as identity, gzip or deflate",
        code="unsupported_content_encoding",
    )


def json_depth(raw: bytes) -> int:
    """Return how deeply the arrays and objects of a JSON text nest (strings skipped)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return 0  # cannot be deeper than the limit: skip the scan
    depth = deepest = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub(b"", raw)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def unpaired_surrogate_at(value: Any) -> str | None:
    """Return the path of a string or key in ``value`` that is not UTF-8 encodable, or None."""
    pending: list[tuple[str, Any]] = [("body", value)]
    while pending:
        path, item = pending.pop()
        if isinstance(item, str):
            if not _is_unicode_text(item):
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = key if path == "body" else f"{path}.{key}"
                if not _is_unicode_text(key):
                    return path if path != "body" else "body"
                pending.append((child_path, child))
        elif isinstance(item, list):
            pending.extend((f"{path}[{i}]", child) for i, child in enumerate(item))
    return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


async def read_json(request: web.Request) -> Any:
    """Return the parsed JSON body (415 for another type, 413 past 1 MiB, 400 if malformed)."""
    check_body_headers(request)
    if not request.body_exists:
        return None
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.PayloadTooLarge("Request body is larger than 1 MiB") from None
    except (HttpProcessingError, RequestPayloadError):  # corrupt gzip/deflate, broken chunks
        raise errors.InvalidRequest(
            "Request body could not be decoded (corrupt Content-Encoding or transfer encoding)",
            code="invalid_body",
        ) from None
    if not raw.strip():
        return None
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise errors.InvalidRequest(
            f"Request body is not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels",
            code="invalid_json",
        )
    try:
        # NaN, Infinity and overflowing numbers parse in Python but cannot be written back
        # as JSON; RecursionError is what a too deeply nested document raises.
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        message = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise errors.InvalidRequest(
            f"Request body is not valid JSON: {message}", code="invalid_json"
        ) from None
    # "\ud800" is valid JSON syntax but not text: SQLite (UTF-8) cannot store it.
    where = unpaired_surrogate_at(value) if _SURROGATE_ESCAPE.search(raw) else None
    if where is not None:
        raise errors.invalid_field(
            where.encode("utf-8", "backslashreplace").decode(),
            "must be valid Unicode text (an unpaired UTF-16 surrogate such as \\ud800 cannot"
            " be stored)",
        )
    return value


class Fields:
    """Read typed fields out of a JSON object, collecting every problem before failing."""

    def __init__(self, data: Any, *, required: bool = True) -> None:
        if data is None and not required:
            data = {}
        if not isinstance(data, dict):
            raise errors.ValidationFailed(
                [{"field": "body", "message": "must be a JSON object"}],
                message="Request body must be a JSON object",
            )
        self.data: dict[str, Any] = data
        self.details: list[dict[str, Any]] = []

    def has(self, name: str) -> bool:
        """Return True when the body carries ``name``."""
        return name in self.data

    def fail(self, name: str, message: str) -> None:
        """Record a problem with ``name``."""
        self.details.append({"field": name, "message": message})

    def _get(self, name: str, required: bool) -> Any:
        value = self.data.get(name, _MISSING)
        if value is _MISSING and required:
            self.fail(name, "is required")
        return value

    def string(
        self,
        name: str,
        *,
        required: bool = False,
        nullable: bool = False,
        max_len: int = MAX_TEXT_LEN,
        pattern: re.Pattern[str] | None = None,
        rule: str = "",
        choices: tuple[str, ...] | None = None,
    ) -> str | None:
        """Return a string field (None when absent or null-and-nullable)."""
        value = self._get(name, required)
        if value is _MISSING or (value is None and nullable):
            return None
        if not isinstance(value, str):
            self.fail(name, "must be a string")
        elif required and not value.strip():
            self.fail(name, "must not be empty")
        elif len(value) > max_len:
            self.fail(name, f"must be at most {max_len} characters")
        elif not _is_unicode_text(value):
            self.fail(name, "must be valid Unicode text (no unpaired surrogates)")
        elif pattern is not None and not pattern.match(value):
            self.fail(name, rule or f"must match {pattern.pattern}")
        elif choices is not None and value not in choices:
            self.fail(name, f"must be one of {', '.join(choices)}")
        else:
            return value
        return None

    def integer(
        self,
        name: str,
        *,
        required: bool = False,
        nullable: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        """Return an integer field (booleans and floats are refused)."""
        value = self._get(name, required)
        if value is _MISSING or (value is None and nullable):
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, "must be an integer")
        elif minimum is not None and value < minimum:
            self.fail(name, f"must be >= {minimum}")
        elif maximum is not None and value > maximum:
            self.fail(name, f"must be <= {maximum}")
        else:
            return value
        return None

    def boolean(self, name: str, *, required: bool = False) -> bool | None:
        """Return a boolean field."""
        value = self._get(name, required)
        if value is _MISSING:
            return None
        if not isinstance(value, bool):
            self.fail(name, "must be a boolean")
            return None
        return value

    def obj(
        self, name: str, *, required: bool = False, nullable: bool = False
    ) -> dict[str, Any] | None:
        """Return an object field."""
        value = self._get(name, required)
        if value is _MISSING or (value is None and nullable):
            return None
        if not isinstance(value, dict):
            self.fail(name, "must be an object")
            return None
        return value

    def strings(self, name: str, *, max_items: int = 64) -> list[str] | None:
        """Return a list-of-strings field."""
        value = self._get(name, False)
        if value is _MISSING:
            return None
        if (
            not isinstance(value, list)
            or len(value) > max_items
            or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in value)
        ):
            self.fail(name, f"must be an array of at most {max_items} non-empty strings")
            return None
        return list(dict.fromkeys(value))  # keep order, drop repeats

    def done(self) -> None:
        """Raise a 400 with every recorded problem."""
        if self.details:
            raise errors.ValidationFailed(self.details)


def _is_unicode_text(value: str) -> bool:
    """Return False for a string JSON smuggled unpaired surrogates into (not storable as UTF-8)."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def path_id(request: web.Request, name: str, *, code: str, what: str) -> str:
    """Return a path id; a malformed one cannot exist, so it is a 404 with ``code``."""
    value = request.match_info[name]
    if not ID_PATTERN.match(value):
        raise errors.NotFound(f"{what} '{value}' not found", code=code)
    return value


# -- queries -------------------------------------------------------------------------------


def query_bool(query: Mapping[str, str], name: str) -> bool | None:
    """Return a true/false query parameter, or None when absent."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise errors.invalid_field(name, "must be true or false")


def query_int(query: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    """Return a bounded integer query parameter."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.invalid_field(name, "must be an integer") from None
    if not minimum <= value <= maximum:
        raise errors.invalid_field(name, f"must be between {minimum} and {maximum}")
    return value


@dataclass(frozen=True, slots=True)
class Page:
    """limit/offset of a list request."""

    limit: int
    offset: int

    @classmethod
    def from_query(cls, query: Mapping[str, str], default_limit: int = 50) -> Page:
        """Parse ``limit`` (1..1000) and ``offset`` (>= 0)."""
        return cls(
            limit=query_int(query, "limit", default_limit, 1, 1000),
            offset=query_int(query, "offset", 0, 0, 2**62),
        )
