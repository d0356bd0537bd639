"""The recorded Qwen traffic (tests/fixtures/qwen/) and helpers to build answers from it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "qwen"


def load_transcript() -> list[bytes]:
    """Return the JSON payloads of the recorded SSE stream, in order."""
    lines = (FIXTURES / "completion_stream.sse").read_bytes().splitlines()
    return [line[5:].strip() for line in lines if line.startswith(b"data:")]


def transcript_text(payloads: list[bytes] | None = None) -> str:
    """Return the answer text the recorded stream carries."""
    text = []
    for raw in payloads or load_transcript():
        event = json.loads(raw)
        for choice in event.get("choices", []):
            text.append(choice["delta"].get("content", ""))
    return "".join(text)


def transcript_usage(payloads: list[bytes] | None = None) -> dict[str, Any]:
    """Return the last usage of the recorded stream."""
    usage: dict[str, Any] = {}
    for raw in payloads or load_transcript():
        usage = json.loads(raw).get("usage") or usage
    return usage


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float  # loop time


@dataclass
class Planned:
    """A canned answer for the next call to ``path`` (failures, HTML pages)."""

    path: str
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def synthetic_events(pieces: list[str], phase: str = "answer", start: int = 0) -> list[bytes]:
    """Return stream payloads for ``pieces`` (cumulative usage, like the recording)."""
    out = []
    for i, piece in enumerate(pieces, start=1):
        event = {
            "choices": [
                {
                    "delta": {
                        "role": "assistant",
                        "content": piece,
                        "phase": phase,
                        "status": "typing",
                    }
                }
            ],
            "usage": {
                "input_tokens": 21,
                "output_tokens": start + i,
                "total_tokens": 21 + start + i,
            },
        }
        out.append(json.dumps(event).encode())
    return out


def split(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]
