"""Calls the daemon makes on behalf of a provider: a health test and a router reload."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp

from apiserver.realtime.publisher import iso_now
from apiserver.services.catalog import ProviderService
from qwenstack_core import provider_urls
from qwenstack_core.logsetup import get_logger

log = get_logger("apiserver.provider_checks")

TEST_TIMEOUT_S = 10.0


class ProviderChecks:
    """Test a provider's model list from the daemon; ask the router to reload a provider."""

    def __init__(
        self,
        providers: ProviderService,
        *,
        qwen_proxy_port: int,
        router_port: int,
        router_state: Callable[[], str] = lambda: "unknown",
    ) -> None:
        self._providers = providers
        # The supervisor's view of the router ("running", "stopped", ...): a router that is not
        # running is not called at all, so a stranger on its port never gets our request.
        self._router_state = router_state
        self._session: aiohttp.ClientSession | None = None
        self._qwen_proxy_port = qwen_proxy_port
        self._router_url = f"http://127.0.0.1:{router_port}"

    @property
    def _http(self) -> aiohttp.ClientSession:
        # Created on first use: a session must be made inside the running loop.
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Close the HTTP client session."""
        if self._session is not None:
            await self._session.close()

    def base_url(self, provider: dict[str, Any], config: dict[str, Any]) -> str | None:
        """Return the provider's OpenAI-compatible base URL (config first, then type default)."""
        return provider_urls.base_url(
            provider["type"], config, qwen_proxy_port=self._qwen_proxy_port
        )

    async def test(self, provider_id: str) -> dict[str, Any]:
        """Call GET {baseURL}/models (never a billed completion) and report what happened."""
        provider, config = await self._providers.connection_settings(provider_id)
        result: dict[str, Any] = {"provider_id": provider_id, "healthy": False}
        started = time.perf_counter()
        base = self.base_url(provider, config)
        try:
            if base is None:
                raise ValueError("no baseURL configured")
            result["models"] = await self._list_models(base, config)
            result["healthy"] = True
        except Exception as exc:  # any failure is the answer, not an error of ours
            # Never the exception text of the client: it may echo URLs or headers.
            result["error"] = _describe(exc)
        result["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        result["timestamp"] = iso_now()
        log.info("provider_tested", provider_id=provider_id, healthy=result["healthy"])
        return result

    async def _list_models(self, base: str, config: dict[str, Any]) -> list[str]:
        headers = {"Accept": "application/json"}
        api_key = config.get("apiKey")
        if isinstance(api_key, str) and api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        timeout_ms = config.get("timeout")
        timeout = (
            min(timeout_ms / 1000, TEST_TIMEOUT_S)
            if isinstance(timeout_ms, int) and timeout_ms > 0
            else TEST_TIMEOUT_S
        )
        async with self._http.get(
            f"{base}/models", headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            if resp.status != 200:
                raise UpstreamStatus(resp.status)
            body = await resp.json(content_type=None)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise ValueError("response is not an OpenAI model list")
        return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    async def reload(self, provider_id: str) -> dict[str, Any]:
        """Ask a running provider-router to re-read ``provider_id`` now."""
        await self._providers.connection_settings(provider_id)  # 404 for an unknown provider
        state = self._router_state()
        reloaded = False
        if state != "running":
            message = (
                f"provider-router is not running (state: {state}); nothing to reload:"
                " it reads the providers when it starts"
            )
        else:
            try:
                async with self._http.post(
                    f"{self._router_url}/admin/reload",
                    json={"provider_id": provider_id},
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as resp:
                    reloaded = resp.status == 200
                    message = (
                        "Provider reloaded by provider-router"
                        if reloaded
                        else f"provider-router refused the reload (HTTP {resp.status})"
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                message = f"provider-router did not answer the reload ({_describe(exc)})"
        await self._providers.announce_reload(provider_id)
        return {
            "provider_id": provider_id,
            "message": message,
            "reloaded": reloaded,
            "router_state": state,
            "timestamp": iso_now(),
        }


class UpstreamStatus(Exception):
    """The provider answered with a non-200 status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _describe(exc: Exception) -> str:
    if isinstance(exc, UpstreamStatus):
        return f"provider answered HTTP {exc.status}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection refused or host unreachable"
    if isinstance(exc, aiohttp.ClientError):
        return f"HTTP client error ({type(exc).__name__})"
    if isinstance(exc, ValueError):
        return str(exc)
    return type(exc).__name__
