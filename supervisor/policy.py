"""When to restart a failed child and when to give up: pure arithmetic, no processes, no clock.

The caller passes the times in; the tests drive the policy with made-up numbers.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartDecision:
    """What to do after one failure: restart after ``delay`` seconds, or give up."""

    give_up: bool
    delay: float
    attempt: int  # consecutive failures since the last stable run or reset
    failures: int  # failures inside the crash window, this one included


class RestartPolicy:
    """Crash window, stable-uptime reset, capped exponential delay with jitter.

    - More than ``crash_limit`` failures within ``crash_window`` seconds: give up (``failed``).
    - A run that stayed up ``stable_uptime`` seconds forgives every earlier failure: the crash
      count and the backoff both start again, so a child that crashes rarely never fails.
    - The first failure after a reset restarts at once; the next ones wait
      ``base * factor ** (attempt - 2)`` capped at ``cap``, times ``1 ± jitter``.
    """

    def __init__(
        self,
        *,
        base: float,
        factor: float,
        cap: float,
        jitter: float,
        stable_uptime: float,
        crash_limit: int,
        crash_window: float,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.factor = factor
        self.cap = cap
        self.jitter = jitter
        self.stable_uptime = stable_uptime
        self.crash_limit = crash_limit
        self.crash_window = crash_window
        self._rng = rng or random.Random()
        self._attempt = 0
        self._failures: deque[float] = deque()

    def reset(self) -> None:
        """Forget every failure (an explicit start)."""
        self._attempt = 0
        self._failures.clear()

    def on_failure(self, now: float, uptime: float | None) -> RestartDecision:
        """Record a failure at ``now`` of a run that was up ``uptime`` s (None: never ready)."""
        if uptime is not None and uptime >= self.stable_uptime:
            self.reset()
        self._attempt += 1
        self._failures.append(now)
        while self._failures and self._failures[0] < now - self.crash_window:
            self._failures.popleft()
        failures = len(self._failures)
        if failures > self.crash_limit:
            return RestartDecision(True, 0.0, self._attempt, failures)
        return RestartDecision(False, self.delay(self._attempt), self._attempt, failures)

    def delay(self, attempt: int) -> float:
        """Return the wait before restart ``attempt``: 0 first, then capped exponential."""
        if attempt <= 1:
            return 0.0  # the first failure after a stable run restarts at once
        delay = min(self.cap, self.base * self.factor ** (attempt - 2))
        jitter = self._rng.uniform(-self.jitter, self.jitter)
        return max(0.0, min(self.cap, delay * (1.0 + jitter)))
