"""Where each provider type's OpenAI-compatible API lives when its config names no ``baseURL``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROVIDER_TYPES = ("qwen-proxy", "lm-studio", "qwen-direct", "openai-compatible")
DEFAULT_QWEN_PROXY_PORT = 3000
DEFAULT_BASE_URLS: Mapping[str, str] = {
    "lm-studio": "http://localhost:1234/v1",
    "qwen-direct": "https://dashscope.aliyuncs.com/compatible-mode/v1",
}


def qwen_proxy_url(port: int = DEFAULT_QWEN_PROXY_PORT) -> str:
    """Return the sibling qwen-proxy's base URL on loopback."""
    return f"http://127.0.0.1:{port}/v1"


def base_url(provider_type: str, config: Mapping[str, Any], *, qwen_proxy_port: int) -> str | None:
    """Return the provider's base URL without a trailing slash: config first, then its type's.

    ``None`` for an ``openai-compatible`` provider without a ``baseURL`` (it has no default).
    """
    url = config.get("baseURL")
    if isinstance(url, str) and url:
        return url.rstrip("/")
    if provider_type == "qwen-proxy":
        return qwen_proxy_url(qwen_proxy_port)
    return DEFAULT_BASE_URLS.get(provider_type)
