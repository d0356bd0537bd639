"""``python -m provider_router``: serve until SIGTERM/SIGINT, then shut down cleanly (exit 0)."""

from __future__ import annotations

import asyncio
import os
import sys

from aiohttp import web

from provider_router.app import create_app
from provider_router.config import ConfigError, RouterSettings
from qwenstack_core import logsetup
from qwenstack_core.notify import notify_ready
from qwenstack_core.serving import bound_port, stop_on_signals
from qwenstack_core.store.schema import SchemaMismatch


async def serve(settings: RouterSettings) -> None:
    """Listen, report readiness, and wait for a stop signal."""
    log = logsetup.get_logger("provider_router")
    stop = stop_on_signals()
    runner = web.AppRunner(
        create_app(settings),
        access_log=None,  # one line per request would cost more than the routing itself
        # A client that goes away cancels its handler, which closes the upstream request.
        handler_cancellation=True,
        shutdown_timeout=settings.shutdown_timeout,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        await site.start()
        port = bound_port(runner.addresses) or settings.port
        notify_ready()
        log.info("server_started", host=settings.host, port=port, pid=os.getpid())
        await stop.wait()
        log.info("server_stopping", reason="signal")
    finally:
        await runner.cleanup()
    log.info("server_stopped")


def main() -> int:
    """Run the router; exit non-zero on bad configuration or an unknown database schema."""
    try:
        settings = RouterSettings.from_env(os.environ)
    except ConfigError as exc:
        logsetup.configure("info", "auto", sys.stderr)
        logsetup.get_logger("provider_router").error("config_invalid", problems=exc.problems)
        return 2
    logsetup.configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except SchemaMismatch as exc:
        logsetup.get_logger("provider_router").error("store_refused", reason=str(exc))
        return 3
    except OSError as exc:
        logsetup.get_logger("provider_router").error(
            "server_failed", error=exc.strerror or type(exc).__name__, port=settings.port
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
