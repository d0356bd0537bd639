"""The bad-input warning: once per client and kind, and a departed client's record goes."""

from __future__ import annotations

from structlog.testing import capture_logs

from apiserver.realtime.server import InputWarnings


def refused(logs: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["sid"], e["kind"]) for e in logs if e["event"] == "socketio_input_refused"]


def test_one_warning_per_client_and_kind_until_the_client_is_forgotten() -> None:
    warnings = InputWarnings()
    with capture_logs() as logs:
        for _ in range(3):
            warnings.warn("a", "junk")
            warnings.warn("a", "oversize")
            warnings.warn("b", "junk")
        warnings.forget("a")  # a disconnected; b stays
        warnings.warn("a", "junk")  # a new client record: warned again
        warnings.warn("b", "junk")
    assert refused(logs) == [("a", "junk"), ("a", "oversize"), ("b", "junk"), ("a", "junk")]


def test_forgetting_a_thousand_clients_leaves_nothing_behind() -> None:
    warnings = InputWarnings(per_second=1e9)
    with capture_logs():
        for n in range(1000):
            warnings.warn(f"sid{n}", "junk")
        for n in range(1000):
            warnings.forget(f"sid{n}")
    warnings.forget("never-warned")  # no error for a client without warnings
    assert not warnings._seen
