"""``python -m qwen_proxy``: serve until SIGTERM/SIGINT, then shut down cleanly and exit 0."""

from __future__ import annotations

import asyncio
import os
import sys

from aiohttp import web

from qwen_proxy.app import create_app
from qwen_proxy.config import ConfigError, Settings
from qwenstack_core.logsetup import configure, get_logger
from qwenstack_core.notify import notify_ready
from qwenstack_core.serving import bound_port, stop_on_signals

log = get_logger("qwen_proxy")


async def serve(settings: Settings) -> None:
    """Listen, tell the supervisor we are ready, and run until a stop signal."""
    stop = stop_on_signals()
    runner = web.AppRunner(
        create_app(settings),
        access_log=None,
        # A client that hangs up cancels its handler, and with it the upstream call.
        handler_cancellation=True,
        shutdown_timeout=settings.shutdown_timeout,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        await site.start()
        port = bound_port(runner.addresses) or settings.port
        log.info(
            "server_started",
            host=settings.host,
            port=port,
            url=f"http://{settings.host}:{port}",
            upstream=str(settings.base_url),
            pid=os.getpid(),
        )
        notify_ready()
        await stop.wait()
        log.info("server_stopping")
    finally:
        await runner.cleanup()
        log.info("server_stopped")


def main() -> int:
    """Run qwen-proxy; return the exit code."""
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        sys.stderr.write(
            "qwen-proxy: invalid configuration:\n  " + "\n  ".join(exc.problems) + "\n"
        )
        return 2
    configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except Exception as exc:
        log.error("server_failed", error=str(exc), error_class=type(exc).__name__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
