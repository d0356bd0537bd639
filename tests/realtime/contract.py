"""The seed's event payloads (WEBSOCKET_IMPLEMENTATION.md), field by field, as type checks."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

NUMBER = (int, float)
NONE = type(None)

CHILD = {"running": bool, "port": int, "pid": (int, NONE), "uptime": NUMBER}
# Our additions to each child (events.md "Per-child detail").
CHILD_DETAIL = {
    "state": str,
    "healthy": bool,
    "restarts": int,
    "startedAt": (str, int, float, NONE),
    "lastExit": (dict, NONE),
    "reason": (str, NONE),
    "cpu": NUMBER,
    "memory": int,
}

SEED: dict[str, dict[str, Any]] = {
    "proxy:status": {
        "status": str,
        "providerRouter": CHILD,
        "qwenProxy": CHILD,
        "providers": {"items": list, "total": int, "enabled": int},
        "models": {"items": list, "total": int},
        "credentials": {
            "valid": bool,
            "expiresAt": (int, NONE),
            "hasCredentials": bool,
            "isExpired": bool,
        },
        "message": str,
        "timestamp": str,
    },
    "credentials:updated": {
        "action": str,
        "hasCredentials": bool,
        "isValid": bool,
        "isExpired": bool,
        "expiresAt": (int, NONE),
        "createdAt": (int, NONE),  # null only when nothing was stored (checked below)
        "updatedAt": (int, NONE),
        "timestamp": str,
    },
    "providers:updated": {
        "action": str,
        "providerId": (str, NONE),
        "items": list,
        "total": int,
        "enabled": int,
        "timestamp": str,
    },
    "models:updated": {
        "action": str,
        "modelId": (str, NONE),
        "items": list,
        "total": int,
        "timestamp": str,
    },
    # Our addition.
    "settings:updated": {"action": str, "keys": list, "settings": dict, "timestamp": str},
}

ACTIONS = {
    "credentials:updated": {"updated", "deleted"},
    "providers:updated": {"created", "updated", "deleted", "enabled", "disabled", "reloaded"},
    "models:updated": {"created", "updated", "deleted"},
    "settings:updated": {"updated", "reset"},
}
STATUSES = {"running", "stopped", "partial", "starting"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _check(shape: dict[str, Any], data: Any, where: str) -> None:
    assert isinstance(data, dict), f"{where}: not an object: {data!r}"
    for field, kind in shape.items():
        assert field in data, f"{where}: seed field {field!r} missing"
        value = data[field]
        if isinstance(kind, dict):
            _check(kind, value, f"{where}.{field}")
        else:
            # bool is an int in Python; the seed's "number" fields never hold booleans.
            assert not (isinstance(value, bool) and bool not in _as_tuple(kind)), (
                f"{where}.{field} is a boolean"
            )
            assert isinstance(value, kind), f"{where}.{field}={value!r} is not {kind}"


def _as_tuple(kind: Any) -> tuple[Any, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def check_event(name: str, data: Any, *, snapshot: bool = False) -> None:
    """Assert ``data`` has every seed field of event ``name`` with the seed's type.

    ``snapshot``: an entry of a ``sync`` snapshot, whose action is "snapshot".
    """
    _check(SEED[name], data, name)
    assert isinstance(data.get("seq"), int) and not isinstance(data["seq"], bool), data
    assert isinstance(data.get("instance"), str) and data["instance"], data
    assert ISO.match(data["timestamp"]), data["timestamp"]
    datetime.fromisoformat(data["timestamp"].replace("Z", "+00:00"))
    if name in ACTIONS:
        allowed = ACTIONS[name] | ({"snapshot"} if snapshot else set())
        assert data["action"] in allowed, data["action"]
    if name == "proxy:status":
        assert data["status"] in STATUSES
        for child in ("providerRouter", "qwenProxy"):
            _check(CHILD_DETAIL, data[child], f"{name}.{child}")
        assert data["providers"]["total"] == len(data["providers"]["items"])
        assert data["models"]["total"] == len(data["models"]["items"])
    elif name in ("providers:updated", "models:updated"):
        assert data["total"] == len(data["items"])
    if name == "providers:updated":
        assert data["enabled"] == sum(1 for p in data["items"] if p["enabled"])
    if name == "credentials:updated":
        for field in ("token", "cookies"):
            assert field not in data
        if data["action"] == "updated":
            assert data["hasCredentials"] is True
            assert isinstance(data["createdAt"], int) and isinstance(data["updatedAt"], int)
        elif data["createdAt"] is None:  # a delete of nothing
            assert data["updatedAt"] is None
        else:
            assert isinstance(data["updatedAt"], int)
