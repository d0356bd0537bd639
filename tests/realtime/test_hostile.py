"""Hostile or clumsy clients: refused or ignored, one warning per client and kind, no tracebacks.

Reserved event names, unknown names, junk arguments, unparsable and binary packets, oversize
messages and malformed ``auth`` (a lone surrogate among them) each get a clear refusal or are
ignored; the client that sent them keeps working, and the log stays quiet.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import aiohttp
import pytest

from tests.realtime.clients import ConnectRefused, PyClient
from tests.realtime.conftest import Connect
from tests.support.capture import record
from tests.support.daemon import Api, Daemon

TOKEN = "s3cr3t-socket-token"


def assert_quiet_log(daemon: Daemon) -> Counter[tuple[str, str]]:
    """Assert no tracebacks or errors and at most one warning per client and kind."""
    text = "\n".join(daemon.lines)
    assert "Traceback" not in text
    assert "exception was never retrieved" not in text
    assert [e for e in daemon.logs() if e.get("level") in ("error", "critical")] == []
    refused = Counter((e["sid"], e["kind"]) for e in daemon.logs("socketio_input_refused"))
    assert all(count == 1 for count in refused.values()), refused
    return refused


async def still_works(client: PyClient, api: Api) -> None:
    """The client still gets events and answers after what it sent."""
    status, _ = await api.put("/api/models/qwen3-max", {"name": "Still here"})
    assert status == 200
    data = await client.expect("models:updated")
    answer = await client.call("sync", {"sinceSeq": data["seq"], "instance": data["instance"]})
    assert answer["snapshot"] is False and answer["events"] == []
    assert client.disconnects == []


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_reserved_event_names_are_refused(
    daemon: Daemon, api: Api, connect: Connect, transport: str
) -> None:
    client = await connect(daemon, "python", transport)
    assert isinstance(client, PyClient)
    for name in ("disconnect", "connect", "connect_error", "disconnecting"):
        for _ in range(20):
            await client.sio.emit(name, {"junk": True})
        answer = await client.call(name, {"junk": True})
        assert answer["error"]["code"] == "reserved_event", answer
    await still_works(client, api)
    refused = assert_quiet_log(daemon)
    assert [kind for _, kind in refused] == ["reserved_event"]


async def test_unknown_events_and_junk_arguments_are_ignored(
    daemon: Daemon, api: Api, connect: Connect
) -> None:
    client = await connect(daemon, "python", "websocket")
    assert isinstance(client, PyClient)
    for _ in range(50):
        await client.sio.emit("no-such-event", {"x": 1})
        await client.sio.emit("sync", (1, 2, 3))  # three arguments
        await client.sio.emit("subscribe", "not a list of names")
        await client.sio.emit("sync", ["not", "an", "object"])
    assert (await client.call("no-such-event", 1))["error"]["code"] == "unknown_event"
    assert (await client.call("sync", (1, 2)))["error"]["code"] == "junk_arguments"
    assert (await client.call("subscribe", 42))["error"]["code"] == "invalid_events"
    await still_works(client, api)
    kinds = {kind for _, kind in assert_quiet_log(daemon)}
    assert kinds == {"unknown_event", "junk_arguments"}


async def test_unparsable_and_binary_packets_are_ignored(
    daemon: Daemon, api: Api, connect: Connect
) -> None:
    client = await connect(daemon, "python", "websocket")
    assert isinstance(client, PyClient)
    junk: list[Any] = ['2["sync"', "2[42,{}]", "2[]", '2{"a":1}', "9", "2" + "[" * 5000]
    for _ in range(100):
        for message in junk:
            await client.sio.eio.send(message)
        await client.sio.eio.send(b"\x00\x01binary")
        await client.sio.eio.send('51-["sync",{"_placeholder":true,"num":0}]')
    await still_works(client, api)
    kinds = {kind for _, kind in assert_quiet_log(daemon)}
    assert kinds <= {"malformed_packet", "malformed_event", "binary_message", "unhandled_packet"}
    assert "malformed_event" in kinds and "binary_message" in kinds


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_oversize_messages_are_refused(
    daemon: Daemon, api: Api, connect: Connect, transport: str
) -> None:
    big = await connect(daemon, "python", transport)
    other = await connect(daemon, "node", "websocket")
    assert isinstance(big, PyClient)
    for _ in range(3):
        await big.sio.emit("sync", {"sinceSeq": 0, "pad": "x" * 200_000})
    # The daemon goes on serving everyone else.
    status, _ = await api.put("/api/models/qwen3-max", {"name": "After the big one"})
    assert status == 200
    await other.expect("models:updated")
    refused = assert_quiet_log(daemon)
    assert {kind for _, kind in refused} == {"oversize"}  # one warning line, on both paths


async def raw_connect(daemon: Daemon, http: aiohttp.ClientSession, connect_packet: str) -> str:
    """Open an Engine.IO polling session, send ``connect_packet``; return the server's answer."""
    base = f"{daemon.url}/socket.io/?EIO=4&transport=polling"
    async with http.get(base) as resp:
        sid = json.loads((await resp.text())[1:])["sid"]
    async with http.post(f"{base}&sid={sid}", data=connect_packet.encode()) as resp:
        assert resp.status == 200
    async with http.get(f"{base}&sid={sid}") as resp:
        answer = await resp.text()
    record("socket.io raw answer", answer)
    return answer


@pytest.mark.parametrize("with_token", [False, True], ids=["no-api-token", "api-token"])
async def test_malformed_auth_is_refused_with_an_answer(
    daemon_factory: Any, http: aiohttp.ClientSession, with_token: bool
) -> None:
    daemon = await daemon_factory({"API_TOKEN": TOKEN} if with_token else {})
    for packet in ('40{"token":"\\udcff"}', '40"just a string"', "40[1,2]", '40{"token":42}'):
        answer = await raw_connect(daemon, http, packet)
        assert answer.startswith("44"), (packet, answer)
        assert "auth" in json.loads(answer[2:])["message"].lower()

    client = PyClient(daemon.url, "websocket")  # the surrogate from a real client
    try:
        with pytest.raises(ConnectRefused, match="auth"):
            await client.connect(auth={"token": "\udcff"})
    finally:
        await client.close()
    if with_token:  # the right token still works
        good = PyClient(daemon.url, "websocket")
        try:
            await good.connect(auth={"token": TOKEN})
            await good.expect("proxy:status")
        finally:
            await good.close()
    assert_quiet_log(daemon)
