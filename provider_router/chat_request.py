"""Validate a chat-completion body at the edge and produce what is sent upstream."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from provider_router.errors import invalid

# Fields that name an upstream or a key: a client never chooses either through the body, and
# they are not passed on (the provider's own base URL and key are used).
UPSTREAM_FIELDS = frozenset(
    {"api_base", "base_url", "baseURL", "api_key", "apiKey", "api_type", "api_version",
     "organization", "azure_endpoint", "custom_llm_provider"}
)  # fmt: skip


@dataclass(slots=True)
class ChatRequest:
    """A valid chat request: the parsed body and, when nothing had to change, its raw bytes."""

    model: str
    stream: bool
    body: dict[str, Any]
    raw: bytes | None  # the client's bytes, usable as they are for an unmapped model

    def payload(self, upstream_model: str | None) -> bytes:
        """Return the body for an upstream that knows the model as ``upstream_model``."""
        if upstream_model is None or upstream_model == self.model:
            if self.raw is not None:
                return self.raw
            return json.dumps(self.body).encode()
        return json.dumps({**self.body, "model": upstream_model}).encode()

    def stored_body(self) -> str:
        """Return the body as recorded in history (without any upstream/key field)."""
        return (
            self.raw.decode("utf-8", "replace") if self.raw is not None else json.dumps(self.body)
        )


def parse(raw: bytes) -> ChatRequest:
    """Parse and check a chat body; raise a 400 in the OpenAI shape when it is not valid."""
    if not raw:
        raise invalid("Request body is empty; expected a JSON object", code="invalid_json")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid("Request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise invalid("'model' is required and must be a non-empty string", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' is required and must be a non-empty array", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise invalid(
                f"messages[{index}] must be an object with a string 'role'",
                param=f"messages[{index}]",
            )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid("'stream' must be a boolean", param="stream")
    stripped = UPSTREAM_FIELDS.intersection(body)
    if stripped:
        for name in stripped:
            del body[name]
        return ChatRequest(model, stream, body, None)
    return ChatRequest(model, stream, body, raw)
