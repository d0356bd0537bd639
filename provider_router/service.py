"""The chat service: validate, route, forward, record. Handlers call it and nothing else."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Any

from aiohttp import web

from provider_router import chat_request
from provider_router.catalog import LiveCatalog
from provider_router.errors import RouterError
from provider_router.forward import Forwarder, Outcome
from provider_router.history import HistoryRecorder
from provider_router.routing import RoutingTable
from qwenstack_core.store.history_writes import Exchange


class ChatService:
    """Answer chat completions; every answer (or failure) becomes one history exchange."""

    def __init__(
        self, catalog: LiveCatalog, forwarder: Forwarder, history: HistoryRecorder
    ) -> None:
        self._catalog = catalog
        self._forwarder = forwarder
        self._history = history
        # Unique per router run without a syscall per request (uuid4 reads os.urandom).
        self._id_prefix = f"rt-{os.getpid():x}{time.time_ns():x}-"
        self._ids = itertools.count(1)

    async def complete(self, request: web.Request) -> web.StreamResponse:
        """Handle one ``POST /v1/chat/completions``."""
        outcome = Outcome(started=time.perf_counter())
        created_at = int(time.time() * 1000)
        request_id = self._id_prefix + str(next(self._ids))
        chat: chat_request.ChatRequest | None = None
        table: RoutingTable | None = None
        try:
            chat = chat_request.parse(await request.read())
            table = await self._catalog.current()
            routes = table.candidates(chat.model)
            if not routes:
                raise RouterError(
                    404,
                    f"The model '{chat.model}' is not served by any enabled provider",
                    "model_not_found",
                    param="model",
                )
            headers = {"X-Request-ID": request_id}
            return await self._forwarder.chat(
                request, chat, routes, outcome, headers, keep_body=table.log_responses
            )
        except RouterError as exc:
            outcome.status = exc.status
            if outcome.error is None:
                outcome.error, outcome.error_class = exc.message, exc.code
            exc.headers.setdefault("X-Request-ID", request_id)
            raise
        except BaseException as exc:
            # Cancelled (the client went away) or a bug: still one history row, then re-raise.
            if outcome.error is None:
                outcome.error = "request aborted"
                outcome.error_class = (
                    "client_disconnected" if isinstance(exc, asyncio.CancelledError) else "internal"
                )
            raise
        finally:
            if chat is not None:
                self._record(request, request_id, created_at, chat, outcome, table)

    def _record(
        self,
        request: web.Request,
        request_id: str,
        created_at: int,
        chat: chat_request.ChatRequest,
        outcome: Outcome,
        table: RoutingTable | None,
    ) -> None:
        usage = outcome.usage or {}
        log_requests = table is not None and table.log_requests
        self._history.record(
            Exchange(
                request_id=request_id,
                provider_id=outcome.provider_id,
                model=chat.model,
                stream=chat.stream,
                path=request.path,
                request_body=chat.stored_body() if log_requests else None,
                created_at=created_at,
                status_code=outcome.status,
                response_body=outcome.body,
                prompt_tokens=_int(usage.get("prompt_tokens")),
                completion_tokens=_int(usage.get("completion_tokens")),
                total_tokens=_int(usage.get("total_tokens")),
                finish_reason=outcome.finish_reason,
                error=outcome.error,
                error_class=outcome.error_class,
                duration_ms=outcome.elapsed_ms(),
                ttfb_ms=outcome.ttfb_ms,
            )
        )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
