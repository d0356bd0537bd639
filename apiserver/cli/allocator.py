"""Run the daemon on the C library's allocator, so memory freed by departed clients goes back.

CPython's own small-object allocator (pymalloc) carves objects out of 1 MiB arenas and returns
an arena to the system only once every object in it is freed. A wave of clients (a thousand
dashboards or scripts) fills tens of arenas with per-connection objects; the objects made while
they were connected that live on (new models, the event history kept for ``sync``) end up
scattered over those arenas, and pin them: measured with ``bench/events.py``, 30 of 57 arenas
stayed allocated after the clients left, all but empty (+37 MiB resident). glibc's ``malloc``
works in 4 KiB pages, and ``malloc_trim`` (``apiserver.realtime.heap``) gives every free page back:
the same run ends at +27 MiB once settled and +15 MiB thirty seconds later, with no measurable
change in CPU per request (``bench/rest.py``).

The interpreter chooses its allocator before it runs any Python code, from ``PYTHONMALLOC``. So
``apiserver run`` re-executes itself once with ``PYTHONMALLOC=malloc`` (same pid, same argv),
before importing anything but the standard library (about 20 ms). A ``PYTHONMALLOC`` set by
the user is kept as it is (``PYTHONMALLOC=pymalloc`` keeps CPython's allocator); elsewhere than
on glibc nothing changes, as there is no ``malloc_trim`` to give pages back. The children do not
inherit it: they get an environment of their own (``supervisor.spec``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

ALLOCATOR_ENV = "PYTHONMALLOC"
SYSTEM_ALLOCATOR = "malloc"
# Commands that run the daemon (none: ``run`` is the default).
DAEMON_COMMANDS = ("run",)


def runs_daemon(args: Sequence[str]) -> bool:
    """Return True when the command line ``args`` (without the program) runs the daemon."""
    return not args or args[0] in DAEMON_COMMANDS


def on_glibc() -> bool:
    """Return True when the C library is glibc (it has ``malloc_trim``)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):
        return False


def allocator_environment(
    environ: Mapping[str, str], args: Sequence[str], *, glibc: bool
) -> dict[str, str] | None:
    """Return the environment to re-execute the daemon with, or None to go on as we are."""
    if ALLOCATOR_ENV in environ or not glibc or not runs_daemon(args):
        return None
    return {**environ, ALLOCATOR_ENV: SYSTEM_ALLOCATOR}


def use_system_allocator() -> None:
    """Re-execute this process on glibc's malloc when it runs the daemon (see the module doc).

    Returns only when no re-execution is needed, or when it failed (then pymalloc it is).
    """
    env = allocator_environment(os.environ, sys.argv[1:], glibc=on_glibc())
    if env is None or not sys.orig_argv:
        return
    try:
        os.execve(sys.executable, sys.orig_argv, env)
    except OSError:
        return
