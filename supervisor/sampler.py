"""CPU and memory of a child and its descendants, sampled with psutil at most once an interval."""

from __future__ import annotations

import psutil


class StatsSampler:
    """Sum CPU percent and RSS over a process tree, keeping ``Process`` objects between samples.

    ``cpu_percent`` measures since the previous call on the same object, so the objects are
    cached by pid (and create time: psutil compares both) to give every sample a baseline.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._cache: dict[int, psutil.Process] = {}
        self._at: float | None = None
        self._root: int | None = None
        self.cpu = 0.0
        self.memory = 0

    def reset(self) -> None:
        """Forget the figures and the baseline (a new run, or no run)."""
        self._cache = {}
        self._at = None
        self._root = None
        self.cpu, self.memory = 0.0, 0

    def sample(self, root: psutil.Process | None, now: float) -> dict[int, psutil.Process]:
        """Refresh the figures if the interval passed; return the descendants seen (pid -> proc)."""
        if root is None:
            self.reset()
            return {}
        if root.pid != self._root:
            self.reset()
            self._root = root.pid
        if self._at is not None and now - self._at < self.interval:
            return {}
        self._at = now
        try:
            found = [root, *root.children(recursive=True)]
        except psutil.Error:
            self.cpu, self.memory = 0.0, 0
            return {}
        cpu, rss = 0.0, 0
        cache: dict[int, psutil.Process] = {}
        for proc in found:
            cached = self._cache.get(proc.pid)
            if cached is None or cached != proc:
                cached = proc
            try:
                with cached.oneshot():
                    cpu += cached.cpu_percent(None)
                    rss += cached.memory_info().rss
            except psutil.Error:
                continue
            cache[proc.pid] = cached
        self._cache = cache
        self.cpu, self.memory = cpu, rss
        return {pid: proc for pid, proc in cache.items() if pid != root.pid}

    def figures(self) -> dict[str, float | int]:
        """Return the last sampled ``{cpu, memory}`` without sampling."""
        return {"cpu": round(self.cpu, 1), "memory": self.memory}
