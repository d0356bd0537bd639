"""Validation at the edge: body headers and JSON text (bodies and queries: apiserver.schemas)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from apiserver import errors

ID_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_BODY: Final = 1024 * 1024
# Deeper JSON is refused before it is parsed: nothing we store needs more, and every later
# step that walks a value (masking, validation, encoding) stays far from the recursion limit.
MAX_JSON_DEPTH: Final = 32
ACCEPTED_ENCODINGS: Final = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
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


# Built once: json.loads with hooks builds a new decoder per call. Decoding the bytes as
# json.loads does (UTF-8, -16 or -32, detected).
_DECODER: Final = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


async def read_json(request: web.Request) -> Any:
    """Return the parsed JSON body (415 for another type, 413 past 1 MiB, 400 if malformed).

    Its headers (type, encoding, length) were checked by the request middleware, which does
    so for every write under /api/ before the handler runs (``check_body_headers``).
    """
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
        value = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
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


@dataclass(frozen=True, slots=True)
class Page:
    """limit/offset of a list request (parsed by apiserver.schemas.PageQuery)."""

    limit: int
    offset: int
