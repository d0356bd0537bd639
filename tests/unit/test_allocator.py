"""The daemon's choice of allocator (glibc malloc through PYTHONMALLOC, see cli.allocator)."""

from __future__ import annotations

from apiserver.cli.allocator import allocator_environment, on_glibc, runs_daemon
from apiserver.config import Settings


def test_only_the_daemon_command_moves_to_the_system_allocator() -> None:
    assert runs_daemon([]) and runs_daemon(["run"])
    assert not runs_daemon(["watch"]) and not runs_daemon(["--version"])
    assert not runs_daemon(["openapi"])


def test_the_environment_of_the_re_execution() -> None:
    env = allocator_environment({"PATH": "/bin"}, [], glibc=True)
    assert env == {"PATH": "/bin", "PYTHONMALLOC": "malloc"}
    # The user's own choice is kept, and so is ours after the re-execution (no loop).
    assert allocator_environment({"PYTHONMALLOC": "pymalloc"}, [], glibc=True) is None
    assert allocator_environment({"PYTHONMALLOC": "malloc"}, ["run"], glibc=True) is None
    # Without glibc there is no malloc_trim to give pages back: pymalloc stays.
    assert allocator_environment({}, [], glibc=False) is None
    assert allocator_environment({}, ["watch"], glibc=True) is None


def test_this_machine_is_glibc() -> None:
    assert on_glibc()  # the supported platform; the daemon test below relies on it


def test_the_children_do_not_inherit_the_allocator_choice() -> None:
    settings = Settings.from_env({"PYTHONMALLOC": "malloc", "PATH": "/bin"})
    assert "PYTHONMALLOC" not in dict(settings.child_env)
