"""A child's output: pipe readers that never leave a pipe unread, and the bounded ring buffer."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any, BinaryIO

from supervisor import process
from supervisor.events import LogLine, iso_utc


class OutputBuffer:
    """Keep the last ``size`` lines of one child and hand every new line to ``on_line``."""

    def __init__(self, child: str, size: int, on_line: Callable[[LogLine], None]) -> None:
        self._child = child
        self._lines: deque[LogLine] = deque(maxlen=size)
        self._on_line = on_line

    def add(self, stream: str, raw: bytes) -> LogLine:
        """Store one line (bytes as read, newline optional) and pass it on."""
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        entry = LogLine(child=self._child, stream=stream, line=text, ts=iso_utc(time.time()))
        self._lines.append(entry)
        self._on_line(entry)
        return entry

    def recent(self, lines: int) -> list[dict[str, Any]]:
        """Return up to ``lines`` recent lines, oldest first, as ``{ts, stream, line}``."""
        if lines <= 0:
            return []
        return [entry.as_dict() for entry in list(self._lines)[-lines:]]

    def tail(self, stream: str, count: int) -> list[str]:
        """Return the texts of the last ``count`` lines of ``stream``."""
        return [entry.line for entry in self._lines if entry.stream == stream][-count:]


async def read_lines(stream: str, pipe: BinaryIO, sink: Callable[[str, bytes], object]) -> None:
    """Read one pipe line by line until EOF (an unread pipe would block the child)."""
    reader, transport = await process.open_reader(pipe)
    try:
        while True:
            try:
                raw = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    sink(stream, exc.partial)
                return
            except asyncio.LimitOverrunError:
                raw = await reader.read(process.LINE_LIMIT)  # an overlong line comes in pieces
            sink(stream, raw)
    finally:
        transport.close()
