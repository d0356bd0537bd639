"""Qwen's reply in OpenAI's shapes: streamed chunks written as they arrive, or one completion."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

from qwen_proxy.errors import ProxyError
from qwen_proxy.service import ChatService, Turn
from qwen_proxy.tools import ToolCallOut, ToolCallParser
from qwenstack_core.logsetup import get_logger

log = get_logger("qwen_proxy.chat")

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class ChunkEncoder:
    """Encode ``chat.completion.chunk`` events; the constant parts are encoded once per reply."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self._envelope = (
            b'data: {"id":"' + self.id.encode() + b'","object":"chat.completion.chunk","created":'
            + str(self.created).encode() + b',"model":' + orjson.dumps(model)
        )  # fmt: skip
        self._head = self._envelope + b',"choices":[{"index":0,"delta":{'
        self._role = b'"role":"assistant",'  # only in the first chunk

    def _delta(self, inner: bytes, finish: bytes = b"null") -> bytes:
        role, self._role = self._role, b""
        return (
            self._head + role + inner + b'},"logprobs":null,"finish_reason":' + finish + b"}]}\n\n"
        )

    def content(self, text: str) -> bytes:
        """Return a content delta."""
        return self._delta(b'"content":' + orjson.dumps(text))

    def reasoning(self, text: str) -> bytes:
        """Return a reasoning delta."""
        return self._delta(b'"reasoning_content":' + orjson.dumps(text))

    def tool_call(self, index: int, call: ToolCallOut) -> bytes:
        """Return a delta carrying one whole tool call."""
        return self._delta(b'"tool_calls":' + orjson.dumps([call.as_openai(index)]))

    def finish(self, reason: str) -> bytes:
        """Return the last chunk, with ``finish_reason``."""
        inner = b'"content":""' if self._role else b""
        return self._delta(inner, b'"' + reason.encode() + b'"')

    def usage(self, usage: dict[str, int]) -> bytes:
        """Return the usage chunk (``stream_options.include_usage``)."""
        return self._envelope + b',"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n"

    @staticmethod
    def error(error: ProxyError) -> bytes:
        """Return an SSE error event in the OpenAI error shape."""
        return b"data: " + orjson.dumps(error.body()) + b"\n\n"


async def stream_reply(
    request: web.Request, turn: Turn, service: ChatService
) -> web.StreamResponse:
    """Send the reply as SSE, each upstream delta written the moment it arrives."""
    chat = turn.request
    encode = ChunkEncoder(chat.model)
    response = web.StreamResponse(headers=SSE_HEADERS)
    parser = ToolCallParser(chat.tools) if chat.tools else None
    answer: list[str] = []
    try:
        await response.prepare(request)
        write = response.write
        try:
            async for is_answer, text in turn.deltas():
                if not is_answer:
                    await write(encode.reasoning(text))
                elif parser is None:
                    answer.append(text)
                    await write(encode.content(text))
                else:
                    for piece in parser.feed(text):
                        await write(_piece(encode, piece, answer, parser))
            if parser is not None:
                for piece in parser.flush():
                    await write(_piece(encode, piece, answer, parser))
            calls = parser.calls if parser is not None else []
            # Remembered before [DONE]: a client may send the next turn the moment it sees it.
            await service.remember(turn, "".join(answer), calls)
            await write(encode.finish("tool_calls" if calls else "stop"))
            if chat.include_usage:
                await write(encode.usage(turn.openai_usage()))
        except ProxyError as exc:
            # Bytes went out already: the error travels in the stream, never as a retry.
            log.warning("stream_failed", error=exc.code, reason=exc.message, chat_id=turn.chat_id)
            turn.close()
            await write(encode.error(exc))
        await write(DONE)
        await response.write_eof()
    except ConnectionError:
        log.info("client_disconnected", chat_id=turn.chat_id)
    except asyncio.CancelledError:
        # The client hung up (aiohttp cancels the handler) or the server is stopping.
        log.info("client_disconnected", chat_id=turn.chat_id)
        raise
    finally:
        # A no-op after a complete reply; otherwise the half-read upstream call is dropped.
        turn.close()
    return response


def _piece(
    encode: ChunkEncoder, piece: str | ToolCallOut, answer: list[str], parser: ToolCallParser
) -> bytes:
    if isinstance(piece, str):
        answer.append(piece)
        return encode.content(piece)
    return encode.tool_call(parser.calls.index(piece), piece)


async def whole_reply(
    turn: Turn, answer: list[str], reasoning: list[str], service: ChatService
) -> web.Response:
    """Answer one ``chat.completion`` from a whole reply."""
    chat = turn.request
    content: str | None = "".join(answer)
    calls: list[ToolCallOut] = []
    if chat.tools:
        parser = ToolCallParser(chat.tools)
        pieces = [*parser.feed(content or ""), *parser.flush()]
        calls = parser.calls
        content = "".join(p for p in pieces if isinstance(p, str)) or None
    await service.remember(turn, content or "", calls)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = [call.as_openai() for call in calls]
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": chat.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if calls else "stop",
            }
        ],
        "usage": turn.openai_usage(),
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")
