"""A fake OpenAI-compatible upstream on loopback, for the provider-router tests and bench.

In-process (``FakeUpstream``, started inside a test's event loop) so a test can set what it
answers and read what it received; or as a process (``python tests/fakes/openai_upstream.py``,
port on stdout) for the benchmark.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Seen:
    """One request the fake received."""

    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes


@dataclass
class Behaviour:
    """What the fake answers. ``status`` other than 200 answers an error JSON of that status."""

    status: int = 200
    drop: bool = False  # close the connection without answering
    chunks: int = 3  # stream: number of content chunks
    interval: float = 0.0  # stream: seconds between chunks
    break_after: int | None = None  # stream: kill the connection after this many chunks
    content: str = "Hello"
    first_delay: float = 0.0


@dataclass
class FakeUpstream:
    """An aiohttp server that speaks just enough of the OpenAI chat API."""

    name: str = "fake"
    behaviour: Behaviour = field(default_factory=Behaviour)
    seen: list[Seen] = field(default_factory=list)
    chunk_times: dict[str, list[float]] = field(default_factory=dict)  # by request "user"
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    completed_streams: int = 0
    record: bool = True
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        return app

    async def start(self) -> FakeUpstream:
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        if self.record:
            self.seen.append(Seen(request.path, dict(request.headers), body, raw))
        b = self.behaviour
        if b.drop:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if b.first_delay:
            await asyncio.sleep(b.first_delay)
        if b.status != 200:
            return web.json_response(
                {"error": {"message": f"fake says {b.status}", "type": "fake", "code": None}},
                status=b.status,
            )
        if body.get("stream"):
            return await self._stream(request, body)
        return web.json_response(completion(body["model"], b.content, self.name))

    async def _stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        b = self.behaviour
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        times: list[float] = []
        if self.record:
            self.chunk_times[str(body.get("user", len(self.chunk_times)))] = times
        try:
            for index in range(b.chunks):
                if b.break_after is not None and index == b.break_after:
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                if index and b.interval:
                    await asyncio.sleep(b.interval)
                times.append(time.perf_counter())
                await resp.write(sse(chunk(body["model"], f"{b.content}{index} ", None)))
            await resp.write(sse(chunk(body["model"], "", "stop")))
            if (body.get("stream_options") or {}).get("include_usage"):
                await resp.write(sse(usage_chunk(body["model"])))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            self.completed_streams += 1
        except (ConnectionError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return resp


def completion(model: str, content: str, name: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"{content} from {name}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def chunk(model: str, content: str, finish: str | None) -> dict[str, Any]:
    delta = {"content": content} if finish is None else {}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def usage_chunk(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
    }


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


async def _serve_forever() -> None:
    fake = FakeUpstream(name="bench", record=False)
    fake.behaviour.chunks = int(os.environ.get("FAKE_CHUNKS", "3"))
    fake.behaviour.interval = float(os.environ.get("FAKE_INTERVAL", "0"))
    await fake.start()
    print(json.dumps({"event": "fake_ready", "port": fake.port}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


if __name__ == "__main__":
    try:
        asyncio.run(_serve_forever())
    except KeyboardInterrupt:
        sys.exit(0)
