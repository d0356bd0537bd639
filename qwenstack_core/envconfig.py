"""Reading settings from the environment: the parsing rules all three programs share.

Each program keeps its own settings class and variable names; what is read the same way
everywhere (ports, seconds, choices, comma lists, the loopback test) is read here, and every
problem is collected so that a bad environment is reported whole, not one variable at a time.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from pathlib import Path

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")


class ConfigError(Exception):
    """Raised with every problem found in the environment at once."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def is_loopback(host: str) -> bool:
    """Return True when binding ``host`` only exposes the program to this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_database_path(environ: Mapping[str, str]) -> Path:
    """Return the XDG data location of the stack's database (the same for every program)."""
    base = environ.get("XDG_DATA_HOME") or str(Path(environ.get("HOME", "~")) / ".local/share")
    return Path(base).expanduser() / "qwen-proxy" / "qwen-proxy.db"


class EnvReader:
    """Read variables of ``environ``, noting each bad one in ``problems`` and using its default."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str) -> str | None:
        """Return the stripped value of ``name``, or None when unset or blank."""
        return self.environ.get(name, "").strip() or None

    def port(self, name: str, default: int | None, lowest: int = 0) -> int:
        """Return a port ``lowest..65535``; with no ``default`` the variable is required."""
        raw = self.environ.get(name, "").strip()
        if not raw and default is not None:
            return default
        if not raw.isdigit() or not lowest <= int(raw) <= 65535:
            self.problems.append(f"{name} must be a port number {lowest}..65535, got {raw!r}")
            return default if default is not None else 0
        return int(raw)

    def seconds(self, name: str, default: float) -> float:
        """Return a duration in (0, 3600] seconds."""
        raw, value = self._float(name)
        if value is None:
            return default
        if not 0 < value <= 3600:
            self.problems.append(f"{name} must be a number of seconds in (0, 3600], got {raw!r}")
            return default
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        """Return a number in [``low``, ``high``]."""
        raw, value = self._float(name)
        if value is None:
            return default
        if not low <= value <= high:
            self.problems.append(f"{name} must be a number in [{low:g}, {high:g}], got {raw!r}")
            return default
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        """Return one of ``allowed`` (case-insensitive)."""
        raw = self.environ.get(name, "").strip().lower() or default
        if raw not in allowed:
            self.problems.append(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
            return default
        return raw

    def log_level(self, name: str = "LOG_LEVEL") -> str:
        """Return a log level, "info" by default; "warn" is read as "warning"."""
        raw = self.environ.get(name, "").strip().lower()
        return self.choice(name, "info", LOG_LEVELS) if raw != "warn" else "warning"

    def log_format(self, name: str = "LOG_FORMAT") -> str:
        """Return a log format, "auto" by default."""
        return self.choice(name, "auto", LOG_FORMATS)

    def host_names(self, name: str) -> tuple[str, ...]:
        """Return a comma-separated list of host names, lower-case."""
        raw = self.environ.get(name, "")
        return tuple(h.strip().lower() for h in raw.split(",") if h.strip())

    def origins(self, name: str) -> tuple[str, ...] | None:
        """Return a comma-separated list of origins (no trailing slash), or None when unset."""
        raw = self.environ.get(name, "").strip()
        if not raw:
            return None
        return tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())

    def _float(self, name: str) -> tuple[str, float | None]:
        """Return the raw value and its float: None when unset, NaN (in no range) when junk."""
        raw = self.environ.get(name, "").strip()
        if not raw:
            return raw, None
        try:
            return raw, float(raw)
        except ValueError:
            return raw, math.nan
