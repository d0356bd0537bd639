"""Tool calling over a chat that has none: the tools described in the prompt, calls parsed back.

Only used when the request declares tools. The model is asked for Qwen's own ``<tool_call>``
block (the format its models are trained on); a block that does not parse into a call of a
declared tool stays text, so markup in an ordinary answer is never mistaken for a call.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from qwen_proxy.schema import Tool

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


@dataclass(frozen=True, slots=True)
class ToolCallOut:
    """A call the model made, in OpenAI's terms."""

    id: str
    name: str
    arguments: str  # JSON text of an object

    def as_openai(self, index: int | None = None) -> dict[str, Any]:
        """Return the OpenAI ``tool_calls`` entry (with ``index`` in a stream delta)."""
        call: dict[str, Any] = {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }
        return call if index is None else {"index": index, **call}


def tools_prompt(tools: Sequence[Tool], tool_choice: str | None, forced: str | None) -> str:
    """Describe the declared tools and how to call them, for the system part of the prompt."""
    lines = [
        "# Tools",
        "",
        "You may call one or more of these functions to answer. Their signatures are in the"
        " <tools></tools> block:",
        "<tools>",
    ]
    for tool in tools:
        spec: dict[str, Any] = {"name": tool.name, "description": tool.description}
        if tool.parameters is not None:
            spec["parameters"] = tool.parameters
        lines.append(orjson.dumps({"type": "function", "function": spec}).decode())
    lines += [
        "</tools>",
        "",
        "To call a function, reply with one block per call and nothing else, in this form:",
        OPEN,
        '{"name": "<function name>", "arguments": {<arguments as a JSON object>}}',
        CLOSE,
        "The result of each call comes back in the next message. When no function is needed,"
        " answer normally without any such block.",
    ]
    if forced:
        lines.append(f"You must call the function {forced} now.")
    elif tool_choice == "required":
        lines.append("You must call at least one function now.")
    return "\n".join(lines)


def parse_call(block: str, names: frozenset[str]) -> ToolCallOut | None:
    """Parse the inside of a ``<tool_call>`` block; None unless it calls a declared tool."""
    text = _FENCE.sub("", block.strip())
    try:
        call = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(call, dict) or call.get("name") not in names:
        return None
    arguments = call.get("arguments", call.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCallOut(
        f"call_{uuid.uuid4().hex[:24]}", call["name"], orjson.dumps(arguments).decode()
    )


def _partial_open(text: str) -> int:
    """Return the length of the longest end of ``text`` that could begin ``<tool_call>``."""
    for size in range(min(len(OPEN) - 1, len(text)), 0, -1):
        if OPEN.startswith(text[-size:]):
            return size
    return 0


class ToolCallParser:
    """Split the model's text, as it streams in, into plain text and tool calls.

    Text goes out at once except what could still become a ``<tool_call>`` block; a block is
    held until it closes, then becomes a call (or goes out as the text it was). Whitespace
    before and between calls is dropped, so a reply of only calls has no content.
    """

    def __init__(self, tools: Sequence[Tool]) -> None:
        self._names = frozenset(t.name for t in tools)
        self._buffer = ""
        self._in_block = False
        self._blank = ""  # whitespace not yet known to be content
        self.calls: list[ToolCallOut] = []

    def feed(self, text: str) -> list[str | ToolCallOut]:
        """Add streamed text; return what can be emitted now, in order."""
        self._buffer += text
        out: list[str | ToolCallOut] = []
        while True:
            if self._in_block:
                end = self._buffer.find(CLOSE)
                if end < 0:
                    return out
                block = self._buffer[len(OPEN) : end]
                whole = self._buffer[: end + len(CLOSE)]
                self._buffer = self._buffer[end + len(CLOSE) :]
                self._in_block = False
                call = parse_call(block, self._names)
                if call is None:
                    self._text(whole, out)
                else:
                    self._blank = ""
                    self.calls.append(call)
                    out.append(call)
                continue
            start = self._buffer.find(OPEN)
            if start >= 0:
                self._text(self._buffer[:start], out)
                self._buffer = self._buffer[start:]
                self._in_block = True
                continue
            keep = _partial_open(self._buffer)
            ready = self._buffer[: len(self._buffer) - keep]
            self._buffer = self._buffer[len(self._buffer) - keep :]
            self._text(ready, out)
            return out

    def flush(self) -> list[str | ToolCallOut]:
        """End of the reply: whatever is held is text (an unclosed block included)."""
        out: list[str | ToolCallOut] = []
        self._text(self._buffer, out)
        self._buffer = ""
        self._in_block = False
        if not self.calls and self._blank:
            out.append(self._blank)
        self._blank = ""
        return out

    def _text(self, text: str, out: list[str | ToolCallOut]) -> None:
        # Trailing whitespace waits for more text: before a call it is dropped, wherever the
        # stream happened to split.
        kept = text.rstrip()
        if not kept:
            self._blank += text
            return
        out.append(self._blank + kept)
        self._blank = text[len(kept) :]
