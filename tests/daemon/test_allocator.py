"""The daemon runs on glibc's malloc (it re-executes itself once), unless told otherwise."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DaemonFactory


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def cmdline_of(pid: int) -> list[str]:
    return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]


async def test_the_daemon_re_executes_itself_on_the_system_allocator(
    daemon_factory: DaemonFactory,
) -> None:
    daemon = await daemon_factory()
    # Same pid as spawned (exec keeps it: systemd and the pid file see one process), same
    # command line, and the environment the interpreter started with names the allocator.
    assert environ_of(daemon.pid).get("PYTHONMALLOC") == "malloc"
    assert cmdline_of(daemon.pid)[1:] == ["-m", "apiserver"]


async def test_a_users_allocator_choice_is_kept(daemon_factory: DaemonFactory) -> None:
    daemon = await daemon_factory({"PYTHONMALLOC": "pymalloc"})
    assert environ_of(daemon.pid).get("PYTHONMALLOC") == "pymalloc"
