"""Structured logging: structlog for our code, stdlib loggers routed through the same renderer."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from qwenstack_core.redaction import MASK, is_secret_name


def redact_secrets(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """Mask values whose key names a secret, so a careless log call cannot leak one."""
    for key in list(event):
        if key != "event" and is_secret_name(key) and event[key] is not None:
            event[key] = MASK
    return event


# Key/values every log line of the current task carries (a request's id, method and path). One
# variable set once per request: structlog.contextvars keeps one per key, and clearing them
# copies the whole context, on every request.
_LOG_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("log_context", default=None)


def bind_log_context(**values: Any) -> None:
    """Make ``values`` part of every later log line of this task, replacing what was bound."""
    _LOG_CONTEXT.set(values)


def merge_log_context(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """Add the bound log context to a line; the line's own keys win."""
    context = _LOG_CONTEXT.get()
    if context:
        for key, value in context.items():
            event.setdefault(key, value)
    return event


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger once, before anything logs."""
    out = stream or sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Processor] = [
        merge_log_context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            # First, so a filtered-out debug line costs one level check and nothing more.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    numeric = getattr(logging, level.upper(), logging.INFO)
    root.setLevel(numeric)
    # The libraries are chatty at INFO (one line per request/packet); keep them at WARNING
    # unless we are debugging. Our own access line replaces aiohttp's.
    for name in ("aiohttp.access", "socketio", "engineio", "socketio.server", "engineio.server"):
        logging.getLogger(name).setLevel(numeric if numeric <= logging.DEBUG else logging.WARNING)


def get_logger(name: str, **bound: Any) -> structlog.stdlib.BoundLogger:
    """Return a structlog logger with ``bound`` key/values."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger.bind(**bound) if bound else logger
