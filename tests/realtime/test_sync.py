"""Reconnection sync, and subscriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import DaemonFactory
from tests.realtime.clients import EventClient
from tests.realtime.conftest import CLIENT_MATRIX, Connect
from tests.realtime.contract import check_event
from tests.support.daemon import Api, Daemon
from tests.support.processes import free_port

State = dict[str, Any]
CREDENTIAL_FIELDS = ("hasCredentials", "isValid", "isExpired", "expiresAt")


def apply(state: State, name: str, data: dict[str, Any]) -> None:
    """Fold one event (or snapshot entry) into a client-side view of the daemon's state."""
    if name == "proxy:status":
        state["providers"] = data["providers"]["items"]
        state["models"] = data["models"]["items"]
        credentials = data["credentials"]
        state["credentials"] = {
            "hasCredentials": credentials["hasCredentials"],
            "isValid": credentials["valid"],
            "isExpired": credentials["isExpired"],
            "expiresAt": credentials["expiresAt"],
        }
    elif name == "providers:updated":
        state["providers"] = data["items"]
    elif name == "models:updated":
        state["models"] = data["items"]
    elif name == "credentials:updated":
        state["credentials"] = {k: data[k] for k in CREDENTIAL_FIELDS}
    elif name == "settings:updated":
        state["settings"] = data["settings"]
    state["seq"] = data["seq"]


def apply_sync(state: State, ack: dict[str, Any], instance: str) -> None:
    """Apply a ``sync`` answer: the snapshot (if any), then the events, in order."""
    assert ack["instance"] == instance
    for name, data in ack.get("state", {}).items():
        check_event(name, data, snapshot=True)
        apply(state, name, data)
    seqs = [item["data"]["seq"] for item in ack["events"]]
    assert seqs == sorted(seqs)
    for item in ack["events"]:
        check_event(item["event"], item["data"])
        apply(state, item["event"], item["data"])
    state["seq"] = ack["seq"]


async def make_changes(api: Api, tag: str) -> None:
    """Writes of every topic (credentials, providers, models, settings)."""
    token = {"token": f"s3cr3t-{tag}", "cookies": "s3cr3t=1", "expiresAt": 4102444800}
    for method, path, body in [
        ("POST", "/api/qwen/credentials", token),
        ("POST", "/api/providers", {"id": f"p-{tag}", "name": f"P {tag}", "type": "lm-studio"}),
        ("POST", "/api/models", {"id": f"m-{tag}", "name": f"M {tag}"}),
        ("POST", f"/api/providers/p-{tag}/models", {"model_id": f"m-{tag}"}),
        ("POST", "/api/providers/lm-studio-default/disable", None),
        ("PUT", "/api/models/qwen3-max", {"name": f"Qwen {tag}"}),
        ("DELETE", f"/api/models/m-{tag}", None),
        ("PUT", "/api/settings/logging.logRequests", {"value": True}),
    ]:
        status, body = await api.request(method, path, body)
        assert status in (200, 201), (path, body)


async def follow(client: EventClient, state: State, until_seq: int) -> None:
    while state.get("seq", 0) < until_seq:
        name, data = await client.receive()
        check_event(name, data)
        assert data["seq"] == state["seq"] + 1, "gap or reorder"
        apply(state, name, data)


async def stats_seq(api: Api) -> int:
    status, body = await api.get("/api/events/stats")
    assert status == 200
    return int(body["lastSeq"])


