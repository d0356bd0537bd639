"""``apiserver run`` (the default command): serve until SIGTERM or SIGINT, then shut down."""

from __future__ import annotations

import asyncio
import gc
import os
import sys

from aiohttp import web

from apiserver import __version__, keys
from apiserver.app import create_app
from apiserver.config import Settings
from apiserver.http_server import JsonErrorAppRunner
from apiserver.instance import DatabaseInUse, exclusive_database
from apiserver.systemd_notify import ServiceNotifier, child_summary
from qwenstack_core.logsetup import get_logger
from qwenstack_core.serving import bound_port, stop_on_signals

SHUTDOWN_TIMEOUT_S = 5.0
SWITCH_INTERVAL_S = 0.0005
# Young-generation threshold of the cyclic collector (CPython's default: 700). Requests in
# flight make the number of live objects swing by more than 700, and every swing ran a young
# collection that found no garbage (measured: about 9 us of CPU per create+delete pair, 5% of
# it). Garbage cycles still get collected, once 20 000 more objects are alive than at the
# last collection (a few MB at most), and after clients leave (realtime/heap.py).
GC_YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Put the objects built so far out of the collector's reach; collect young objects rarely.

    Everything built before serving (modules, schemas, routes) lives as long as the process:
    out of the collector's reach, a full collection scans only what requests made since,
    instead of pausing every request for the whole heap (tens of ms).
    """
    gc.freeze()
    _young, *older = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *older)


def run(settings: Settings) -> int:
    """Run the daemon to the end; return the exit code (1 when it could not start)."""
    try:
        asyncio.run(serve(settings))
    except (OSError, DatabaseInUse) as exc:
        get_logger("apiserver").error("server_failed", error=str(exc))
        return 1
    except Exception:  # e.g. a database of a newer schema: one structured line, not a bare trace
        get_logger("apiserver").exception("server_failed")
        return 1
    return 0


async def serve(settings: Settings) -> None:
    """Run the daemon until SIGTERM or SIGINT, then shut down cleanly."""
    log = get_logger("apiserver")
    # Worker threads (the store, process-tree scans) hold the GIL for up to the switch
    # interval before the event loop gets it back: 5 ms by default, which would delay an event
    # (a child's crash) by as much. 0.5 ms keeps the loop's latency below the figures it serves.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # Installed first: a SIGTERM while the children are being restored still shuts down cleanly.
    stop = stop_on_signals()
    with exclusive_database(settings.database_path):
        app = create_app(settings)
        # This process spawns nothing but the children, so it may adopt and reap whatever
        # leaves their trees (before the first spawn: restore runs in runner.setup()).
        app[keys.PROXY].become_subreaper()
        notifier = ServiceNotifier.from_settings(settings.notify_socket, settings.watchdog_interval)
        # systemd's status line is no audience of HTTP responses: it never holds events back.
        app[keys.EVENTS].add_sink(
            notifier.on_event, now=notifier.on_event_now, audience=lambda: False
        )
        runner = JsonErrorAppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, settings.api_host, settings.api_port, reuse_address=True)
        try:
            await site.start()
            port = bound_port(runner.addresses) or settings.api_port
            log.info(
                "server_started",
                host=settings.api_host,
                port=port,
                url=f"http://{settings.api_host}:{port}",
                pid=os.getpid(),
                version=__version__,
            )
            # The store is open, the server listens and the desired child state is being
            # restored (cleanup_ctx ran in setup): now systemd may call the service started.
            notifier.ready(child_summary(app[keys.STATUS].children()))
            settle_heap()
            await stop.wait()
            log.info("server_stopping")
        finally:
            await notifier.stopping()
            await runner.cleanup()
            log.info("server_stopped")
