"""Retries, broken streams, HTML answers and unreachable upstreams."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from tests.fakes.qwen_upstream import FakeQwen, split, transcript_text
from tests.qwen.conftest import ProxyFactory
from tests.qwen.process import QwenProxyProcess
from tests.support.capture import record
from tests.support.daemon import free_port

QUESTION = [{"role": "user", "content": "hello"}]
COMPLETIONS = "/api/v2/chat/completions"
NEW_CHAT = "/api/v2/chats/new"
HTML = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>login</body></html>"


@pytest.mark.parametrize("path", [COMPLETIONS, NEW_CHAT])
async def test_429_with_retry_after_is_retried_once_after_the_wait(
    client: AsyncOpenAI, fake: FakeQwen, path: str
):
    fake.reply_pieces = split("Hello after a wait.")
    fake.plan(path, 429, b'{"success": false}', headers={"Retry-After": "1"})
    reply = await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
    assert reply.choices[0].message.content == "Hello after a wait."
    calls = fake.calls_to(path)
    assert len(calls) == 2  # exactly one retry
    assert calls[1].at - calls[0].at >= 1.0


async def test_stream_request_is_retried_while_nothing_was_sent(
    client: AsyncOpenAI, fake: FakeQwen
):
    fake.reply_pieces = split("Second try.")
    fake.plan(COMPLETIONS, 503, b"busy", content_type="text/plain")
    stream = await client.chat.completions.create(model="qwen3-max", messages=QUESTION, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Second try."
    assert len(fake.completions) == 2


async def test_5xx_gives_up_after_three_retries(client: AsyncOpenAI, fake: FakeQwen):
    for _ in range(4):
        fake.plan(NEW_CHAT, 500, b'{"success": false, "data": {"code": "InternalError"}}')
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
    assert failed.value.status_code == 502
    assert isinstance(failed.value.body, dict) and failed.value.body["code"] == "upstream_error"
    assert len(fake.new_chats) == 4  # the call and three retries
    assert fake.completions == []


async def test_retry_after_longer_than_the_cap_is_answered_as_429(
    client: AsyncOpenAI, fake: FakeQwen
):
    fake.plan(NEW_CHAT, 429, b"{}", headers={"Retry-After": "3600"})
    with pytest.raises(openai.RateLimitError) as limited:
        await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
    assert limited.value.response.headers["Retry-After"] == "3600"
    assert len(fake.new_chats) == 1


async def test_stream_broken_midway_is_not_retried_and_ends_with_error_then_done(
    proxy: QwenProxyProcess, fake: FakeQwen
):
    fake.break_after = 40
    body = {"model": "qwen3-max", "messages": QUESTION, "stream": True}
    async with (
        aiohttp.ClientSession() as http,
        http.post(proxy.url + "/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200
        raw = (await resp.read()).decode()
    record("qwen broken stream", raw)
    events = [e for e in raw.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2][len("data: ") :])
    assert error["error"]["type"] == "upstream_error"
    assert "broke off" in error["error"]["message"] or "ended" in error["error"]["message"]
    contents = [json.loads(e[6:])["choices"][0]["delta"].get("content") for e in events[:-2]]
    assert len(contents) == 39 and all(contents)  # what arrived went out
    assert len(fake.completions) == 1  # never retried


async def test_broken_stream_raises_in_the_sdk(client: AsyncOpenAI, fake: FakeQwen):
    fake.break_after = 10
    stream = await client.chat.completions.create(model="qwen3-max", messages=QUESTION, stream=True)
    with pytest.raises(openai.APIError):
        async for _chunk in stream:
            pass


@pytest.mark.parametrize("path", [COMPLETIONS, NEW_CHAT, "/api/models"])
async def test_html_page_instead_of_json_is_a_clear_401(
    client: AsyncOpenAI, fake: FakeQwen, path: str
):
    fake.plan(path, 200, HTML, content_type="text/html")
    # The model check reads Qwen's list only for a model the stored catalogue lacks.
    model = "qwen-brand-new" if path == "/api/models" else "qwen3-max"
    with pytest.raises(openai.APIStatusError) as refused:
        await client.chat.completions.create(model=model, messages=QUESTION)
    record("qwen html error", str(refused.value.body))
    if path == "/api/models":
        assert refused.value.status_code == 404  # the list could not be read: still unknown
        return
    assert refused.value.status_code == 401
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "qwen_credentials_rejected"
    assert "HTML" in body["message"] and "/api/qwen/credentials" in body["message"]


async def test_html_with_a_json_content_type_is_not_a_traceback(
    client: AsyncOpenAI, fake: FakeQwen, proxy: QwenProxyProcess
):
    fake.plan(NEW_CHAT, 200, HTML, content_type="application/json")
    with pytest.raises(openai.AuthenticationError) as refused:
        await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
    assert "HTML" in str(refused.value.body)
    assert not [line for line in proxy.lines if "Traceback" in line]


async def test_login_redirect_and_403_are_401(client: AsyncOpenAI, fake: FakeQwen):
    fake.plan(NEW_CHAT, 302, b"", headers={"Location": "https://evil.example/login"})
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
    fake.plan(COMPLETIONS, 403, HTML, content_type="text/html")
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(model="qwen3-max", messages=QUESTION)


async def test_unreachable_upstream_is_502_after_retries(
    proxy_factory: ProxyFactory, db_path: Path
):
    proc = await proxy_factory({"QWEN_BASE_URL": f"http://127.0.0.1:{free_port()}"})
    sdk = AsyncOpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0)
    try:
        with pytest.raises(openai.APIStatusError) as failed:
            await sdk.chat.completions.create(model="qwen3-max", messages=QUESTION)
    finally:
        await sdk.close()
    assert failed.value.status_code == 502
    assert isinstance(failed.value.body, dict)
    assert failed.value.body["code"] == "upstream_unreachable"
    assert len(proc.logs("upstream_retrying")) == 3


async def test_non_stream_answer_broken_midway_is_asked_again(client: AsyncOpenAI, fake: FakeQwen):
    # Nothing went to the client yet: the whole answer is requested again.
    fake.break_after = 30
    fake.breaks_left = 1
    reply = await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
    assert reply.choices[0].message.content == transcript_text()
    assert len(fake.completions) == 2
    # The broken reply is never chained to: the retry has the same parent as the first try.
    assert fake.completions[0].body["parent_id"] == fake.completions[1].body["parent_id"]


async def test_non_stream_gives_up_after_three_broken_answers(client: AsyncOpenAI, fake: FakeQwen):
    fake.break_after = 5
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
    assert failed.value.status_code == 502
    assert len(fake.completions) == 4


async def test_html_page_under_another_content_type_is_a_clear_401(
    client: AsyncOpenAI, fake: FakeQwen
):
    fake.plan(COMPLETIONS, 200, HTML, content_type="text/plain")
    with pytest.raises(openai.AuthenticationError) as refused:
        await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
    assert "HTML" in str(refused.value.body)
    assert len(fake.completions) == 1  # a refusal is not retried
