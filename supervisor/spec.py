"""What a child is and how it is paced: the immutable specification the supervisor runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """Describe how to run, probe and pace one child program (all timings in seconds)."""

    name: str
    argv: tuple[str, ...]
    port: int
    host: str = "127.0.0.1"
    cwd: str | None = None
    # The child's whole environment: the daemon's own is never inherited. PORT and HOST are
    # added from ``port``/``host`` unless set here; NOTIFY_SOCKET and the run marker are added
    # by the supervisor at each spawn.
    env: Mapping[str, str] = field(default_factory=dict)
    health_path: str = "/health"
    # Give the child a NOTIFY_SOCKET and take READY=1 as ready; /health stays the fallback.
    notify: bool = True
    ready_poll: float = 0.025  # seconds between /health probes while starting
    start_timeout: float = 15.0
    stop_timeout: float = 10.0
    probe_timeout: float = 2.0
    backoff_base: float = 0.5
    backoff_factor: float = 2.0
    backoff_cap: float = 30.0
    backoff_jitter: float = 0.1
    stable_uptime: float = 60.0
    crash_limit: int = 5
    crash_window: float = 120.0
    liveness_interval: float = 10.0
    liveness_failures: int = 3
    log_lines: int = 500

    def __post_init__(self) -> None:
        object.__setattr__(self, "argv", tuple(self.argv))
        object.__setattr__(self, "env", dict(self.env))
        problems = []
        if not self.name:
            problems.append("name is empty")
        if not self.argv:
            problems.append("argv is empty")
        if not 0 < self.port < 65536:
            problems.append(f"port {self.port} out of range")
        for knob in (
            "start_timeout",
            "stop_timeout",
            "probe_timeout",
            "liveness_interval",
            "ready_poll",
        ):
            if getattr(self, knob) <= 0:
                problems.append(f"{knob} must be > 0")
        if self.crash_limit < 0 or self.liveness_failures < 1 or self.log_lines < 1:
            problems.append("crash_limit, liveness_failures and log_lines must be positive")
        if problems:
            raise ValueError(f"child spec {self.name!r}: " + "; ".join(problems))

    def child_env(self) -> dict[str, str]:
        """Return the environment the child is spawned with (before the supervisor's additions)."""
        return {"PORT": str(self.port), "HOST": self.host, **self.env}
