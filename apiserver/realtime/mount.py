"""Mount live events: build the Socket.IO server and hub, attach them to the application.

``create_hub`` builds the Socket.IO server (fast or supported delivery, see ``hub``) and
subscribes the hub to the publisher; ``setup`` mounts it, the test page and the browser bundle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from apiserver.config import RealtimeSettings
from apiserver.realtime.compat import fast_path_problems
from apiserver.realtime.hub import Hub
from apiserver.realtime.namespace import EventsNamespace
from apiserver.realtime.publisher import EventPublisher
from apiserver.realtime.server import MAX_CLIENT_MESSAGE, SocketServer, library_logger
from apiserver.realtime.transport import Limits
from apiserver.security import AccessPolicy, same_origin
from qwenstack_core.logsetup import get_logger

if TYPE_CHECKING:  # only a type here; importing it would be circular
    from apiserver.services.status import StatusService

log = get_logger("apiserver.realtime")

# The package's static files: the test page, the dashboard and the Socket.IO browser bundle.
STATIC_DIR = Path(__file__).parent.parent / "static"


def cors_policy(policy: AccessPolicy) -> Any:
    """Return Engine.IO's origin check: the daemon's CORS policy, plus its own origin."""

    def allowed(origin: str | None, environ: Mapping[str, Any]) -> bool:
        if not origin:
            return False
        return same_origin(origin, environ.get("HTTP_HOST")) or policy.origin_allowed(origin)

    return allowed


def _server(options: RealtimeSettings, policy: AccessPolicy, *, fast: bool) -> SocketServer:
    return SocketServer(
        fast=fast,
        limits=Limits(client_bytes=options.client_backlog, total_bytes=options.total_backlog),
        async_mode="aiohttp",
        transports=["websocket", "polling"],
        cors_allowed_origins=cors_policy(policy),
        logger=library_logger("socketio"),
        engineio_logger=library_logger("engineio"),
        ping_interval=options.ping_interval,
        ping_timeout=options.ping_timeout,
        max_http_buffer_size=MAX_CLIENT_MESSAGE,
        # Polling responses above 1 KiB are gzip/deflate-compressed when the client accepts it.
        http_compression=True,
        compression_threshold=1024,
    )


def create_hub(
    events: EventPublisher,
    status: StatusService,
    policy: AccessPolicy,
    options: RealtimeSettings | None = None,
) -> Hub:
    """Create the Socket.IO server and its hub, and subscribe the hub to ``events``."""
    options = options or RealtimeSettings()
    sio = _server(options, policy, fast=options.fast_path)
    if options.fast_path:
        problems = fast_path_problems(sio)
        if problems:
            log.warning("socketio_fast_path_unavailable", missing=problems, using="supported")
            sio = _server(options, policy, fast=False)
    hub = Hub(sio, events, status)
    sio.register_namespace(EventsNamespace(hub, policy, sio.engine.input_warnings))
    events.add_sink(hub.deliver, now=hub.deliver_now, audience=hub.has_clients)
    log.debug("socketio_ready", mode="fast" if hub.fast else "supported")
    return hub


async def serve_test_page(_request: web.Request) -> web.FileResponse:
    """Serve the browser test page (connects from the daemon's own origin)."""
    return web.FileResponse(STATIC_DIR / "test-websocket.html")


def static_files(directory: Path) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    """Return the handler of ``/static/{name}``: the files of ``directory``, nothing else.

    aiohttp's ``add_static`` answers a missing file with an empty 404 decided while the
    response is being sent, after every middleware ran; the package's files are fixed, so an
    unknown name is refused up front and gets the JSON 404 of any unknown route.
    """
    files = {path.name: path for path in directory.iterdir() if path.is_file()}

    async def serve(request: web.Request) -> web.FileResponse:
        path = files.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    return serve


def setup(app: web.Application, hub: Hub) -> None:
    """Mount Socket.IO at /socket.io/, the test page and the browser bundle."""
    hub.sio.attach(app, socketio_path="socket.io")
    app.router.add_get("/test-websocket.html", serve_test_page)
    app.router.add_get("/static/{name}", static_files(STATIC_DIR))

    async def shutdown(_app: web.Application) -> None:
        await hub.close()

    app.on_shutdown.append(shutdown)
