"""The routing table: which upstreams serve a model, in which order, with which name and key.

Built once per store change from a ``RoutingSnapshot``; requests only look things up in it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from qwenstack_core import provider_urls
from qwenstack_core.logsetup import get_logger
from qwenstack_core.store.routing import RoutingSnapshot

log = get_logger("provider_router.routing")

DEFAULT_TIMEOUT_MS = 120_000
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Upstream:
    """One enabled provider as the router calls it."""

    provider_id: str
    chat_url: str
    headers: Mapping[str, str]
    timeout: aiohttp.ClientTimeout


@dataclass(frozen=True, slots=True)
class Route:
    """One candidate for a request: the upstream and the model name it knows the model by."""

    upstream: Upstream
    upstream_model: str | None  # None: the client's model name as it is


def _timeout(config: Mapping[str, Any], default_ms: int) -> aiohttp.ClientTimeout:
    raw = config.get("timeout")
    ms = raw if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0 else default_ms
    seconds = ms / 1000
    # No total limit: a long stream is fine as long as bytes keep coming (sock_read).
    return aiohttp.ClientTimeout(
        total=None, sock_connect=min(seconds, CONNECT_TIMEOUT_S), sock_read=seconds
    )


def _headers(config: Mapping[str, Any]) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    key = config.get("apiKey")
    if isinstance(key, str) and key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


@dataclass(slots=True)
class RoutingTable:
    """An immutable view of routing, plus a per-model memo of candidate lists."""

    upstreams: dict[str, Upstream]  # enabled and usable, in priority order
    links: dict[str, list[tuple[str, str | None]]]  # model -> [(provider, upstream model)]
    active_provider: str | None
    settings: Mapping[str, Any]
    models_body: bytes
    model_bodies: dict[str, bytes]
    _memo: dict[str, tuple[Route, ...]] = field(default_factory=dict)

    @property
    def log_requests(self) -> bool:
        return self.settings.get("logging.logRequests") is True

    @property
    def log_responses(self) -> bool:
        return self.settings.get("logging.logResponses") is True

    def candidates(self, model: str) -> tuple[Route, ...]:
        """Return the upstreams to try for ``model``, best first (empty: nobody serves it)."""
        hit = self._memo.get(model)
        if hit is None:
            hit = self._memo[model] = self._candidates(model)
        return hit

    def _candidates(self, model: str) -> tuple[Route, ...]:
        linked = self.links.get(model)
        mapping = dict(linked or ())
        if self.active_provider is not None:
            pinned = self.upstreams.get(self.active_provider)
            if pinned is not None:
                return (Route(pinned, mapping.get(pinned.provider_id)),)
        if linked:
            # Priority order comes from the upstreams dict; a model whose every linked
            # provider is disabled is served by nobody.
            return tuple(
                Route(u, mapping[pid]) for pid, u in self.upstreams.items() if pid in mapping
            )
        return tuple(Route(u, None) for u in self.upstreams.values())


def _model_entry(model_id: str, created_ms: int, owner: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created_ms // 1000, "owned_by": owner}


def build_table(snapshot: RoutingSnapshot, *, qwen_proxy_port: int) -> RoutingTable:
    """Turn a store snapshot into a routing table."""
    default_ms = snapshot.settings.get("server.timeout")
    if not isinstance(default_ms, int) or isinstance(default_ms, bool) or default_ms <= 0:
        default_ms = DEFAULT_TIMEOUT_MS
    upstreams: dict[str, Upstream] = {}
    for p in snapshot.providers:
        if not p.enabled:
            continue
        base = provider_urls.base_url(p.type, p.config, qwen_proxy_port=qwen_proxy_port)
        if base is None:
            log.warning("provider_skipped", provider_id=p.id, reason="no baseURL configured")
            continue
        upstreams[p.id] = Upstream(
            p.id, f"{base}/chat/completions", _headers(p.config), _timeout(p.config, default_ms)
        )
    links: dict[str, list[tuple[str, str | None]]] = {}
    for link in snapshot.links:
        mapped = link.config.get("upstreamModel")
        links.setdefault(link.model_id, []).append(
            (link.provider_id, mapped if isinstance(mapped, str) and mapped else None)
        )
    created = {m.id: m.created_at for m in snapshot.models}
    served: list[dict[str, Any]] = []
    for model_id in sorted(links):
        owners = [pid for pid, _ in links[model_id] if pid in upstreams]
        if owners:
            owner = next(pid for pid in upstreams if pid in owners)
            served.append(_model_entry(model_id, created.get(model_id, 0), owner))
    active = snapshot.settings.get("active_provider")
    return RoutingTable(
        upstreams=upstreams,
        links=links,
        active_provider=active if isinstance(active, str) else None,
        settings=dict(snapshot.settings),
        models_body=json.dumps({"object": "list", "data": served}).encode(),
        model_bodies={m["id"]: json.dumps(m).encode() for m in served},
    )
