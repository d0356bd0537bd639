"""A fake Qwen web chat on loopback, built from the recorded traffic in tests/fixtures/qwen/.

It serves the model list, new chats and completions (the recorded SSE transcript replayed event
by event with a pause in between, with fresh ids so parent_id chaining can be checked), and
checks the headers and body fields of every call against children.md: any violation is
recorded in ``violations`` and answered with a 400, so a test both fails loudly and can assert
``violations == []``.

In-process use (tests): ``fake = FakeQwen(); url = await fake.start(); ...; await fake.stop()``.
As a program (benchmarks, from the repository root): ``python -m tests.fakes.qwen_upstream
--pause 0.002 --token T --cookies C`` prints ``READY <port>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections import deque
from typing import Any

from aiohttp import web

from tests.fakes.qwen_fixtures import (
    Call,
    Planned,
    fixture,
    load_transcript,
    split,
    synthetic_events,
    transcript_text,
    transcript_usage,
)

__all__ = [
    "FakeQwen",
    "fixture",
    "split",
    "transcript_text",
    "transcript_usage",
]


class FakeQwen:
    """The fake upstream and everything it saw."""

    def __init__(self, *, token: str = "", cookies: str = "", pause: float = 0.0) -> None:
        self.token = token
        self.cookies = cookies
        self.pause = pause
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.planned: deque[Planned] = deque()
        self.reply_pieces: list[str] | None = None  # None: the recorded transcript
        self.thinking_pieces: list[str] = []
        self.json_reply = False  # answer completions with the recorded non-stream JSON
        self.transcript_events: int | None = None  # replay only the first N deltas (benchmarks)
        self.break_after: int | None = None  # drop the connection after N events
        self.breaks_left = 1_000_000  # how many streams break before they are whole again
        self.gate: asyncio.Event | None = None  # hold the stream after gate_after events
        self.gate_after = 1
        self.events_sent = 0
        self.streams_started = 0
        self.streams_finished = 0
        self.streams_aborted = 0  # the proxy hung up mid-stream
        self.stream_ended = asyncio.Event()  # set when any stream finishes or is aborted
        self.chats: dict[str, str | None] = {}  # chat id -> the parent_id the next turn needs
        self.transcript = load_transcript()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- control ---------------------------------------------------------------------------

    def expect(self, token: str, cookies: str) -> None:
        self.token, self.cookies = token, cookies

    def plan(self, path: str, status: int, body: bytes | str = b"", **kw: Any) -> None:
        raw = body.encode() if isinstance(body, str) else body
        self.planned.append(Planned(path, status, raw, **kw))

    def calls_to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    @property
    def completions(self) -> list[Call]:
        return self.calls_to("/api/v2/chat/completions")

    @property
    def new_chats(self) -> list[Call]:
        return self.calls_to("/api/v2/chats/new")

    # -- server ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/models", self._models)
        app.router.add_post("/api/v2/chats/new", self._new_chat)
        app.router.add_post("/api/v2/chat/completions", self._completion)
        return app

    async def start(self, port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- checks ----------------------------------------------------------------------------

    def _violate(self, message: str) -> None:
        self.violations.append(message)

    def _check_headers(self, request: web.Request) -> None:
        h = request.headers
        if h.get("bx-umidtoken") != self.token:
            self._violate(f"{request.path}: bx-umidtoken is not the stored token")
        if h.get("Cookie") != self.cookies:
            self._violate(f"{request.path}: Cookie is not the stored cookies")
        if h.get("Content-Type", "").split(";")[0] != "application/json":
            self._violate(f"{request.path}: Content-Type {h.get('Content-Type')!r}")
        if "Mozilla/5.0" not in h.get("User-Agent", ""):
            self._violate(f"{request.path}: User-Agent is not a browser's")
        if h.get("source") != "web":
            self._violate(f"{request.path}: source header {h.get('source')!r}")
        if h.get("Origin") != self.url:
            self._violate(f"{request.path}: Origin {h.get('Origin')!r} is not {self.url}")
        if not h.get("Referer", "").startswith(self.url + "/"):
            self._violate(f"{request.path}: Referer {h.get('Referer')!r}")

    def _check_message(self, msg: Any, body: dict[str, Any]) -> None:
        if not isinstance(msg, dict):
            self._violate("completion: message is not an object")
            return
        expected: dict[str, Any] = {
            "childrenIds": [],
            "role": "user",
            "user_action": "chat",
            "files": [],
            "models": [body.get("model")],
            "chat_type": "t2t",
            "sub_chat_type": "t2t",
            "extra": {"meta": {"subChatType": "t2t"}},
            "parentId": body.get("parent_id"),
            "parent_id": body.get("parent_id"),
        }
        for key, value in expected.items():
            if msg.get(key) != value:
                self._violate(f"completion: message.{key} = {msg.get(key)!r}, expected {value!r}")
        try:
            uuid.UUID(str(msg.get("fid")))
        except ValueError:
            self._violate(f"completion: message.fid {msg.get('fid')!r} is not a uuid")
        if not isinstance(msg.get("content"), str) or not msg["content"]:
            self._violate("completion: message.content is not a non-empty string")
        ts = msg.get("timestamp")
        if not isinstance(ts, int) or abs(ts - time.time()) > 3600:
            self._violate(f"completion: message.timestamp {ts!r} is not Unix seconds")
        config = msg.get("feature_config")
        if (
            not isinstance(config, dict)
            or not isinstance(config.get("thinking_enabled"), bool)
            or config.get("output_schema") != "phase"
        ):
            self._violate(f"completion: message.feature_config {config!r}")

    def _check_completion(self, request: web.Request, body: Any) -> str | None:
        if not isinstance(body, dict):
            self._violate("completion: body is not an object")
            return None
        chat_id = request.query.get("chat_id")
        if body.get("chat_id") != chat_id:
            self._violate("completion: body chat_id differs from the query's")
        if chat_id not in self.chats:
            self._violate(f"completion: unknown chat {chat_id!r}")
            return None
        for key, value in (("incremental_output", True), ("chat_mode", "normal")):
            if body.get(key) != value:
                self._violate(f"completion: {key} = {body.get(key)!r}, expected {value!r}")
        if not isinstance(body.get("stream"), bool):
            self._violate("completion: stream is not a boolean")
        if body.get("parent_id") != self.chats[chat_id]:
            self._violate(
                f"completion: parent_id {body.get('parent_id')!r}, expected {self.chats[chat_id]!r}"
            )
        if not isinstance(body.get("timestamp"), int):
            self._violate("completion: timestamp is not an integer")
        messages = body.get("messages")
        if not isinstance(messages, list) or len(messages) != 1:
            self._violate("completion: messages must hold exactly one message")
        else:
            self._check_message(messages[0], body)
        return chat_id

    async def _record(self, request: web.Request) -> tuple[Any, web.Response | None]:
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                self._violate(f"{request.path}: body is not JSON")
        self.calls.append(
            Call(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                body,
                asyncio.get_running_loop().time(),
            )
        )
        before = len(self.violations)
        self._check_headers(request)
        for i, planned in enumerate(self.planned):
            if planned.path == request.path:
                del self.planned[i]
                return body, web.Response(
                    body=planned.body,
                    status=planned.status,
                    content_type=planned.content_type,
                    headers=planned.headers,
                )
        if len(self.violations) > before:
            return body, self._rejected()
        return body, None

    def _rejected(self) -> web.Response:
        return web.json_response(
            {"success": False, "data": {"code": "FakeSpecViolation", "details": self.violations}},
            status=400,
        )

    # -- endpoints -------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.StreamResponse:
        _body, canned = await self._record(request)
        return canned or web.json_response(fixture("models_response.json"))

    async def _new_chat(self, request: web.Request) -> web.StreamResponse:
        body, canned = await self._record(request)
        if canned is not None:
            return canned
        before = len(self.violations)
        expected = {"chat_mode": "normal", "chat_type": "t2t"}
        if not isinstance(body, dict):
            self._violate("new chat: body is not an object")
            return self._rejected()
        for key, value in expected.items():
            if body.get(key) != value:
                self._violate(f"new chat: {key} = {body.get(key)!r}, expected {value!r}")
        if not isinstance(body.get("title"), str):
            self._violate("new chat: title is not a string")
        models = body.get("models")
        if not isinstance(models, list) or len(models) != 1 or not isinstance(models[0], str):
            self._violate(f"new chat: models {models!r}")
        ts = body.get("timestamp")
        if not isinstance(ts, int) or abs(ts / 1000 - time.time()) > 3600:
            self._violate(f"new chat: timestamp {ts!r} is not Unix milliseconds")
        if len(self.violations) > before:
            return self._rejected()
        reply = fixture("new_chat_response.json")
        chat_id = str(uuid.uuid4())
        reply["data"]["id"] = chat_id
        self.chats[chat_id] = None
        return web.json_response(reply)

    async def _completion(self, request: web.Request) -> web.StreamResponse:
        body, canned = await self._record(request)
        if canned is not None:
            return canned
        before = len(self.violations)
        chat_id = self._check_completion(request, body)
        if len(self.violations) > before or chat_id is None:
            return self._rejected()
        parent_id = str(uuid.uuid4())
        previous = self.chats[chat_id]
        self.chats[chat_id] = parent_id
        if self.json_reply:
            reply = fixture("completion_response.json")
            reply["data"]["parent_id"] = parent_id
            return web.json_response(reply)
        return await self._stream(request, chat_id, parent_id, previous)

    def _events(self, chat_id: str, parent_id: str) -> list[bytes]:
        created = {
            "response.created": {
                "chat_id": chat_id,
                "parent_id": parent_id,
                "response_id": str(uuid.uuid4()),
            }
        }
        if self.reply_pieces is None and not self.thinking_pieces:
            body = self.transcript[1:]
            if self.transcript_events is not None:
                body = [*body[: self.transcript_events], body[-1]]  # the last one finishes
        else:
            thinking = synthetic_events(self.thinking_pieces, phase="think")
            pieces = self.reply_pieces if self.reply_pieces is not None else []
            answer = synthetic_events(pieces, start=len(self.thinking_pieces))
            final = {
                "choices": [{"delta": {"content": "", "status": "finished", "phase": "answer"}}]
            }
            body = [*thinking, *answer, json.dumps(final).encode()]
        return [json.dumps(created).encode(), *body]

    async def _stream(
        self, request: web.Request, chat_id: str, parent_id: str, previous: str | None
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream;charset=UTF-8"})
        await resp.prepare(request)
        self.streams_started += 1
        events = self._events(chat_id, parent_id)
        try:
            for i, payload in enumerate(events):
                if self.break_after is not None and i == self.break_after:
                    assert request.transport is not None
                    # An unfinished reply is no turn: the next one chains to the old parent.
                    self.chats[chat_id] = previous
                    self.breaks_left -= 1
                    if self.breaks_left <= 0:
                        self.break_after = None
                    request.transport.abort()  # the network drops mid-answer
                    return resp
                if self.gate is not None and i == self.gate_after:
                    await self.gate.wait()
                await resp.write(b"data: " + payload + b"\n\n")
                self.events_sent += 1
                if self.pause:
                    await asyncio.sleep(self.pause)
            await resp.write_eof()
        except ConnectionError:
            self.streams_aborted += 1
            return resp
        except asyncio.CancelledError:
            self.streams_aborted += 1
            raise
        finally:
            self.stream_ended.set()
        self.streams_finished += 1
        return resp


async def _main(args: argparse.Namespace) -> None:
    fake = FakeQwen(token=args.token, cookies=args.cookies, pause=args.pause)
    fake.transcript_events = args.events
    url = await fake.start(args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {url.rsplit(':', 1)[1]}", flush=True)
    await stop.wait()
    with contextlib.suppress(Exception):
        await fake.stop()
    if fake.violations:
        print("VIOLATIONS", fake.violations[:5], flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pause", type=float, default=0.0)
    parser.add_argument("--token", default="")
    parser.add_argument("--cookies", default="")
    parser.add_argument("--events", type=int, default=None, help="replay only N deltas")
    asyncio.run(_main(parser.parse_args()))
