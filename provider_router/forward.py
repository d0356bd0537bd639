"""Send a chat request to its candidates in order, falling back before any byte is sent.

Streams are relayed as the upstream's bytes arrive (``readany``: no buffering, no
re-chunking). The client's response is only started once the chosen upstream has produced
its first bytes, so everything that fails before that can still fall back.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from provider_router.chat_request import ChatRequest
from provider_router.errors import RouterError, sse_error_event
from provider_router.routing import Route
from qwenstack_core.logsetup import get_logger

log = get_logger("provider_router.forward")

MAX_LOGGED_BODY = 1024 * 1024  # longest response body kept in history (logResponses)
MAX_PARSED_BODY = 4 * 1024 * 1024  # larger non-stream answers are not parsed for usage
TAIL_CHUNKS = 4  # the last chunks of a stream hold its finish reason and usage


@dataclass(frozen=True, slots=True)
class Attempt:
    """One failed try: which provider, what kind of failure, the HTTP status if any."""

    provider: str
    error_class: str
    status: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "error_class": self.error_class, "status": self.status}


@dataclass(slots=True)
class Outcome:
    """What became of one request, filled in as it goes (recorded in history at the end)."""

    started: float
    provider_id: str | None = None
    status: int | None = None
    ttfb_ms: int | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    error: str | None = None
    error_class: str | None = None
    body: str | None = None
    attempts: list[Attempt] = field(default_factory=list)

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)


def _failure_class(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "upstream_disconnected"
    return "connection_error"


def _scan_completion(data: Any, outcome: Outcome) -> None:
    """Take usage and finish reason from a completion (or chunk) object, when present."""
    if not isinstance(data, dict):
        return
    usage = data.get("usage")
    if isinstance(usage, dict) and outcome.usage is None:
        outcome.usage = usage
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        if isinstance(reason, str) and outcome.finish_reason is None:
            outcome.finish_reason = reason


def _scan_stream_tail(chunks: Sequence[bytes], outcome: Outcome) -> None:
    """Parse only the last SSE events: the final chunk and the usage chunk come last."""
    lines = b"".join(chunks).split(b"\n")
    for line in reversed(lines[-64:]):
        if outcome.usage is not None and outcome.finish_reason is not None:
            return
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            continue
        try:
            _scan_completion(json.loads(payload), outcome)
        except ValueError:
            continue


class Forwarder:
    """Own the one pooled HTTP client session used for every upstream call."""

    def __init__(self, *, connection_limit: int = 512) -> None:
        self._limit = connection_limit
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Create the client session (inside the running loop)."""
        connector = aiohttp.TCPConnector(
            limit=self._limit, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=30
        )
        # Nothing of the client's request is copied upstream but its body: no cookies, no
        # Authorization (each provider's own key is set per route).
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def chat(
        self,
        request: web.Request,
        chat: ChatRequest,
        routes: Sequence[Route],
        outcome: Outcome,
        headers: dict[str, str],
        *,
        keep_body: bool,
    ) -> web.StreamResponse:
        """Answer ``request`` from the first candidate that does not fail; 502 if all do."""
        session = self._session
        if session is None:
            raise RouterError(503, "The router is shutting down", "shutting_down")
        for route in routes:
            upstream = route.upstream
            pid = upstream.provider_id
            outcome.provider_id = pid
            try:
                resp = await session.post(
                    upstream.chat_url,
                    data=chat.payload(route.upstream_model),
                    headers=upstream.headers,
                    timeout=upstream.timeout,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._failed(outcome, Attempt(pid, _failure_class(exc), None))
                continue
            try:
                status = resp.status
                if status == 429 or status >= 500:
                    kind = "rate_limited" if status == 429 else "upstream_error"
                    self._failed(outcome, Attempt(pid, kind, status))
                    continue
                if chat.stream and status == 200:
                    try:
                        first = await resp.content.readany()
                    except (aiohttp.ClientError, TimeoutError) as exc:
                        self._failed(outcome, Attempt(pid, _failure_class(exc), status))
                        continue
                    if not first:
                        self._failed(outcome, Attempt(pid, "empty_response", status))
                        continue
                    return await self._relay(request, resp, first, outcome, headers, keep_body)
                try:
                    body = await resp.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self._failed(outcome, Attempt(pid, _failure_class(exc), status))
                    continue
                return self._answer(resp, body, outcome, headers, keep_body)
            finally:
                # Unread or half-read: close the connection (the upstream sees it at once)
                # instead of returning it to the pool.
                resp.close()
        raise self._all_failed(outcome)

    def _failed(self, outcome: Outcome, attempt: Attempt) -> None:
        outcome.attempts.append(attempt)
        log.warning(
            "upstream_attempt_failed",
            provider_id=attempt.provider,
            error_class=attempt.error_class,
            status=attempt.status,
        )

    def _all_failed(self, outcome: Outcome) -> RouterError:
        names = ", ".join(f"{a.provider} ({a.error_class})" for a in outcome.attempts)
        outcome.error = f"all providers failed: {names}"
        outcome.error_class = "all_providers_failed"
        headers = {"X-Provider-Id": outcome.provider_id} if outcome.provider_id else None
        return RouterError(
            502,
            f"Every provider failed: {names}",
            "all_providers_failed",
            extra={"attempts": [a.as_dict() for a in outcome.attempts]},
            headers=headers,
        )

    def _answer(
        self,
        resp: aiohttp.ClientResponse,
        body: bytes,
        outcome: Outcome,
        headers: dict[str, str],
        keep_body: bool,
    ) -> web.Response:
        outcome.status = resp.status
        outcome.ttfb_ms = outcome.elapsed_ms()
        headers["X-Provider-Id"] = outcome.provider_id or ""
        if resp.status == 200 and len(body) <= MAX_PARSED_BODY:
            with contextlib.suppress(ValueError):
                _scan_completion(json.loads(body), outcome)
        elif resp.status >= 400:
            outcome.error = f"provider answered HTTP {resp.status}"
            outcome.error_class = "upstream_client_error"
        if keep_body:
            outcome.body = body[:MAX_LOGGED_BODY].decode("utf-8", "replace")
        headers["Content-Type"] = resp.headers.get("Content-Type", "application/json")
        return web.Response(body=body, status=resp.status, headers=headers)

    async def _relay(
        self,
        request: web.Request,
        resp: aiohttp.ClientResponse,
        first: bytes,
        outcome: Outcome,
        headers: dict[str, str],
        keep_body: bool,
    ) -> web.StreamResponse:
        outcome.status = 200
        outcome.ttfb_ms = outcome.elapsed_ms()
        headers["X-Provider-Id"] = outcome.provider_id or ""
        headers["Content-Type"] = resp.headers.get("Content-Type", "text/event-stream")
        headers["Cache-Control"] = "no-cache"
        out = web.StreamResponse(status=200, headers=headers)
        await out.prepare(request)
        tail: deque[bytes] = deque(maxlen=TAIL_CHUNKS)
        kept: list[bytes] | None = [] if keep_body else None
        kept_bytes = 0
        content = resp.content
        chunk = first
        try:
            while chunk:
                await out.write(chunk)
                tail.append(chunk)
                if kept is not None and kept_bytes < MAX_LOGGED_BODY:
                    kept.append(chunk)
                    kept_bytes += len(chunk)
                try:
                    chunk = await content.readany()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    await self._end_with_error(out, tail, exc, outcome)
                    break
            else:
                await out.write_eof()
        except ConnectionError:
            # The client went away: stop reading; the caller's ``finally`` closes upstream.
            outcome.error = "client closed the connection"
            outcome.error_class = "client_disconnected"
        _scan_stream_tail(tail, outcome)
        if kept is not None:
            outcome.body = b"".join(kept).decode("utf-8", "replace")
        return out

    async def _end_with_error(
        self, out: web.StreamResponse, tail: deque[bytes], exc: BaseException, outcome: Outcome
    ) -> None:
        """End a stream that broke after it started: an error event, then ``[DONE]``."""
        kind = _failure_class(exc)
        outcome.error = f"upstream stream failed ({kind})"
        outcome.error_class = kind
        log.warning("upstream_stream_failed", provider_id=outcome.provider_id, error_class=kind)
        message = "The provider's stream ended unexpectedly; the answer is incomplete"
        prefix = b"" if not tail or tail[-1].endswith(b"\n\n") else b"\n\n"
        await out.write(prefix + sse_error_event(message, kind))
        await out.write_eof()
