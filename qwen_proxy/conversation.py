"""Map an OpenAI conversation (the whole history, resent every turn) onto a Qwen chat.

Qwen keeps the conversation on its side, so a continuation sends only what is new since the
last assistant reply, chained to that reply by ``parent_id``. The conversation is recognised by
a hash of its first user message and first assistant reply; a history the proxy does not know
(another client, an edited or branched history) starts a new chat that carries the whole
history in one message, so no context is silently lost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from qwen_proxy.schema import ChatRequest, Message
from qwen_proxy.tools import tools_prompt
from qwenstack_core.store.conversations import Conversation

HISTORY_PREAMBLE = (
    "This conversation began before this chat. Here is its full history; continue it as the"
    " assistant and reply to the last message."
)


def _canonical_arguments(arguments: str) -> str:
    """Arguments as JSON text with sorted keys, so a client's re-serialisation still matches."""
    try:
        return orjson.dumps(orjson.loads(arguments), option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONDecodeError:
        return arguments.strip()


def assistant_fingerprint(content: str, calls: Sequence[tuple[str, str]]) -> str:
    """Return what identifies an assistant reply: its text and its calls (name, arguments)."""
    parts = [content.strip()]
    parts += [f"{name}({_canonical_arguments(arguments)})" for name, arguments in calls]
    return "\n".join(parts)


def conversation_key(first_user: str, first_reply_fingerprint: str) -> str:
    """Return the store key of a conversation."""
    digest = hashlib.sha256()
    digest.update(first_user.strip().encode())
    digest.update(b"\x00")
    digest.update(first_reply_fingerprint.encode())
    return digest.hexdigest()


def _fingerprint(message: Message) -> str:
    return assistant_fingerprint(
        message.content, [(c.name, c.arguments) for c in message.tool_calls]
    )


def first_user(messages: Sequence[Message]) -> str:
    """Return the text of the first user message."""
    return next(m.content for m in messages if m.role == "user")


def request_key(messages: Sequence[Message]) -> str | None:
    """Return the key of a request's conversation, or None before the first assistant reply."""
    reply = next((m for m in messages if m.role == "assistant"), None)
    if reply is None:
        return None
    return conversation_key(first_user(messages), _fingerprint(reply))


def render(message: Message) -> str:
    """Render one message as text for Qwen (tool results go back as user text)."""
    if message.role == "tool":
        name = f" {message.name}" if message.name else ""
        return f"[Result of tool call {message.tool_call_id}{name}]\n{message.content}"
    if message.role == "assistant" and message.tool_calls:
        calls = "\n".join(
            f'<tool_call>\n{{"name": "{c.name}", "arguments": {c.arguments or "{}"}}}\n</tool_call>'
            for c in message.tool_calls
        )
        return f"{message.content}\n{calls}".strip()
    return message.content


_LABELS = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


def fold(messages: Sequence[Message]) -> str:
    """Fold a whole history into one message, each turn labelled with its role."""
    turns = [f"[{_LABELS[m.role]}]\n{render(m)}" for m in messages]
    return HISTORY_PREAMBLE + "\n\n" + "\n\n".join(turns)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to send to Qwen for one request."""

    key: str | None  # the conversation's key (None until the first reply exists)
    prompt: str  # the text of the one message sent
    chat_id: str | None  # the chat to continue, or None for a new chat
    parent_id: str | None  # the message the prompt chains to
    turns: int  # assistant replies in the request's history


def plan(request: ChatRequest, stored: Conversation | None) -> Plan:
    """Decide between continuing the stored chat and a new chat with the history folded in."""
    messages = request.messages
    replies = sum(1 for m in messages if m.role == "assistant")
    key = request_key(messages)
    if stored is not None and stored.turns == replies and replies > 0:
        last = max(i for i, m in enumerate(messages) if m.role == "assistant")
        new = [m for m in messages[last + 1 :] if m.role != "system"]
        prompt = "\n\n".join(render(m) for m in new)
        return Plan(key, prompt, stored.chat_id, stored.parent_id, replies)
    system = [m.content for m in messages if m.role == "system"]
    if request.tools:
        system.append(tools_prompt(request.tools, request.tool_choice, request.forced_tool))
    rest = [m for m in messages if m.role != "system"]
    if len(rest) == 1:
        # The usual first turn: the system messages prepended to the one user message.
        prompt = "\n\n".join([*system, rest[0].content])
    else:
        history = fold(rest)
        prompt = "\n\n".join([*system, history])
    return Plan(key, prompt, None, None, replies)
