"""Conversation continuity: one Qwen chat per OpenAI conversation, chained by parent_id."""

from __future__ import annotations

from pathlib import Path

from openai import AsyncOpenAI

from qwenstack_core.store import Store
from qwenstack_core.store import conversations as conversation_rows
from tests.fakes.qwen_upstream import FakeQwen, split
from tests.support.capture import record


async def ask(client: AsyncOpenAI, messages: list[dict[str, str]], stream: bool) -> str:
    if not stream:
        reply = await client.chat.completions.create(model="qwen3-max", messages=messages)
        return reply.choices[0].message.content or ""
    chunks = await client.chat.completions.create(model="qwen3-max", messages=messages, stream=True)
    return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


async def test_three_turns_reuse_the_chat_and_chain_parent_ids(
    client: AsyncOpenAI, fake: FakeQwen, db_path: Path
):
    history: list[dict[str, str]] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi, I am Ada."},
    ]
    parents: list[str | None] = []
    for turn, stream in enumerate((False, True, False), start=1):
        fake.reply_pieces = split(f"Answer number {turn}.")
        parents.append(next(iter(fake.chats.values()), None))
        answer = await ask(client, history, stream)
        assert answer == f"Answer number {turn}."
        history += [{"role": "assistant", "content": answer}]
        history += [{"role": "user", "content": f"Question {turn + 1}"}]

    assert len(fake.new_chats) == 1  # one Qwen chat for the whole conversation
    chat_id = _chat_id(fake)
    sent = [c.body for c in fake.completions]
    assert {c.query["chat_id"] for c in fake.completions} == {chat_id}
    assert sent[0]["parent_id"] is None
    # Turn 1 prepends the system message; turns 2 and 3 send only the newest user message.
    assert sent[0]["messages"][0]["content"] == "You are terse.\n\nHi, I am Ada."
    assert sent[1]["messages"][0]["content"] == "Question 2"
    assert sent[2]["messages"][0]["content"] == "Question 3"
    # parent_id of turn N+1 = the parent_id Qwen announced in turn N's response.created.
    assert sent[1]["parent_id"] is not None and sent[1]["parent_id"] == parents[1]
    assert sent[2]["parent_id"] is not None and sent[2]["parent_id"] == parents[2]
    assert sent[1]["parent_id"] != sent[2]["parent_id"]

    store = Store(db_path, migrate=False)
    await store.open()
    try:
        assert await store.read(conversation_rows.count) == 1
        rows = await store.read(
            lambda c: [tuple(r) for r in c.execute("SELECT * FROM qwen_conversations")]
        )
    finally:
        await store.close()
    record("qwen_conversations rows", repr(rows))  # scanned for secrets at the end
    assert rows[0][1] == chat_id and rows[0][4] == 3  # chat id, turns


def _chat_id(fake: FakeQwen) -> str:
    return next(iter(fake.chats))


async def test_unknown_continuation_starts_a_new_chat_with_the_whole_history(
    client: AsyncOpenAI, fake: FakeQwen
):
    fake.reply_pieces = split("Nice to meet you again.")
    history = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "My name is Grace."},
        {"role": "assistant", "content": "Hello Grace!"},
        {"role": "user", "content": "What is my name?"},
    ]
    answer = await ask(client, history, stream=True)
    assert answer == "Nice to meet you again."
    assert len(fake.new_chats) == 1
    sent = fake.completions[0].body
    assert sent["parent_id"] is None
    prompt = sent["messages"][0]["content"]
    for text in ("Be kind.", "My name is Grace.", "Hello Grace!", "What is my name?"):
        assert text in prompt
    assert prompt.index("My name is Grace.") < prompt.index("Hello Grace!")
    assert prompt.index("Hello Grace!") < prompt.index("What is my name?")

    # The folded chat is now known: the next turn continues it with only the new message.
    fake.reply_pieces = split("Sure.")
    history += [{"role": "assistant", "content": answer}, {"role": "user", "content": "Thanks"}]
    await ask(client, history, stream=False)
    assert len(fake.new_chats) == 1
    assert fake.completions[1].body["messages"][0]["content"] == "Thanks"
    assert fake.completions[1].body["parent_id"] is not None


async def test_edited_history_is_not_continued_blindly(client: AsyncOpenAI, fake: FakeQwen):
    fake.reply_pieces = split("One.")
    first = [{"role": "user", "content": "Count with me."}]
    await ask(client, first, stream=False)
    # Same first exchange, but the client dropped a turn the Qwen chat has: a new chat with
    # the history is the only way Qwen sees what the client sees.
    fake.reply_pieces = split("Two.")
    await ask(
        client,
        [*first, {"role": "assistant", "content": "One."}, {"role": "user", "content": "Next"}],
        False,
    )
    fake.reply_pieces = split("Again.")
    edited = [
        *first,
        {"role": "assistant", "content": "One."},
        {"role": "user", "content": "Next"},
        {"role": "assistant", "content": "Two."},
        {"role": "user", "content": "Next"},
        {"role": "assistant", "content": "Three (edited by the user)."},
        {"role": "user", "content": "And?"},
    ]
    await ask(client, edited, stream=False)
    assert len(fake.new_chats) == 2
    assert "Three (edited by the user)." in fake.completions[-1].body["messages"][0]["content"]
