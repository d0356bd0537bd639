"""One chat completion: credentials, conversation plan, Qwen calls, and remembering the chat."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from qwen_proxy import conversation
from qwen_proxy.catalog import ModelCatalog
from qwen_proxy.credentials import CredentialSource, usable
from qwen_proxy.errors import CredentialsMissing, UpstreamError
from qwen_proxy.schema import ChatRequest
from qwen_proxy.tools import ToolCallOut
from qwen_proxy.upstream import BROKEN, QwenClient, Reply, RetryPolicy, Sleep
from qwenstack_core.logsetup import get_logger
from qwenstack_core.store import Connection, Store
from qwenstack_core.store import conversations as conversation_rows
from qwenstack_core.store.conversations import Conversation
from qwenstack_core.store.credentials import QwenCredentials

log = get_logger("qwen_proxy.chat")


def completion_body(
    model: str, chat_id: str, parent_id: str | None, prompt: str, *, thinking: bool
) -> dict[str, Any]:
    """Return the body of ``POST /api/v2/chat/completions`` (children.md, the browser's fields)."""
    now = int(time.time())
    message = {
        "fid": str(uuid.uuid4()),
        "parentId": parent_id,
        "childrenIds": [],
        "role": "user",
        "content": prompt,
        "user_action": "chat",
        "files": [],
        "timestamp": now,
        "models": [model],
        "chat_type": "t2t",
        "feature_config": {"thinking_enabled": thinking, "output_schema": "phase"},
        "extra": {"meta": {"subChatType": "t2t"}},
        "sub_chat_type": "t2t",
        "parent_id": parent_id,
    }
    # Always streamed upstream, also for a non-stream client: only the stream carries the
    # usage, the finish and the phases (thinking vs. answer).
    return {
        "stream": True,
        "incremental_output": True,
        "chat_id": chat_id,
        "chat_mode": "normal",
        "model": model,
        "parent_id": parent_id,
        "messages": [message],
        "timestamp": now,
    }


def openai_usage(usage: dict[str, Any] | None) -> dict[str, int]:
    """Map Qwen's cumulative usage to OpenAI's (zeros when Qwen sent none)."""
    usage = usage or {}
    prompt = int(usage.get("input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    total = int(usage.get("total_tokens") or prompt + completion)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


class Turn:
    """Qwen's reply to one request, read delta by delta; what it learnt is kept here."""

    def __init__(self, request: ChatRequest, plan: conversation.Plan, chat_id: str, reply: Reply):
        self.request = request
        self.plan = plan
        self.chat_id = chat_id
        self.reply = reply
        self.parent_id: str | None = None
        self.usage: dict[str, Any] | None = None
        self.finished = False

    async def deltas(self) -> AsyncIterator[tuple[bool, str]]:
        """Yield ``(is_answer, text)`` for every non-empty delta, as it arrives.

        Deltas of another phase than ``answer`` (Qwen's thinking) are yielded only when the
        client asked for reasoning. Raises ``UpstreamError`` if the reply never finished.
        """
        reasoning = self.request.reasoning
        async for event in self.reply.events():
            choices = event.get("choices")
            if choices:
                usage = event.get("usage")
                if usage:
                    self.usage = usage
                delta = choices[0].get("delta") or {}
                phase = delta.get("phase")
                answer = phase is None or phase == "answer"
                if answer and delta.get("status") == "finished":
                    self.finished = True
                text = delta.get("content")
                if text and (answer or reasoning):
                    yield answer, text
            created = event.get("response.created")
            if created:
                parent = created.get("parent_id")
                self.parent_id = parent if isinstance(parent, str) else None
        if not self.finished:
            raise UpstreamError("Qwen's stream ended before the reply was finished", code=BROKEN)

    def openai_usage(self) -> dict[str, int]:
        """Return the reply's usage in OpenAI's terms."""
        return openai_usage(self.usage)

    def close(self) -> None:
        """Drop the upstream connection (client gone, or an error mid-way)."""
        self.reply.close()


class ChatService:
    """Run chat completions against Qwen for the handlers."""

    def __init__(
        self,
        store: Store,
        credentials: CredentialSource,
        client: QwenClient,
        catalog: ModelCatalog,
        retry: RetryPolicy,
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._retry = retry
        self._sleep = sleep
        self._store = store
        self._credentials = credentials
        self._client = client
        self.catalog = catalog

    async def optional_credentials(self) -> QwenCredentials | None:
        """Return usable credentials, or None (the model list works without them)."""
        stored = await self._store.read(self._credentials.refresh)
        try:
            return usable(stored)
        except CredentialsMissing:
            return None

    async def start(self, request: ChatRequest) -> Turn:
        """Plan the request, create the Qwen chat if needed and start the completion.

        Everything that can fail before the first byte fails here, as a ``ProxyError``.
        """
        key = conversation.request_key(request.messages)

        def read(conn: Connection) -> tuple[QwenCredentials | None, Conversation | None]:
            # One trip to the store thread for both: the request's time to first token.
            stored = conversation_rows.find(conn, key) if key is not None else None
            return self._credentials.refresh(conn), stored

        stored_credentials, stored = await self._store.read(read)
        credentials = usable(stored_credentials)
        await self.catalog.require(request.model, credentials)
        plan = conversation.plan(request, stored)
        chat_id = plan.chat_id
        if chat_id is None:
            chat_id = await self._client.new_chat(credentials, request.model)
        log.debug(
            "chat_planned",
            chat_id=chat_id,
            continued=plan.chat_id is not None,
            turns=plan.turns,
            model=request.model,
        )
        body = completion_body(
            request.model, chat_id, plan.parent_id, plan.prompt, thinking=request.reasoning
        )
        reply = await self._client.completion(credentials, chat_id, body)
        return Turn(request, plan, chat_id, reply)

    async def collect(self, request: ChatRequest) -> tuple[Turn, list[str], list[str]]:
        """Run a request whose answer is not streamed: return (turn, answer, reasoning) texts.

        Nothing has gone to the client yet, so an answer that breaks off mid-way is asked for
        again (with backoff, at most ``max_retries`` times); its unfinished reply is never
        chained to.
        """
        attempt = 0
        while True:
            turn = await self.start(request)
            answer: list[str] = []
            reasoning: list[str] = []
            try:
                async for is_answer, text in turn.deltas():
                    (answer if is_answer else reasoning).append(text)
                return turn, answer, reasoning
            except UpstreamError as exc:
                delay = self._retry.delay(attempt, None) if exc.code == BROKEN else None
                if delay is None:
                    raise
                log.warning(
                    "upstream_retrying", path="completion", attempt=attempt + 1, error=exc.code
                )
                await self._sleep(delay)
                attempt += 1
            finally:
                turn.close()

    async def remember(self, turn: Turn, content: str, calls: Sequence[ToolCallOut]) -> None:
        """Store the chat of the conversation after a finished reply, for the next turn."""
        if turn.parent_id is None:
            return  # nothing to chain to: the next turn will start a new chat with the history
        key = turn.plan.key
        if key is None:
            reply = conversation.assistant_fingerprint(
                content, [(c.name, c.arguments) for c in calls]
            )
            key = conversation.conversation_key(
                conversation.first_user(turn.request.messages), reply
            )
        row = Conversation(
            key, turn.chat_id, turn.parent_id, turn.request.model, turn.plan.turns + 1
        )
        await self._store.write(lambda conn: conversation_rows.save(conn, row))

    async def prune(self, *, max_age_s: int, max_rows: int) -> int:
        """Forget conversations unused for long (their Qwen chats stay on Qwen's side)."""
        return await self._store.write(
            lambda conn: conversation_rows.prune(conn, max_age_s=max_age_s, max_rows=max_rows)
        )
