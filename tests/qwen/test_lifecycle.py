"""Readiness, health, shutdown and hung-up clients."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.qwen_upstream import FakeQwen
from tests.qwen.conftest import ProxyFactory
from tests.qwen.process import QwenProxyProcess

QUESTION = [{"role": "user", "content": "hello"}]


async def test_ready_is_sent_to_notify_socket_once_listening(
    proxy_factory: ProxyFactory, tmp_path: Path, http: aiohttp.ClientSession
):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    try:
        proc = await proxy_factory({"NOTIFY_SOCKET": str(path)}, wait=False)
        async with asyncio.timeout(10):
            message = await asyncio.get_running_loop().sock_recv(sock, 64)
        assert message == b"READY=1"
        # Ready means listening: /health answers at once.
        async with http.get(proc.url + "/health") as resp:
            assert resp.status == 200
    finally:
        sock.close()


async def test_health_needs_no_credentials_and_no_upstream(
    proxy_factory: ProxyFactory, fake: FakeQwen, http: aiohttp.ClientSession
):
    proc = await proxy_factory({"QWEN_BASE_URL": "http://127.0.0.1:9"})
    async with http.get(proc.url + "/health") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "ok"
    assert fake.calls == []


async def test_sigterm_during_a_stream_exits_0(proxy: QwenProxyProcess, fake: FakeQwen):
    fake.gate = asyncio.Event()  # the answer hangs after the first event
    body = {"model": "qwen3-max", "messages": QUESTION, "stream": True}
    async with (
        aiohttp.ClientSession() as http,
        http.post(proxy.url + "/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200
        assert proxy.proc is not None
        proxy.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            code = await proxy.proc.wait()
    fake.gate.set()
    assert code == 0
    await proxy.wait_for_log("server_stopped")


async def test_missing_database_fails_clearly(
    proxy_factory: ProxyFactory, tmp_path: Path, fake: FakeQwen
):
    proc = await proxy_factory({"DATABASE_PATH": str(tmp_path / "none.db")}, wait=False)
    assert proc.proc is not None
    async with asyncio.timeout(10):
        code = await proc.proc.wait()
    await proc.stop()
    assert code == 1
    failure = proc.logs("server_failed")
    assert failure and "start the API server" in failure[0]["error"]
    proc.proc = _Exited0()  # type: ignore[assignment]  # the factory's teardown expects exit 0


class _Exited0:
    returncode = 0


async def test_client_hanging_up_cancels_the_upstream_stream(
    proxy: QwenProxyProcess, fake: FakeQwen
):
    fake.pause = 0.02  # 823 events: the answer takes ~16 s if nobody stops it
    body = {"model": "qwen3-max", "messages": QUESTION, "stream": True}
    async with aiohttp.ClientSession() as http:
        resp = await http.post(proxy.url + "/v1/chat/completions", json=body)
        assert resp.status == 200
        first = await resp.content.readline()
        assert json.loads(first[6:])["choices"][0]["delta"]["content"] == "Greetings"
        resp.close()  # hang up mid-stream
    async with asyncio.timeout(5):
        await fake.stream_ended.wait()
    assert fake.streams_aborted == 1
    assert fake.streams_finished == 0
    await proxy.wait_for_log("client_disconnected")


async def test_client_hanging_up_on_a_non_stream_request_cancels_upstream(
    proxy: QwenProxyProcess, fake: FakeQwen
):
    fake.pause = 0.02  # the whole answer would take ~16 s
    body = {"model": "qwen3-max", "messages": QUESTION}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await http.post(proxy.url + "/v1/chat/completions", json=body)
    async with asyncio.timeout(5):
        await fake.stream_ended.wait()
    assert fake.streams_aborted == 1 and fake.streams_finished == 0