@pytest.mark.parametrize(("kind", "transport"), CLIENT_MATRIX)
async def test_reconnect_and_sync_catches_up(
    daemon: Daemon, api: Api, connect: Connect, kind: str, transport: str
) -> None:
    steady = await connect(daemon, "python", "websocket", greeting=False)
    steady_state: State = {}
    apply(steady_state, "proxy:status", await steady.expect("proxy:status"))

    leaving = await connect(daemon, kind, transport, greeting=False)
    status = await leaving.expect("proxy:status")
    instance = status["instance"]
    state: State = {}
    apply(state, "proxy:status", status)
    await make_changes(api, "a")
    await follow(leaving, state, await stats_seq(api))
    await leaving.close()

    await make_changes(api, "b")  # missed by the client that left
    last = await stats_seq(api)
    await follow(steady, steady_state, last)

    back = await connect(daemon, kind, transport)  # a new connection, as after a reconnect
    ack = await back.call("sync", {"sinceSeq": state["seq"], "instance": instance})
    assert ack["snapshot"] is False
    assert [e["data"]["seq"] for e in ack["events"]] == list(range(state["seq"] + 1, last + 1))
    apply_sync(state, ack, instance)
    assert state == steady_state

    # From another daemon run (or beyond the buffer): a snapshot of every topic instead.
    fresh: State = {}
    ack = await back.call("sync", {"sinceSeq": 3, "instance": "another-run"})
    assert ack["snapshot"] is True
    assert set(ack["state"]) == {
        "proxy:status",
        "providers:updated",
        "models:updated",
        "credentials:updated",
        "settings:updated",
    }
    apply_sync(fresh, ack, instance)
    assert fresh == steady_state

    # Nothing is missed when up to date; live events keep flowing afterwards.
    ack = await back.call("sync", {"sinceSeq": last, "instance": instance})
    assert ack == {"snapshot": False, "instance": instance, "seq": last, "events": []}
    status, _ = await api.post("/api/providers/lm-studio-default/enable")
    assert status == 200
    data = await back.expect("providers:updated")
    assert data["seq"] == last + 1


@pytest.mark.parametrize(("kind", "transport"), CLIENT_MATRIX)
async def test_daemon_restart_looks_like_a_dropped_connection(
    daemon_factory: DaemonFactory,
    http: aiohttp.ClientSession,
    connect: Connect,
    tmp_path: Path,
    kind: str,
    transport: str,
) -> None:
    env = {"API_PORT": str(free_port())}
    first = await daemon_factory(env=env, db_path=tmp_path / "restart.db")
    client = await connect(first, kind, transport, greeting=False, reconnection=True)
    before = await client.expect("proxy:status")
    await first.stop()

    # The clients' own reconnection brings them back to the new daemon run.
    second = await daemon_factory(env=env, db_path=tmp_path / "restart.db")
    after = await client.expect("proxy:status", timeout=10)
    assert after["instance"] != before["instance"]
    ack = await client.call("sync", {"sinceSeq": before["seq"], "instance": before["instance"]})
    assert ack["snapshot"] is True and ack["instance"] == after["instance"]
    status, _ = await Api(http, second.url).post("/api/providers/lm-studio-default/disable")
    assert status == 200
    assert (await client.expect("providers:updated"))["seq"] == after["seq"] + 1


@pytest.mark.parametrize("kind", ["python", "node"])
async def test_subscriptions(daemon: Daemon, api: Api, connect: Connect, kind: str) -> None:
    picky = await connect(daemon, kind, "websocket")
    everything = await connect(daemon, "python", "polling")

    ack = await picky.call("subscribe", {"events": ["models:updated"]})
    assert ack == {"events": ["models:updated"]}
    ack = await picky.call("subscribe", {"events": ["credentials:updated"]})
    assert ack == {"events": ["credentials:updated", "models:updated"]}
    ack = await picky.call("subscribe", {"events": ["nonsense:event"]})
    assert ack["error"]["code"] == "unknown_event"
    assert ack["events"] == ["credentials:updated", "models:updated"]

    assert (await api.post("/api/providers/lm-studio-default/disable"))[0] == 200
    assert (await api.put("/api/models/qwen3-max", {"name": "Renamed"}))[0] == 200
    provider_event = await everything.expect("providers:updated")
    model_event = await everything.expect("models:updated")
    # The subscriber skips the provider event: a gap in seq, by design.
    data = await picky.expect("models:updated")
    assert data["seq"] == model_event["seq"] == provider_event["seq"] + 1

    ack = await picky.call("unsubscribe", {"events": ["models:updated"]})
    assert ack == {"events": ["credentials:updated"]}
    assert (await api.put("/api/models/qwen3-max", {"name": "Again"}))[0] == 200
    creds = {"token": "s3cr3t-sub", "cookies": "s3cr3t=sub", "expiresAt": None}
    assert (await api.post("/api/qwen/credentials", creds))[0] == 200
    data = await picky.expect("credentials:updated")
    assert data["seq"] == model_event["seq"] + 2

    # A client that never subscribed gets every event; unsubscribing starts from all.
    await everything.expect("models:updated")
    await everything.expect("credentials:updated")
    ack = await everything.call("unsubscribe", {"events": ["settings:updated"]})
    assert ack == {
        "events": ["credentials:updated", "models:updated", "providers:updated", "proxy:status"]
    }
