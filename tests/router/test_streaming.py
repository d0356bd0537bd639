"""Streaming is relayed as it arrives, per client, and a client that leaves stops upstream."""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import time
from pathlib import Path

import aiohttp

from tests.router.conftest import RouterFactory, UpstreamFactory
from tests.support.router import add_provider, make_store

MESSAGES = [{"role": "user", "content": "hi"}]


async def _one_provider(db_path: Path, upstreams: UpstreamFactory):
    fake = await upstreams("alpha")
    await make_store(db_path, lambda c: add_provider(c, "alpha", fake.base_url, models={"m": None}))
    return fake


async def _stream_arrivals(
    http: aiohttp.ClientSession, url: str, user: str, stop_after: int | None = None
) -> list[float]:
    """Post a streamed chat; return the arrival time of each content event."""
    arrivals: list[float] = []
    async with http.post(
        f"{url}/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES, "stream": True, "user": user},
    ) as resp:
        assert resp.status == 200
        async for line in resp.content:
            if line.startswith(b"data: {") and b'"content"' in line:
                arrivals.append(time.perf_counter())
                if stop_after is not None and len(arrivals) >= stop_after:
                    return arrivals
    return arrivals


async def test_first_chunk_arrives_before_upstream_finished(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    fake = await _one_provider(db_path, upstreams)
    fake.behaviour.chunks = 5
    fake.behaviour.interval = 0.2
    router = await router_factory()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{router.url}/v1/chat/completions",
            json={"model": "m", "messages": MESSAGES, "stream": True, "user": "u1"},
        ) as resp,
    ):
        first = await resp.content.readline()
        assert first.startswith(b"data: ")
        assert json.loads(first[6:])["choices"][0]["delta"]["content"] == "Hello0 "
        sent_so_far = len(fake.chunk_times["u1"])
        assert sent_so_far < 5, sent_so_far  # not buffered until the upstream finished
        rest = await resp.read()
    assert rest.endswith(b"data: [DONE]\n\n")
    assert fake.completed_streams == 1


async def test_fifty_concurrent_streams_keep_the_upstream_pacing(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    fake = await _one_provider(db_path, upstreams)
    fake.behaviour.chunks = 6
    fake.behaviour.interval = 0.2
    router = await router_factory()
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as http:
        results = await asyncio.gather(
            *(_stream_arrivals(http, router.url, f"c{i}") for i in range(50))
        )
    deviations = []
    for i, arrivals in enumerate(results):
        sent = fake.chunk_times[f"c{i}"]
        assert len(arrivals) == len(sent) == 6
        client_gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
        upstream_gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
        deviations += [abs(c - u) for c, u in zip(client_gaps, upstream_gaps, strict=True)]
    # Buffering would show as gaps of ~0 (chunks arriving together) or of several intervals,
    # i.e. deviations near 0.2 s. The tolerance is for this loaded test process itself (it runs
    # the fake upstream and the 50 clients on one loop).
    deviations.sort()
    assert statistics.median(deviations) < 0.04, deviations
    assert deviations[int(len(deviations) * 0.9)] < 0.1, deviations


async def test_client_disconnect_closes_the_upstream_request(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    fake = await _one_provider(db_path, upstreams)
    fake.behaviour.chunks = 100
    fake.behaviour.interval = 0.05
    router = await router_factory()
    async with aiohttp.ClientSession() as http:
        arrivals = await _stream_arrivals(http, router.url, "leaver", stop_after=2)
        assert len(arrivals) == 2
    # Leaving the ``async with`` closed the client connection; the upstream must notice.
    async with asyncio.timeout(3):
        await fake.disconnected.wait()
    assert fake.completed_streams == 0
    assert len(fake.chunk_times["leaver"]) < 100


async def test_sigterm_ends_in_flight_streams_and_exits_zero(
    db_path: Path, upstreams: UpstreamFactory, router_factory: RouterFactory
) -> None:
    fake = await _one_provider(db_path, upstreams)
    fake.behaviour.chunks = 200
    fake.behaviour.interval = 0.05
    router = await router_factory({"ROUTER_SHUTDOWN_TIMEOUT": "0.5"})
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{router.url}/v1/chat/completions",
            json={"model": "m", "messages": MESSAGES, "stream": True},
        ) as resp,
    ):
        assert (await resp.content.readline()).startswith(b"data: {")
        assert router.proc is not None
        router.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(5):
            assert await router.proc.wait() == 0
        try:
            rest = await resp.read()
        except aiohttp.ClientPayloadError:
            rest = b""  # the stream was cut at shutdown: also an end
        assert rest.count(b'"content"') < 199
    assert router.logs("server_stopped")
