"""The children's readiness sender: systemd's NOTIFY_SOCKET protocol, path and abstract sockets."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from qwenstack_core.notify import notify, notify_ready
from supervisor.readiness import NotifySocket, parse


def _receiver(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5.0)
    return sock


def test_sends_ready_to_a_path_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify.sock")
    with _receiver(path) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert notify_ready() is True
        assert sock.recv(4096) == b"READY=1"


def test_sends_ready_to_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"qwenstack-test-{os.getpid()}-{id(monkeypatch)}"
    with _receiver(b"\0" + name.encode()) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify_ready() is True
        assert sock.recv(4096) == b"READY=1"


def test_is_a_no_op_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify_ready() is False


@pytest.mark.parametrize("value", ["", "relative.sock"])
def test_ignores_a_value_that_is_no_socket_address(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert notify_ready() is False


def test_a_gone_listener_is_not_the_callers_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody.sock"))
    assert notify_ready() is False


async def test_the_supervisor_socket_receives_fields_with_the_senders_pid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    got: asyncio.Queue[tuple[int | None, dict[str, str]]] = asyncio.Queue()
    sock = NotifySocket(f"qwenstack-test/{os.getpid()}", lambda pid, f: got.put_nowait((pid, f)))
    try:
        assert sock.address.startswith("@")
        monkeypatch.setenv("NOTIFY_SOCKET", sock.address)
        assert notify("READY=1\nSTATUS=listening on 3000\njunk") is True
        async with asyncio.timeout(5):
            pid, fields = await got.get()
        assert pid == os.getpid()
        assert fields == {"READY": "1", "STATUS": "listening on 3000"}
    finally:
        sock.close()
    assert notify_ready() is False  # closed with its owner: nobody listens any more


def test_parse_keeps_assignments_only() -> None:
    assert parse(b"READY=1\n=x\nnoequals\nA=b=c\n") == {"READY": "1", "A": "b=c"}
