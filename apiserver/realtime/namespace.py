"""The Socket.IO handlers of the default namespace (no per-client state here: see ``Hub``)."""

from __future__ import annotations

from typing import Any

import socketio

from apiserver.realtime.hub import KNOWN_EVENTS, NAMESPACE, Hub
from apiserver.realtime.server import InputWarnings
from apiserver.security import AccessPolicy, bearer
from qwenstack_core.logsetup import get_logger

log = get_logger("apiserver.realtime")

TOKEN_REFUSAL = (
    "Missing or invalid API token: connect with auth: {token: '<API_TOKEN>'} "
    "or an 'Authorization: Bearer <API_TOKEN>' header"
)
AUTH_REFUSAL = "Malformed auth: send an object such as {token: '<API_TOKEN>'}"


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class EventsNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """Connect checks, ``sync`` and (un)subscriptions; a handler never raises at a client."""

    def __init__(self, hub: Hub, policy: AccessPolicy, warnings: InputWarnings) -> None:
        super().__init__(NAMESPACE)
        self._hub = hub
        self._policy = policy
        self._warnings = warnings

    async def trigger_event(self, event: str, *args: Any) -> Any:
        try:
            return await super().trigger_event(event, *args)
        except socketio.exceptions.ConnectionRefusedError:
            raise
        except Exception as exc:
            sid = args[0] if args and isinstance(args[0], str) else "?"
            self._warnings.warn(sid, "handler_failed", event_name=event, error=type(exc).__name__)
            if event == "connect":  # answered, never left hanging
                raise socketio.exceptions.ConnectionRefusedError(
                    "Connection refused: the server could not check it"
                ) from None
            return _error("invalid_request", "The request could not be handled")

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = self._token(sid, environ, auth)
        if not self._policy.token_valid(token):
            log.info("socketio_connect_refused", sid=sid, why="missing or invalid API token")
            raise socketio.exceptions.ConnectionRefusedError(
                TOKEN_REFUSAL, {"code": "unauthorized"}
            )
        client = self._hub.add(sid)
        log.info("socketio_client_connected", sid=sid, transport=self._hub.transport(client))

    def _token(self, sid: str, environ: dict[str, Any], auth: Any) -> str | None:
        """Return the presented token, or refuse a connect whose auth cannot be a token."""
        if auth is not None and not isinstance(auth, dict):
            self._warnings.warn(sid, "malformed_auth")
            raise socketio.exceptions.ConnectionRefusedError(AUTH_REFUSAL, {"code": "bad_auth"})
        token = auth.get("token") if auth else None
        if token is None or token == "":
            header = environ.get("HTTP_AUTHORIZATION")
            token = bearer(header) if isinstance(header, str) else None
        if token is None:
            return None
        if not isinstance(token, str) or not token.isascii() or len(token) > 1024:
            # e.g. a lone surrogate, which cannot even be encoded for the comparison
            self._warnings.warn(sid, "malformed_auth")
            raise socketio.exceptions.ConnectionRefusedError(AUTH_REFUSAL, {"code": "bad_auth"})
        return token

    async def on_disconnect(self, sid: str, reason: str | None = None) -> None:
        self._hub.remove(sid)
        log.info("socketio_client_disconnected", sid=sid, why=reason)

    async def on_sync(self, sid: str, data: Any = None) -> dict[str, Any]:
        client = self._hub.get(sid)
        if client is None:
            return _error("not_connected", "Connect before syncing")
        if not isinstance(data, dict):
            data = {}
        since = data.get("sinceSeq")
        instance = data.get("instance")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int)):
            return _error("invalid_sync", "sinceSeq must be an integer")
        if instance is not None and not isinstance(instance, str):
            return _error("invalid_sync", "instance must be a string")
        try:
            return await self._hub.sync(client, since, instance)
        except Exception:
            log.exception("socketio_sync_failed", sid=sid)
            return _error("internal_error", "Sync failed; reconnect to get a fresh snapshot")

    async def on_subscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self._change_subscriptions(sid, data, add=True)

    async def on_unsubscribe(self, sid: str, data: Any = None) -> dict[str, Any]:
        return await self._change_subscriptions(sid, data, add=False)

    async def _change_subscriptions(self, sid: str, data: Any, *, add: bool) -> dict[str, Any]:
        client = self._hub.get(sid)
        if client is None:
            return _error("not_connected", "Connect before subscribing")
        names = data.get("events") if isinstance(data, dict) else data
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return {
                **_error("invalid_events", 'Send {"events": ["<event name>", ...]}'),
                "events": client.events(),
            }
        unknown = sorted(set(names) - KNOWN_EVENTS)
        if unknown:
            shown = ", ".join(name[:40] for name in unknown[:5])
            return {
                **_error(
                    "unknown_event",
                    f"Unknown events: {shown}; known: {', '.join(sorted(KNOWN_EVENTS))}",
                ),
                "events": client.events(),
            }
        return {"events": await self._hub.subscribe(client, names, add=add)}
