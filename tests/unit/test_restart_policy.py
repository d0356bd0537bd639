"""The restart policy on made-up times: crash window, stable-uptime reset, capped jittered delay."""

from __future__ import annotations

import random

import pytest

from supervisor import RestartPolicy


def policy(**overrides: float) -> RestartPolicy:
    knobs: dict[str, float] = {
        "base": 0.5,
        "factor": 2.0,
        "cap": 30.0,
        "jitter": 0.0,
        "stable_uptime": 60.0,
        "crash_limit": 5,
        "crash_window": 120.0,
        **overrides,
    }
    return RestartPolicy(
        base=knobs["base"],
        factor=knobs["factor"],
        cap=knobs["cap"],
        jitter=knobs["jitter"],
        stable_uptime=knobs["stable_uptime"],
        crash_limit=int(knobs["crash_limit"]),
        crash_window=knobs["crash_window"],
        rng=random.Random(7),
    )


def test_first_failure_restarts_at_once_then_backs_off_exponentially() -> None:
    rp = policy(crash_limit=100)
    delays = [rp.on_failure(float(n), uptime=0.1).delay for n in range(8)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


def test_more_failures_than_the_limit_within_the_window_give_up() -> None:
    rp = policy(crash_limit=5, crash_window=120.0)
    decisions = [rp.on_failure(float(n), uptime=None) for n in range(6)]
    assert [d.give_up for d in decisions] == [False] * 5 + [True]
    assert decisions[-1].failures == 6


def test_failures_older_than_the_window_are_forgotten() -> None:
    rp = policy(crash_limit=2, crash_window=10.0)
    for t in (0.0, 1.0):
        assert not rp.on_failure(t, uptime=None).give_up
    decision = rp.on_failure(20.0, uptime=None)  # the first two left the window
    assert (decision.give_up, decision.failures) == (False, 1)
    assert decision.attempt == 3  # the backoff still grows: only a stable run resets it


def test_a_stable_run_resets_the_crash_count_and_the_backoff() -> None:
    """The documented behaviour: runs of 1.5 s with CHILD_STABLE_UPTIME=1 never fail."""
    rp = policy(stable_uptime=1.0, crash_limit=5, crash_window=120.0)
    for n in range(20):
        decision = rp.on_failure(n * 1.6, uptime=1.5)
        assert not decision.give_up
        assert (decision.failures, decision.attempt, decision.delay) == (1, 1, 0.0)


def test_an_unstable_run_does_not_reset() -> None:
    rp = policy(stable_uptime=1.0, crash_limit=5)
    decisions = [rp.on_failure(n * 1.6, uptime=0.9) for n in range(6)]
    assert decisions[-1].give_up


def test_reset_forgets_everything() -> None:
    rp = policy(crash_limit=1)
    rp.on_failure(0.0, uptime=None)
    assert rp.on_failure(1.0, uptime=None).give_up
    rp.reset()  # an explicit start
    decision = rp.on_failure(2.0, uptime=None)
    assert (decision.give_up, decision.failures, decision.attempt) == (False, 1, 1)


@pytest.mark.parametrize("attempt", range(2, 12))
def test_jitter_stays_within_its_band_and_under_the_cap(attempt: int) -> None:
    rp = policy(jitter=0.1, cap=4.0)
    plain = min(4.0, 0.5 * 2.0 ** (attempt - 2))
    for _ in range(50):
        delay = rp.delay(attempt)
        assert plain * 0.9 <= delay <= min(4.0, plain * 1.1)
