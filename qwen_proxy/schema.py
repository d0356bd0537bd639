"""Validate an OpenAI chat request at the edge into a frozen ``ChatRequest``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from qwen_proxy.errors import InvalidRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call of an assistant message (as the client sent it back)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message with its content flattened to text."""

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the client declared."""

    name: str
    description: str
    parameters: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """The parts of an OpenAI chat completion request qwen-proxy acts on."""

    model: str
    messages: tuple[Message, ...]
    stream: bool
    include_usage: bool
    reasoning: bool
    tools: tuple[Tool, ...]
    tool_choice: str | None
    forced_tool: str | None = None


def _fail(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _text(content: Any, where: str) -> str:
    """Flatten OpenAI content (a string or a list of text parts) to text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _fail(
                    "Only text content parts are supported by the Qwen web chat proxy",
                    f"{where}.content[{i}]",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise _fail("A text part needs a string 'text'", f"{where}.content[{i}].text")
            parts.append(text)
        return "\n".join(parts)
    raise _fail("Message content must be a string or a list of text parts", f"{where}.content")


def _tool_calls(raw: Any, where: str) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail("tool_calls must be a list", f"{where}.tool_calls")
    calls = []
    for i, call in enumerate(raw):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _fail("A tool call needs function.name", f"{where}.tool_calls[{i}]")
        arguments = fn.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments).decode()
        calls.append(ToolCall(str(call.get("id") or ""), fn["name"], arguments))
    return tuple(calls)


def _message(raw: Any, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise _fail("Each message must be an object", where)
    role = raw.get("role")
    if role not in ROLES:
        raise _fail(
            f"Message role must be one of {', '.join(sorted(ROLES))}, got {role!r}",
            f"{where}.role",
        )
    content = raw.get("content")
    if content is None and role in ("system", "developer", "user", "tool"):
        raise _fail(f"A {role} message needs content", f"{where}.content")
    tool_calls = _tool_calls(raw.get("tool_calls"), where) if role == "assistant" else ()
    tool_call_id = raw.get("tool_call_id")
    if role == "tool" and not isinstance(tool_call_id, str):
        raise _fail("A tool message needs tool_call_id", f"{where}.tool_call_id")
    name = raw.get("name")
    return Message(
        role="system" if role == "developer" else role,
        content=_text(content, where),
        tool_calls=tool_calls,
        tool_call_id=tool_call_id if isinstance(tool_call_id, str) else None,
        name=name if isinstance(name, str) else None,
    )


def _tools(raw: Any) -> tuple[Tool, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail("tools must be a list", "tools")
    tools = []
    for i, tool in enumerate(raw):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise _fail("Only function tools are supported", f"tools[{i}].type")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise _fail("A tool needs function.name", f"tools[{i}].function.name")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise _fail("function.parameters must be an object", f"tools[{i}].function")
        description = fn.get("description")
        tools.append(Tool(fn["name"], description if isinstance(description, str) else "", params))
    return tuple(tools)


def _reasoning(body: dict[str, Any]) -> bool:
    """Return whether the client asked for the model's reasoning (any common spelling)."""
    effort = body.get("reasoning_effort")
    if isinstance(effort, str) and effort not in ("none", "minimal"):
        return True
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("enabled", True) is not False:
        return reasoning.get("effort") not in ("none", "minimal")
    return body.get("enable_thinking") is True


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Parse and validate a request body; raise ``InvalidRequest`` saying what is wrong."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("Request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise _fail("Request body must be a JSON object", "body")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _fail("model is required (a string)", "model")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise _fail("messages must be a non-empty list", "messages")
    messages = tuple(_message(m, i) for i, m in enumerate(raw_messages))
    if messages[-1].role not in ("user", "tool"):
        raise _fail("The last message must be a user or tool message", "messages")
    if not any(m.role == "user" for m in messages):
        raise _fail("messages need at least one user message", "messages")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _fail("stream must be a boolean", "stream")
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    tool_choice = body.get("tool_choice")
    tools = _tools(body.get("tools"))
    if tool_choice == "none":
        tools = ()  # declared but forbidden: the reply is plain text, never parsed
    forced = None
    if isinstance(tool_choice, dict):
        function = tool_choice.get("function")
        if not isinstance(function, dict) or function.get("name") not in {t.name for t in tools}:
            raise _fail("tool_choice names a function that is not in tools", "tool_choice")
        forced = function["name"]
    return ChatRequest(
        model=model.strip(),
        messages=messages,
        stream=stream,
        include_usage=include_usage,
        reasoning=_reasoning(body),
        tools=tools,
        tool_choice=tool_choice if isinstance(tool_choice, str) else None,
        forced_tool=forced,
    )
