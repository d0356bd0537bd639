"""Non-stream and stream answers through qwen-proxy, with the official OpenAI SDK as client."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from openai import AsyncOpenAI

from tests.fakes.qwen_upstream import (
    FakeQwen,
    fixture,
    transcript_text,
    transcript_usage,
)
from tests.qwen.conftest import COOKIES, TOKEN
from tests.qwen.process import QwenProxyProcess
from tests.support.capture import record

QUESTION = [{"role": "user", "content": "explain law to an alien"}]


async def test_non_stream_reproduces_the_recorded_text(client: AsyncOpenAI, fake: FakeQwen):
    reply = await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
    record("qwen non-stream", reply.model_dump_json())
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == transcript_text()
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == "stop"
    usage = transcript_usage()
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == usage["input_tokens"]
    assert reply.usage.completion_tokens == usage["output_tokens"]
    assert reply.usage.total_tokens == usage["total_tokens"]
    assert len(fake.new_chats) == 1 and len(fake.completions) == 1
    sent = fake.completions[0].body
    assert sent["parent_id"] is None
    assert sent["messages"][0]["content"] == "explain law to an alien"
    assert sent["messages"][0]["feature_config"]["thinking_enabled"] is False


async def test_whole_json_reply_reproduces_the_recorded_non_stream_text(
    client: AsyncOpenAI, fake: FakeQwen
):
    # Qwen may answer a completion with one JSON reply (completion_response.json) instead of
    # a stream: the text comes through exactly.
    fake.json_reply = True
    reply = await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
    expected = fixture("completion_response.json")["data"]["choices"][0]["message"]["content"]
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == "stop"


async def test_request_without_stream_is_non_stream(proxy: QwenProxyProcess, fake: FakeQwen):
    body = {"model": "qwen3-max", "messages": QUESTION}
    async with (
        aiohttp.ClientSession() as http,
        http.post(proxy.url + "/v1/chat/completions", json=body) as resp,
    ):
        text = await resp.text()
        record("qwen no-stream field", text)
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert json.loads(text)["choices"][0]["message"]["content"] == transcript_text()


async def test_stream_reproduces_the_text_and_starts_before_upstream_ends(
    client: AsyncOpenAI, fake: FakeQwen
):
    fake.gate = asyncio.Event()  # the fake holds the rest of its answer after 2 events
    fake.gate_after = 2
    stream = await client.chat.completions.create(
        model="qwen3-max",
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = []
    async with asyncio.timeout(5):
        first = await stream.__anext__()
    # The first token is here while the upstream is still sending.
    assert fake.streams_finished == 0 and fake.events_sent == 2
    chunks.append(first)
    fake.gate.set()
    async for chunk in stream:
        chunks.append(chunk)
    record("qwen stream", "".join(c.model_dump_json() for c in chunks))
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == "Greetings"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == transcript_text()
    # Empty upstream deltas are skipped: one chunk per non-empty delta, then finish and usage.
    deltas = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    upstream = [json.loads(e) for e in fake.transcript]
    non_empty = [e for e in upstream if e.get("choices") and e["choices"][0]["delta"]["content"]]
    assert len(deltas) == len(non_empty) == len(upstream) - 4  # 3 empty deltas + created
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert chunks[-1].choices == []
    usage = transcript_usage()
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == usage["input_tokens"]
    assert chunks[-1].usage.completion_tokens == usage["output_tokens"]
    assert chunks[-1].usage.total_tokens == usage["total_tokens"]
    assert fake.completions[0].body["stream"] is True


async def test_stream_without_include_usage_has_no_usage_chunk_and_ends_with_done(
    proxy: QwenProxyProcess, fake: FakeQwen
):
    body = {"model": "qwen3-max", "messages": QUESTION, "stream": True}
    async with (
        aiohttp.ClientSession() as http,
        http.post(proxy.url + "/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        raw = (await resp.read()).decode()
    record("qwen raw stream", raw)
    events = [e for e in raw.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    last = json.loads(events[-2][len("data: ") :])
    assert last["choices"][0]["finish_reason"] == "stop"
    assert all('"usage"' not in e for e in events)


async def test_thinking_goes_out_as_reasoning_only_when_asked(client: AsyncOpenAI, fake: FakeQwen):
    fake.thinking_pieces = ["Let me ", "think."]
    fake.reply_pieces = ["Hello", " there"]
    plain = await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
    assert plain.choices[0].message.content == "Hello there"
    assert getattr(plain.choices[0].message, "reasoning_content", None) is None
    assert fake.completions[-1].body["messages"][0]["feature_config"]["thinking_enabled"] is False

    asked = await client.chat.completions.create(
        model="qwen3-max", messages=QUESTION, reasoning_effort="medium"
    )
    assert asked.choices[0].message.content == "Hello there"
    assert asked.choices[0].message.model_extra["reasoning_content"] == "Let me think."
    assert fake.completions[-1].body["messages"][0]["feature_config"]["thinking_enabled"] is True

    stream = await client.chat.completions.create(
        model="qwen3-max", messages=QUESTION, stream=True, reasoning_effort="high"
    )
    reasoning, content = [], []
    async for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta
            reasoning.append((delta.model_extra or {}).get("reasoning_content") or "")
            content.append(delta.content or "")
    assert "".join(reasoning) == "Let me think."
    assert "".join(content) == "Hello there"


async def test_upstream_headers_carry_the_stored_credentials(client: AsyncOpenAI, fake: FakeQwen):
    await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
    for call in fake.calls:
        assert call.headers["bx-umidtoken"] == TOKEN
        assert call.headers["Cookie"] == COOKIES
        assert call.headers["source"] == "web"
