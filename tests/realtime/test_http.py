"""The HTTP side of live events: /api/events/stats, polling compression, the test page files."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib

import aiohttp

from tests.realtime.conftest import Connect
from tests.support.capture import record
from tests.support.daemon import Api, Daemon


async def test_events_stats(daemon: Daemon, api: Api, connect: Connect) -> None:
    status, body = await api.get("/api/events/stats")
    assert status == 200
    assert body["clients"] == {"total": 0, "byTransport": {"websocket": 0, "polling": 0}}
    assert body["lastSeq"] == 0 and isinstance(body["instance"], str)

    ws = await connect(daemon, "python", "websocket")
    await connect(daemon, "node", "polling")
    assert (await api.post("/api/providers/lm-studio-default/disable"))[0] == 200
    assert (await api.post("/api/providers/lm-studio-default/enable"))[0] == 200
    assert (await api.put("/api/models/qwen3-max", {"name": "Q"}))[0] == 200
    for name in ("providers:updated", "providers:updated", "models:updated"):
        data = await ws.expect(name)
    status, body = await api.get("/api/events/stats")
    assert body["clients"] == {"total": 2, "byTransport": {"websocket": 1, "polling": 1}}
    assert body["events"] == {"models:updated": 1, "providers:updated": 2}
    assert body["lastSeq"] == data["seq"] == 3
    assert body["instance"] == data["instance"]

    await ws.close()
    # The server learns of the disconnect asynchronously: poll against a deadline.
    async with asyncio.timeout(5):
        while True:
            _, body = await api.get("/api/events/stats")
            if body["clients"]["total"] == 1:
                break
            await asyncio.sleep(0.01)


async def polling_session(
    http: aiohttp.ClientSession, url: str, accept_encoding: str
) -> aiohttp.ClientResponse:
    """Open an Engine.IO polling session, connect to "/", and return the next poll's response."""
    base = f"{url}/socket.io/?EIO=4&transport=polling"
    async with http.get(base) as resp:
        assert resp.status == 200
        opened = await resp.text()
    sid = json.loads(opened[1:])["sid"]
    async with http.post(f"{base}&sid={sid}", data=b"40") as resp:
        assert resp.status == 200
    # Poll until the proxy:status greeting (after the CONNECT answer) comes back.
    for _ in range(5):
        resp = await http.get(f"{base}&sid={sid}", headers={"Accept-Encoding": accept_encoding})
        body = await resp.read()
        if len(body) > 200:  # not just the small CONNECT answer
            break
    async with http.post(f"{base}&sid={sid}", data=b"1"):  # close the Engine.IO session
        pass
    return resp


async def test_large_polling_payloads_are_compressed(daemon: Daemon, api: Api) -> None:
    for i in range(10):  # make the proxy:status greeting large
        body = {"id": f"big-{i}", "name": f"Provider {i}", "type": "lm-studio",
                "description": "x" * 200}  # fmt: skip
        assert (await api.post("/api/providers", body))[0] == 201

    async with aiohttp.ClientSession(auto_decompress=False) as http:
        resp = await polling_session(http, daemon.url, "gzip")
        assert resp.headers["Content-Encoding"] == "gzip"
        raw = await resp.read()
        text = gzip.decompress(raw).decode()
        record("polling gzip", text)
        assert '"proxy:status"' in text and "big-9" in text
        assert len(raw) < len(text) / 2

        resp = await polling_session(http, daemon.url, "deflate")
        assert resp.headers["Content-Encoding"] == "deflate"
        assert '"proxy:status"' in zlib.decompress(await resp.read()).decode()

        resp = await polling_session(http, daemon.url, "identity")
        assert "Content-Encoding" not in resp.headers
        text = (await resp.read()).decode()
        record("polling plain", text)
        assert '"proxy:status"' in text

        # Small payloads stay uncompressed even when the client accepts gzip.
        async with http.get(
            f"{daemon.url}/socket.io/?EIO=4&transport=polling",
            headers={"Accept-Encoding": "gzip"},
        ) as small:
            assert "Content-Encoding" not in small.headers


async def test_test_page_and_bundle_are_served(daemon: Daemon, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{daemon.url}/test-websocket.html") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        page = await resp.text()
    assert '<script src="/static/socket.io.min.js"></script>' in page
    assert "cdn." not in page
    async with http.get(f"{daemon.url}/static/socket.io.min.js") as resp:
        assert resp.status == 200
        bundle = await resp.text()
    assert bundle.startswith("/*!\n * Socket.IO v4.")
