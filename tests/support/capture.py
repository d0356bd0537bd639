"""Everything the test run saw from the daemon, scanned for secrets at the end of the session.

Every secret the tests store contains SECRET_MARKER, so one substring search over all captured
responses, log lines and event payloads proves none of them leaked.
"""

from __future__ import annotations

SECRET_MARKER = "s3cr3t"

CAPTURED: list[tuple[str, str]] = []  # (where, text)


def record(where: str, text: str) -> None:
    """Keep ``text`` for the end-of-session secret scan."""
    CAPTURED.append((where, text))


def leaks() -> list[tuple[str, str]]:
    """Return the captured texts that contain a secret."""
    return [(where, text) for where, text in CAPTURED if SECRET_MARKER in text]
