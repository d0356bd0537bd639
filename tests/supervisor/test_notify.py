"""The children's readiness sender: systemd's NOTIFY_SOCKET protocol, path and abstract sockets."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from qwenstack_core.notify import notify_ready


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
