"""The Qwen web-chat protocol: headers, the three calls, retries, and the reply stream."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson
from yarl import URL

from qwen_proxy.errors import (
    HOW_TO_PROVIDE,
    CredentialsMissing,
    ProxyError,
    RateLimited,
    UpstreamError,
)
from qwenstack_core.logsetup import get_logger
from qwenstack_core.store.credentials import QwenCredentials

log = get_logger("qwen_proxy.upstream")

# The browser the extension captured the credentials in; Qwen refuses obvious bots.
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36"
)
MAX_ERROR_BODY = 64 * 1024
# Error codes of Qwen's JSON envelope that mean "not signed in" rather than a failure.
LOGIN_CODES = ("unauthorized", "not_login", "notlogin", "login", "token", "forbidden")

Sleep = Callable[[float], Awaitable[None]]
BROKEN = "upstream_stream_broken"  # the answer stopped mid-way: retried only if nothing was sent


def credentials_rejected(detail: str) -> CredentialsMissing:
    """Return the 401 for credentials Qwen refused."""
    return CredentialsMissing(
        f"Qwen refused the stored credentials ({detail}). {HOW_TO_PROVIDE}.",
        code="qwen_credentials_rejected",
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff for upstream calls that nothing was sent to the client for."""

    base: float = 0.5
    cap: float = 8.0
    max_retries: int = 3

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Return the wait before retry ``attempt`` (0-based), or None to give up."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            # Honour the server's wish; one longer than our cap is not worth holding a client.
            return retry_after if retry_after <= self.cap else None
        backoff: float = min(self.cap, self.base * 2**attempt)
        return backoff * random.uniform(0.8, 1.0)  # noqa: S311


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class QwenClient:
    """Talk to one Qwen web chat through one pooled session, sending the credentials only there."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: URL,
        retry: RetryPolicy,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._session = session
        self._base = base_url
        self._origin = str(base_url.origin())
        self._retry = retry
        self._sleep = sleep

    def headers(self, credentials: QwenCredentials, referer: str) -> dict[str, str]:
        """Return the headers of every upstream call (children.md)."""
        return {
            "bx-umidtoken": credentials.token,
            "Cookie": credentials.cookies,
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "User-Agent": BROWSER_USER_AGENT,
            "source": "web",
            "Origin": self._origin,
            "Referer": referer,
        }

    async def models(self, credentials: QwenCredentials) -> list[dict[str, Any]]:
        """Return Qwen's model list (``GET /api/models``)."""
        resp = await self._call("GET", "/api/models", credentials)
        data = (await read_json(resp)).get("data")
        if not isinstance(data, list):
            raise UpstreamError("Qwen's model list has no 'data' list", code="upstream_invalid")
        return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    async def new_chat(self, credentials: QwenCredentials, model: str) -> str:
        """Create a Qwen chat for ``model`` and return its id."""
        body = {
            "title": "New Chat",
            "models": [model],
            "chat_mode": "normal",
            "chat_type": "t2t",
            "timestamp": int(time.time() * 1000),
        }
        resp = await self._call("POST", "/api/v2/chats/new", credentials, body=body)
        data = (await read_json(resp)).get("data")
        chat_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(chat_id, str) or not chat_id:
            raise UpstreamError("Qwen's new chat reply has no chat id", code="upstream_invalid")
        return chat_id

    async def completion(
        self, credentials: QwenCredentials, chat_id: str, body: dict[str, Any]
    ) -> Reply:
        """Start a completion; retried only until Qwen answers 200 (nothing sent yet)."""
        resp = await self._call(
            "POST",
            "/api/v2/chat/completions",
            credentials,
            body=body,
            params={"chat_id": chat_id},
            referer=f"{self._origin}/c/{chat_id}",
        )
        return Reply(resp)

    async def _call(
        self,
        method: str,
        path: str,
        credentials: QwenCredentials,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        referer: str | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one call with retries; return its 200 response or raise a ``ProxyError``."""
        url = self._base.with_path(path)
        headers = self.headers(credentials, referer or f"{self._origin}/")
        data = orjson.dumps(body) if body is not None else None
        attempt = 0
        while True:
            try:
                # No redirects: a redirect is Qwen's login page, and following one elsewhere
                # would carry the cookies to another host.
                resp = await self._session.request(
                    method, url, headers=headers, data=data, params=params, allow_redirects=False
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                error: ProxyError = UpstreamError(
                    f"Qwen is unreachable ({type(exc).__name__})", code="upstream_unreachable"
                )
                delay = self._retry.delay(attempt, None)
            else:
                if resp.status == 200:
                    if resp.content_type == "text/html":
                        resp.close()
                        raise credentials_rejected("it answered with an HTML page, not JSON")
                    return resp
                error, delay = await self._failure(resp, attempt)
            if delay is None:
                raise error
            log.warning(
                "upstream_retrying",
                path=path,
                attempt=attempt + 1,
                delay_s=round(delay, 3),
                error=error.code,
            )
            await self._sleep(delay)
            attempt += 1

    async def _failure(
        self, resp: aiohttp.ClientResponse, attempt: int
    ) -> tuple[ProxyError, float | None]:
        """Classify a non-200 answer; return the error and the retry delay (None: no retry)."""
        status = resp.status
        try:
            raw = await resp.content.read(MAX_ERROR_BODY)
        except (aiohttp.ClientError, OSError, TimeoutError):
            raw = b""
        finally:
            resp.close()
        html = resp.content_type == "text/html" or raw.lstrip()[:1] == b"<"
        if 300 <= status < 400 or status in (401, 403):
            detail = "it answered with an HTML page" if html else f"status {status}"
            return credentials_rejected(detail), None
        if status == 429:
            retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
            headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
            limited = RateLimited(
                "Qwen is rate limiting this account; retry later", headers=headers
            )
            return limited, self._retry.delay(attempt, retry_after)
        what = "an HTML page" if html else _json_code(raw) or "no detail"
        if status >= 500:
            retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
            error = UpstreamError(f"Qwen failed with status {status} ({what})")
            return error, self._retry.delay(attempt, retry_after)
        return UpstreamError(
            f"Qwen refused the request with status {status} ({what})", code="upstream_rejected"
        ), None


def _json_code(raw: bytes) -> str | None:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    data = body.get("data") if isinstance(body, dict) else None
    code = data.get("code") if isinstance(data, dict) else None
    return str(code) if code else None


def envelope_error(body: dict[str, Any]) -> ProxyError | None:
    """Return the error of a Qwen JSON envelope with ``success: false``, if it is one."""
    if body.get("success") is not False and "error" not in body:
        return None
    data = body.get("data") if isinstance(body.get("data"), dict) else body.get("error")
    code = str((data or {}).get("code") or "unknown") if isinstance(data, dict) else "unknown"
    lowered = code.lower()
    if any(word in lowered for word in LOGIN_CODES):
        return credentials_rejected(f"error code {code}")
    if "ratelimit" in lowered.replace("_", ""):
        return RateLimited(f"Qwen is rate limiting this account ({code}); retry later")
    return UpstreamError(f"Qwen answered with an error ({code})", code="upstream_rejected")


async def read_json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """Read a 200 JSON answer; an HTML page or junk becomes a clear error, never a traceback."""
    try:
        raw = await resp.read()
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise UpstreamError(f"Qwen's answer broke off ({type(exc).__name__})") from None
    finally:
        resp.release()
    if raw.lstrip()[:1] == b"<":
        raise credentials_rejected("it answered with an HTML page, not JSON")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise UpstreamError("Qwen answered with something that is not JSON") from None
    if not isinstance(body, dict):
        raise UpstreamError("Qwen answered with unexpected JSON", code="upstream_invalid")
    error = envelope_error(body)
    if error is not None:
        raise error
    return body


class Reply:
    """One completion answer of Qwen, read event by event as it arrives."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp

    def close(self) -> None:
        """Drop the connection (a half-read answer must not go back to the pool)."""
        self._resp.close()

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Yield the JSON objects of the answer's ``data:`` lines; raise on a broken stream."""
        resp = self._resp
        if resp.content_type == "application/json":
            # A JSON answer instead of a stream: an error envelope, or a whole (non-stream) reply.
            yield _whole_reply(await read_json(resp))
            return
        content = resp.content
        try:
            while line := await content.readline():
                if line[:5] != b"data:":
                    if line[:1] == b"<":  # a login page under a stream content type
                        raise credentials_rejected("it answered with an HTML page")
                    continue
                payload = line[5:].strip()
                if not payload or payload == b"[DONE]":
                    continue
                try:
                    event = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    if payload[:1] == b"<":
                        raise credentials_rejected("it answered with an HTML page") from None
                    raise UpstreamError("Qwen sent an event that is not JSON") from None
                if type(event) is dict:
                    if "choices" not in event:
                        error = envelope_error(event)
                        if error is not None:
                            raise error
                    yield event
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise UpstreamError(
                f"Qwen's stream broke off ({type(exc).__name__})", code=BROKEN
            ) from None
        resp.release()


def _whole_reply(body: dict[str, Any]) -> dict[str, Any]:
    """Turn a non-stream reply (``data.choices[0].message``) into one final stream event."""
    data = body.get("data")
    try:
        content = data["choices"][0]["message"]["content"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        raise UpstreamError("Qwen's reply has no message", code="upstream_invalid") from None
    return {
        "response.created": {"parent_id": data.get("parent_id")},  # type: ignore[union-attr]
        "choices": [{"delta": {"content": content or "", "phase": "answer", "status": "finished"}}],
    }
