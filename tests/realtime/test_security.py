"""Socket.IO connects obey API_TOKEN and the CORS origin policy, over both transports."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import DaemonFactory
from tests.realtime.clients import ConnectRefused
from tests.realtime.conftest import CLIENT_MATRIX, KINDS, TRANSPORTS, Connect
from tests.realtime.contract import check_event

TOKEN = "s3cr3t-api-token-0123"
EVIL = "http://evil.example"


@pytest.mark.parametrize(("kind", "transport"), CLIENT_MATRIX)
async def test_api_token_required(
    daemon_factory: DaemonFactory, connect: Connect, kind: str, transport: str
) -> None:
    daemon = await daemon_factory(env={"API_TOKEN": TOKEN})
    with pytest.raises(ConnectRefused) as refused:
        await connect(daemon, kind, transport)
    assert "API token" in str(refused.value)  # connect_error carries the server's reason
    with pytest.raises(ConnectRefused):
        await connect(daemon, kind, transport, auth={"token": "wrong-token-123"})

    client = await connect(daemon, kind, transport, greeting=False, auth={"token": TOKEN})
    check_event("proxy:status", await client.expect("proxy:status"))
    client = await connect(daemon, kind, transport, headers={"Authorization": f"Bearer {TOKEN}"})
    assert client.pending() == []


@pytest.mark.parametrize("kind", KINDS)
async def test_origin_policy(daemon_factory: DaemonFactory, connect: Connect, kind: str) -> None:
    daemon = await daemon_factory()  # default policy: loopback and browser extensions
    for transport in TRANSPORTS:
        with pytest.raises(ConnectRefused):
            await connect(daemon, kind, transport, headers={"Origin": EVIL})
        for origin in ("http://localhost:5173", "chrome-extension://abcdefgh", daemon.url):
            await connect(daemon, kind, transport, headers={"Origin": origin})


async def test_cors_origin_setting_and_headers(
    daemon_factory: DaemonFactory, connect: Connect, http: aiohttp.ClientSession
) -> None:
    daemon = await daemon_factory(env={"CORS_ORIGIN": "https://dash.example"})
    for transport in TRANSPORTS:
        await connect(daemon, "python", transport, headers={"Origin": "https://dash.example"})
        with pytest.raises(ConnectRefused):
            await connect(daemon, "python", transport, headers={"Origin": "http://localhost:1"})

    handshake = f"{daemon.url}/socket.io/?EIO=4&transport=polling"
    async with http.get(handshake, headers={"Origin": "https://dash.example"}) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == "https://dash.example"
    async with http.get(handshake, headers={"Origin": EVIL}) as resp:
        # The REST contract's refusal (not Engine.IO's bare JSON string).
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "origin_not_allowed"
        assert "Access-Control-Allow-Origin" not in resp.headers
    # A foreign Host (DNS rebinding) is refused before Engine.IO sees the request.
    async with http.get(handshake, headers={"Host": "attacker.example"}) as resp:
        assert resp.status == 403
