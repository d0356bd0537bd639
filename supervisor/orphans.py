"""Children of an earlier daemon run: recognise them, and stop them with their whole tree."""

from __future__ import annotations

import asyncio
import os
import signal

import psutil
import structlog

from supervisor import process, tree
from supervisor.run import KILL_GRACE

_log = structlog.stdlib.get_logger(__name__)


async def stop_orphan(name: str, pid: int, create_time: float, stop_timeout: float) -> bool:
    """Stop a recorded orphan and its tree (SIGTERM, then SIGKILL); False if it is not ours.

    ``pid`` is ours only if it still runs with the recorded ``create_time`` (a recycled pid has
    another). Its descendants are found from its tree and from its run marker, so the ones that
    left its group are stopped too.
    """
    ps = process.same_process(pid, create_time)
    if ps is None:
        _log.info("child_orphan_not_ours", child=name, pid=pid)
        return False
    try:
        own_group = os.getpgid(pid) == pid
        found = {p.pid: p for p in ps.children(recursive=True)}
        marker = ps.environ().get(tree.MARKER_ENV)
    except (ProcessLookupError, psutil.Error):
        return False
    if marker is not None:
        found.update((p.pid, p) for p in tree.marked(marker))
    found.pop(pid, None)
    everything = [ps, *found.values()]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + stop_timeout
    process.signal_tree(pid, own_group, found.values(), signal.SIGTERM, include_tree=True)
    ended_by = "SIGTERM"
    if not await process.wait_tree_gone(everything, deadline):
        ended_by = "SIGKILL"
        process.signal_tree(pid, own_group, found.values(), signal.SIGKILL, include_tree=True)
        if not await process.wait_tree_gone(everything, loop.time() + KILL_GRACE):
            pids = sorted(process.alive_pids(everything))
            _log.warning("child_tree_survived", child=name, pids=pids)
    _log.info("child_orphan_stopped", child=name, pid=pid, signal=ended_by)
    return True
