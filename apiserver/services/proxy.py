"""Proxy control: the daemon's side of supervision (commands and events).

The supervisor package runs the children and reports transitions; this service turns them into
``proxy:status`` / ``proxy:log`` events. What must survive a daemon restart (child records,
desired state) is kept by ``services.recovery``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from apiserver.config import Settings
from apiserver.errors import NotFound
from apiserver.realtime.publisher import EventPublisher
from apiserver.services.recovery import DESIRED_KEY, Recovery
from apiserver.services.status import StatusService
from qwenstack_core.logsetup import get_logger
from qwenstack_core.store import Store
from supervisor import ChildSpec, ChildState, ChildStatus, LogLine, StatusEvent, SupervisorManager

log = get_logger("apiserver.proxy")

QWEN_PROXY = "qwen-proxy"
PROVIDER_ROUTER = "provider-router"
# Child name -> its key in ``proxy:status`` (the seed's camelCase names).
STATUS_KEYS = {QWEN_PROXY: "qwenProxy", PROVIDER_ROUTER: "providerRouter"}


def child_specs(settings: Settings) -> list[ChildSpec]:
    """Return the two children in start order (qwen-proxy first: the router forwards to it)."""
    timing = settings.child_timing
    env = {
        **dict(settings.child_env),
        "DATABASE_PATH": str(settings.database_path),
        "LOG_LEVEL": settings.log_level,
        "LOG_FORMAT": "json",  # their lines land in our structured log
        "PYTHONUNBUFFERED": "1",
        "QWEN_PROXY_PORT": str(settings.qwen_proxy_port),
    }
    common: dict[str, Any] = {
        "env": env,
        "start_timeout": timing.start_timeout,
        "stop_timeout": timing.stop_timeout,
        "backoff_base": timing.backoff_base,
        "backoff_cap": timing.backoff_cap,
        "stable_uptime": timing.stable_uptime,
        "crash_limit": timing.crash_limit,
        "liveness_interval": timing.liveness_interval,
    }
    return [
        ChildSpec(
            name=QWEN_PROXY,
            argv=settings.qwen_proxy_command,
            port=settings.qwen_proxy_port,
            **common,
        ),
        ChildSpec(
            name=PROVIDER_ROUTER,
            argv=settings.provider_router_command,
            port=settings.provider_router_port,
            **common,
        ),
    ]


def describe(event: StatusEvent) -> str:
    """Return a one-line human message for a transition."""
    text = f"{event.child}: {event.old} -> {event.new}"
    return f"{text} ({event.reason})" if event.reason else text


class ProxyService:
    """Start, stop and watch the children on the user's behalf."""

    def __init__(
        self,
        manager: SupervisorManager,
        store: Store,
        status: StatusService,
        events: EventPublisher,
        *,
        orphan_policy: str,
    ) -> None:
        self._manager = manager
        self._status = status
        self._events = events
        self._tasks: set[asyncio.Task[Any]] = set()
        self._recovery = Recovery(
            manager, store, tuple(STATUS_KEYS), orphan_policy=orphan_policy, keep=self._keep
        )
        # The latest status of each child, as carried by its last transition: what a
        # transition publishes, without calling back into the supervisor.
        self._latest: dict[str, ChildStatus] = manager.statuses()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._last: tuple[str, asyncio.Task[Any]] | None = None  # last command queued
        self._order = asyncio.Lock()
        status.set_children_status(self.children_status)
        manager.add_listener(self._on_transition)
        manager.add_log_listener(self._on_log)
        manager.add_spawn_listener(self._recovery.on_spawn)
        manager.add_exit_listener(self._recovery.on_exit)

    # -- reading -----------------------------------------------------------------------------

    def children_status(self) -> Mapping[str, Mapping[str, Any]]:
        """Return each child's detail under its ``proxy:status`` key, sampled now (GET)."""
        snapshot = self._manager.snapshot()
        return {key: snapshot[name] for name, key in STATUS_KEYS.items()}

    def router_state(self) -> str:
        """Return the provider-router's supervision state ("running", "stopped", ...)."""
        return str(self._manager.snapshot()[PROVIDER_ROUTER]["state"])

    def _require(self, name: str) -> str:
        """Return ``name`` if it names a child, else raise 404."""
        if name not in STATUS_KEYS:
            raise NotFound(
                f"Unknown child '{name}': expected one of {', '.join(STATUS_KEYS)}",
                code="unknown_child",
            )
        return name

    def logs(self, name: str, lines: int) -> list[dict[str, Any]]:
        """Return the recent output lines of a child."""
        return self._manager.logs(self._require(name), lines)

    async def status(self, message: str | None = None) -> dict[str, Any]:
        """Return the ``proxy:status`` object."""
        return await self._status.status(message)

    # -- commands ----------------------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> dict[str, Any]:
        """Start both children (qwen-proxy first) and report the outcome."""
        return await self._command(
            dict.fromkeys(STATUS_KEYS, True),
            self._manager.start_all,
            wait=wait,
            message="Proxy servers started",
            already="Proxy servers are already running",
        )

    async def stop(self) -> dict[str, Any]:
        """Stop both children (the router first) and report the outcome."""
        return await self._command(
            dict.fromkeys(STATUS_KEYS, False),
            self._manager.stop_all,
            message="Proxy servers stopped",
            already="Proxy servers are already stopped",
        )

    async def restart(self) -> dict[str, Any]:
        """Restart both children."""
        return await self._command(
            dict.fromkeys(STATUS_KEYS, True),
            self._manager.restart_all,
            message="Proxy servers restarted",
        )

    async def start_child(self, name: str) -> dict[str, Any]:
        """Start one child."""
        return await self._command(
            {self._require(name): True},
            lambda: self._manager.start(name),
            message=f"{name} started",
        )

    async def stop_child(self, name: str) -> dict[str, Any]:
        """Stop one child."""
        return await self._command(
            {self._require(name): False},
            lambda: self._manager.stop(name),
            message=f"{name} stopped",
        )

    async def restart_child(self, name: str) -> dict[str, Any]:
        """Restart one child."""
        return await self._command(
            {self._require(name): True},
            lambda: self._manager.restart(name),
            message=f"{name} restarted",
        )

    async def _command(
        self,
        wanted: dict[str, bool],
        operation: Callable[[], Coroutine[Any, Any, Any]],
        *,
        message: str,
        wait: bool = True,
        already: str | None = None,
    ) -> dict[str, Any]:
        """Record the wish and queue the operation, both in call order; answer with the outcome.

        The desired state written last is the one of the operation queued last, so the stored
        wish never contradicts what the supervisor ends up doing. A command equal to the last
        one queued and still running shares it instead of queueing another.
        """
        target = ChildState.RUNNING if all(wanted.values()) else ChildState.STOPPED
        async with self._order:
            await self._recovery.remember(wanted)
            if already is not None and not self._inflight and self._settled(wanted, target):
                return await self._answer(already, wanted, target)
            if self._last is not None and self._last[0] == message and not self._last[1].done():
                task = self._last[1]
            else:
                # A fresh context: the children's tasks outlive this request and must not log
                # its id. Kept and shielded: a client that hangs up must not cancel a half-done
                # command.
                task = asyncio.get_running_loop().create_task(
                    operation(), context=contextvars.Context()
                )
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                self._keep(task)
                self._last = (message, task)
        if not wait:
            await asyncio.sleep(0)  # let the start begin: the answer shows "starting"
            return await self._answer("Proxy servers are starting", wanted, None)
        await asyncio.shield(task)
        return await self._answer(message, wanted, target)

    def _settled(self, wanted: dict[str, bool], target: ChildState) -> bool:
        return all(self._manager.child(name).state is target for name in wanted)

    async def _answer(
        self, message: str, wanted: dict[str, bool], target: ChildState | None
    ) -> dict[str, Any]:
        """Publish and return the status; ``success`` = every child reached ``target``."""
        # The records of the processes this command started or ended are committed first, so
        # the answer never runs ahead of the database.
        await self._recovery.flush()
        payload = await self._status.publish_status(message)
        if target is None:
            return {"success": True, **payload}
        missed = [name for name in wanted if payload[STATUS_KEYS[name]]["state"] != target.value]
        if missed:
            reasons = "; ".join(
                f"{name} is {payload[STATUS_KEYS[name]]['state']}"
                + (f" ({why})" if (why := payload[STATUS_KEYS[name]]["reason"]) else "")
                for name in missed
            )
            payload = {**payload, "message": f"{message}, but {reasons}"}
        return {"success": not missed, **payload}

    # -- daemon lifecycle --------------------------------------------------------------------

    def become_subreaper(self) -> bool:
        """Adopt and reap the descendants that leave a child's tree (the real daemon only)."""
        return self._manager.become_subreaper()

    async def restore(self) -> None:
        """At daemon start: adopt or stop recorded orphans, then restore the desired state."""
        await self._recovery.restore()

    async def shutdown(self) -> None:
        """Stop every child (daemon exit); pending record writes finish first."""
        await self._manager.shutdown()
        if self._tasks:
            # Record writes of the last exits, and starts that the stop just ended.
            _done, pending = await asyncio.wait(set(self._tasks), timeout=5)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # -- supervisor listeners (synchronous: they only schedule work) -------------------------

    def _on_transition(self, event: StatusEvent) -> None:
        # The crash -> proxy:status path: the event's own snapshot, nothing sampled or read.
        if event.status is not None:
            self._latest[event.child] = event.status
        now = asyncio.get_running_loop().time()
        children = {key: self._latest[name].as_dict(now) for name, key in STATUS_KEYS.items()}
        self._status.publish_soon(children, describe(event))

    def _on_log(self, line: LogLine) -> None:
        self._events.publish(
            "proxy:log",
            {"child": line.child, "stream": line.stream, "line": line.line, "ts": line.ts},
            subscribers_only=True,
        )

    def _keep(self, task: asyncio.Future[Any]) -> None:
        if isinstance(task, asyncio.Task):
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("proxy_task_failed", error=repr(task.exception()))


__all__ = [
    "DESIRED_KEY",
    "PROVIDER_ROUTER",
    "QWEN_PROXY",
    "ChildState",
    "ProxyService",
    "child_specs",
]
