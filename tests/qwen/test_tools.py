"""Tools only when declared: described in the prompt, calls parsed back; markup stays text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai import AsyncOpenAI

from qwen_proxy.schema import Tool
from qwen_proxy.tools import ToolCallOut, ToolCallParser
from tests.fakes.qwen_upstream import FakeQwen, fixture, split

TOOLS_REQUEST = fixture("openai_tools_request.json")
CALL = (
    "<tool_call>\n"
    '{"name": "get_weather", "arguments": {"location": "San Francisco, CA", "unit": "celsius"}}\n'
    "</tool_call>"
)
MARKUP = (
    "Use <b>bold</b> like this.\n<tool_call>\n"
    '{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>\n<note>x</note>'
)


async def test_markup_in_a_reply_without_tools_stays_text(client: AsyncOpenAI, fake: FakeQwen):
    fake.reply_pieces = split(MARKUP, 3)
    messages = [{"role": "user", "content": "Show me some markup"}]
    reply = await client.chat.completions.create(model="qwen3-max", messages=messages)
    assert reply.choices[0].message.content == MARKUP
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "stop"
    stream = await client.chat.completions.create(model="qwen3-max", messages=messages, stream=True)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == MARKUP
    assert all(c.choices[0].delta.tool_calls is None for c in chunks if c.choices)
    # Without tools, nothing about tools is put in the prompt either.
    assert all("<tools>" not in c.body["messages"][0]["content"] for c in fake.completions)


async def test_declared_tool_gives_tool_calls_non_stream(client: AsyncOpenAI, fake: FakeQwen):
    fake.reply_pieces = split(CALL, 4)
    reply = await client.chat.completions.create(**TOOLS_REQUEST)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {
        "location": "San Francisco, CA",
        "unit": "celsius",
    }
    prompt = fake.completions[0].body["messages"][0]["content"]
    assert "get_weather" in prompt and "<tool_call>" in prompt
    assert prompt.endswith("What's the weather like in San Francisco?")


async def test_declared_tool_gives_tool_call_deltas_when_streaming(
    client: AsyncOpenAI, fake: FakeQwen
):
    fake.reply_pieces = split("Let me check.\n" + CALL, 3)
    stream = await client.chat.completions.create(**TOOLS_REQUEST, stream=True)
    chunks = [c async for c in stream]
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "Let me check."
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1
    assert calls[0].index == 0 and calls[0].id and calls[0].function is not None
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments or "") == {
        "location": "San Francisco, CA",
        "unit": "celsius",
    }
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


async def test_tool_results_go_back_as_user_text_in_the_same_chat(
    client: AsyncOpenAI, fake: FakeQwen
):
    fake.reply_pieces = split(CALL, 6)
    first = await client.chat.completions.create(**TOOLS_REQUEST)
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    fake.reply_pieces = split("It is 18 degrees in San Francisco.")
    messages: list[dict[str, Any]] = [
        *TOOLS_REQUEST["messages"],
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 18}'},
    ]
    second = await client.chat.completions.create(
        model="qwen3-max", messages=messages, tools=TOOLS_REQUEST["tools"]
    )
    assert second.choices[0].message.content == "It is 18 degrees in San Francisco."
    assert second.choices[0].finish_reason == "stop"
    assert len(fake.new_chats) == 1
    sent = fake.completions[1].body
    assert sent["parent_id"] is not None
    assert call.id in sent["messages"][0]["content"]
    assert '{"temperature": 18}' in sent["messages"][0]["content"]


async def test_a_call_of_an_undeclared_tool_stays_text(client: AsyncOpenAI, fake: FakeQwen):
    text = '<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>'
    fake.reply_pieces = split(text, 4)
    reply = await client.chat.completions.create(**TOOLS_REQUEST)
    assert reply.choices[0].message.content == text
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "stop"


WEATHER = (Tool("get_weather", "", None),)


@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_parser_finds_calls_across_any_split(size: int) -> None:
    text = "Sure <i>x</i> < tool_call>\n" + CALL + "\n" + CALL.replace("celsius", "fahrenheit")
    parser = ToolCallParser(WEATHER)
    out: list[str | ToolCallOut] = []
    for piece in split(text, size):
        out += parser.feed(piece)
    out += parser.flush()
    texts = "".join(p for p in out if isinstance(p, str))
    calls = [p for p in out if isinstance(p, ToolCallOut)]
    assert texts == "Sure <i>x</i> < tool_call>"
    assert [json.loads(c.arguments)["unit"] for c in calls] == ["celsius", "fahrenheit"]


def test_parser_keeps_broken_and_unclosed_blocks_as_text() -> None:
    parser = ToolCallParser(WEATHER)
    text = "a <tool_call>not json</tool_call> b <tool_call>{"
    out = [*parser.feed(text), *parser.flush()]
    assert "".join(p for p in out if isinstance(p, str)) == text
    assert parser.calls == []
