"""Credentials come from the store on every call: changes through the API server apply at once."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from tests.conftest import DaemonFactory
from tests.fakes.qwen_upstream import FakeQwen, split
from tests.qwen.conftest import save_credentials
from tests.qwen.process import QwenProxyProcess
from tests.support.capture import record
from tests.support.daemon import Api

QUESTION = [{"role": "user", "content": "hello"}]
NEW_TOKEN = "tok-s3cr3t-umid-0002"
NEW_COOKIES = "cna=def; token=s3cr3t-cookie-0002"


async def test_credentials_posted_to_the_api_server_apply_to_the_next_call(
    daemon_factory: DaemonFactory,
    db_path: Path,
    fake: FakeQwen,
    proxy: QwenProxyProcess,
    client: AsyncOpenAI,
):
    daemon = await daemon_factory(db_path=db_path)
    fake.reply_pieces = split("Hi!")
    async with aiohttp.ClientSession() as session:
        api = Api(session, daemon.url)
        await client.chat.completions.create(model="qwen3-max", messages=QUESTION)

        status, _ = await api.post(
            "/api/qwen/credentials",
            {"token": NEW_TOKEN, "cookies": NEW_COOKIES, "expiresAt": int(time.time()) + 600},
        )
        assert status == 200
        fake.expect(NEW_TOKEN, NEW_COOKIES)
        calls_before = len(fake.calls)
        await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
        next_calls = fake.calls[calls_before:]
        assert next_calls, "no upstream call"
        assert all(c.headers["bx-umidtoken"] == NEW_TOKEN for c in next_calls)
        assert all(c.headers["Cookie"] == NEW_COOKIES for c in next_calls)

        status, _ = await api.delete("/api/qwen/credentials")
        assert status == 200
        calls_before = len(fake.calls)
        with pytest.raises(openai.AuthenticationError) as missing:
            await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
        record("qwen 401 missing", str(missing.value.body))
        error = missing.value.body
        assert isinstance(error, dict) and error["code"] == "qwen_credentials_missing"
        assert "/api/qwen/credentials" in error["message"] and "extension" in error["message"]
        assert len(fake.calls) == calls_before  # nothing went upstream

        status, _ = await api.post(
            "/api/qwen/credentials",
            {"token": NEW_TOKEN, "cookies": NEW_COOKIES, "expiresAt": int(time.time()) - 5},
        )
        assert status == 200
        with pytest.raises(openai.AuthenticationError) as expired:
            await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
        error = expired.value.body
        assert isinstance(error, dict) and error["code"] == "qwen_credentials_expired"
        assert "/api/qwen/credentials" in error["message"]
        assert len(fake.calls) == calls_before
    await daemon.stop()
    assert proxy.proc is not None and proxy.proc.returncode is None  # never restarted


async def test_credentials_saved_while_running_are_used_without_restart(
    db_path: Path, fake: FakeQwen, client: AsyncOpenAI
):
    fake.reply_pieces = split("Hi!")
    await save_credentials(db_path, NEW_TOKEN, NEW_COOKIES, None)  # no expiry
    fake.expect(NEW_TOKEN, NEW_COOKIES)
    reply = await client.chat.completions.create(model="qwen3-max", messages=QUESTION)
    assert reply.choices[0].message.content == "Hi!"
    assert fake.calls[-1].headers["bx-umidtoken"] == NEW_TOKEN
