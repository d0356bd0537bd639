"""The model list: Qwen's active models, cached briefly; the stored catalogue when Qwen is away."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from qwen_proxy.errors import ModelNotFound, ProxyError
from qwen_proxy.upstream import QwenClient
from qwenstack_core.logsetup import get_logger
from qwenstack_core.store import Connection, Store
from qwenstack_core.store import models as model_rows
from qwenstack_core.store.credentials import QwenCredentials

log = get_logger("qwen_proxy.models")

QWEN_PROVIDER_ID = "qwen-proxy-default"


def from_upstream(model: dict[str, Any]) -> dict[str, Any] | None:
    """Map one entry of ``GET /api/models`` to an OpenAI model, or None when it is inactive."""
    raw_info = model.get("info")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    if info.get("is_active", model.get("is_active", True)) is False:
        return None
    raw_meta = info.get("meta")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    capabilities = meta.get("capabilities")
    return {
        "id": model["id"],
        "object": "model",
        "created": int(info.get("created_at") or 0),
        "owned_by": "qwen",
        "name": model.get("name") or info.get("name") or model["id"],
        "context_length": meta.get("max_context_length"),
        "capabilities": sorted(k for k, v in capabilities.items() if v)
        if isinstance(capabilities, dict)
        else [],
    }


def _stored(conn: Connection) -> list[dict[str, Any]]:
    return [
        {
            "id": row["id"],
            "object": "model",
            "created": int(row["created_at"]) // 1000,
            "owned_by": "qwen",
            "name": row["name"],
            "capabilities": row["capabilities"],
        }
        for row in model_rows.list_models(conn, provider=QWEN_PROVIDER_ID)
    ]


class ModelCatalog:
    """Own the cached model list; one upstream fetch at a time."""

    def __init__(
        self,
        client: QwenClient,
        store: Store,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._models: list[dict[str, Any]] | None = None
        self._ids: frozenset[str] = frozenset()
        self._stored_ids: frozenset[str] = frozenset()
        self._fetched_at = float("-inf")
        self._fetch: asyncio.Task[list[dict[str, Any]]] | None = None

    def _fresh(self) -> bool:
        return self._models is not None and self._clock() - self._fetched_at < self._ttl

    async def models(self, credentials: QwenCredentials | None) -> list[dict[str, Any]]:
        """Return the OpenAI model list: Qwen's, or the stored catalogue when Qwen fails."""
        if self._fresh() and self._models is not None:
            return self._models
        if credentials is not None:
            try:
                return await self._refresh(credentials)
            except ProxyError as exc:
                log.warning("models_fetch_failed", error=exc.code, reason=exc.message)
        if self._models is not None:
            return self._models
        return await self._store.read(_stored)

    async def require(self, model: str, credentials: QwenCredentials) -> None:
        """Raise ``ModelNotFound`` unless Qwen (or the stored catalogue) knows ``model``."""
        if model in self._ids or model in self._stored_ids:
            return
        # Not known yet: re-read the stored catalogue (the user may have added the model).
        self._stored_ids = frozenset(m["id"] for m in await self._store.read(_stored))
        if model in self._stored_ids:
            return
        if not self._fresh():
            with contextlib.suppress(ProxyError):
                await self._refresh(credentials)
            if model in self._ids:
                return
        raise ModelNotFound(f"The model '{model}' does not exist on Qwen", param="model")

    async def _refresh(self, credentials: QwenCredentials) -> list[dict[str, Any]]:
        if self._fetch is None or self._fetch.done():
            self._fetch = asyncio.ensure_future(self._download(credentials))
        # Shielded: one client giving up must not cancel the fetch the others wait for.
        return await asyncio.shield(self._fetch)

    async def _download(self, credentials: QwenCredentials) -> list[dict[str, Any]]:
        raw = await self._client.models(credentials)
        models = [m for m in map(from_upstream, raw) if m is not None]
        self._models = models
        self._ids = frozenset(m["id"] for m in models)
        self._fetched_at = self._clock()
        log.info("models_fetched", count=len(models))
        return models

    async def close(self) -> None:
        """Cancel a fetch still running (shutdown)."""
        if self._fetch is not None and not self._fetch.done():
            self._fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, ProxyError):
                await self._fetch
