"""The Chainlit app the integration tests drive (``chainlit run tests/chainlit/app.py``).

Each user message names a scenario; the handler runs it with plain steptrace steps:

- ``plan <who>``: an async step containing a sync step, a ``cl.make_async`` worker step, a
  ``run_in_executor`` worker step and a streamed ``llm`` step; then a falsy-returning decorated
  step, a top-level ``cl.make_async`` worker step, and an assistant message ``done <who>``.
- ``fail``: a step streams ``partial`` and then raises.
- ``slow``: a step streams until the user presses Stop; a message after it must never be sent.
- ``executor``: a top-level step in a ``run_in_executor`` thread (no step around it).
- ``remove``: a step with a child, then ``remove()`` on it; then a step ``kept``.
- ``llm``: OpenAI calls made through ``steptrace.instrument("openai")`` against an
  OpenAI-compatible endpoint this app serves itself on loopback: a streamed async call on the
  event loop, and a plain sync call in a ``cl.make_async`` worker thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator

import chainlit as cl
import openai
import steptrace_chainlit
from chainlit.config import config
from chainlit.server import app
from fastapi.responses import JSONResponse, StreamingResponse

import steptrace

steptrace.configure(exporter="none")  # real SDK spans (trace ids), exported nowhere
steptrace.instrument("openai")
steptrace_chainlit.enable()

ANSWER_TOKENS = ["The ", "answer ", "is ", "42", "."]


@steptrace.step(name="lookup", type="retrieval")
def blocking_lookup(query: str) -> str:
    """Sync work in a worker thread (``cl.make_async``)."""
    time.sleep(0.01)
    return f"found {query} in {threading.current_thread().name != 'MainThread'}"


def blocking_tool(query: str) -> str:
    """Sync work in a ``run_in_executor`` thread, with its own step."""
    with steptrace.Step(name="executor-tool", type="tool") as step:
        step.input = query
        step.output = f"tool ran for {query}"
    return step.output


@steptrace.step(name="count", type="tool")
def count_nothing() -> int:
    return 0


async def plan(who: str) -> None:
    async with steptrace.Step(name="plan", type="run") as outer:
        outer.input = who
        with steptrace.Step(name="sync-inner", type="tool") as inner:
            inner.output = f"sync for {who}"
        await cl.make_async(blocking_lookup)(who)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, blocking_tool, who)
        async with steptrace.Step(name="answer", type="llm") as llm:
            for token in ANSWER_TOKENS:
                await llm.stream_token(token)
                await asyncio.sleep(0.01)
        outer.output = f"planned for {who}"
    count_nothing()
    await cl.make_async(blocking_lookup)(f"{who}-top")
    await cl.Message(content=f"done {who}").send()


async def fail() -> None:
    async with steptrace.Step(name="fragile", type="tool") as step:
        await step.stream_token("partial ")
        await step.stream_token("output")
        raise ValueError("boom")


async def slow() -> None:
    async with steptrace.Step(name="slow", type="llm") as step:
        for i in range(100_000):
            await step.stream_token(f"t{i} ")
            await asyncio.sleep(0.02)
    await cl.Message(content="after slow").send()


async def executor_top_level() -> None:
    def work() -> str | None:
        with steptrace.Step(name="executor-top", type="tool") as step:
            step.output = "ran"
        return step.thread_id

    thread_id = await asyncio.get_running_loop().run_in_executor(None, work)
    await cl.Message(content=f"executor done in thread {thread_id}").send()


LLM_TOKENS = ["Hello", " from", " the", " fake", " model."]


def _chunk(delta: dict[str, str], finish: str | None = None) -> str:
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


@app.post("/fake-openai/v1/chat/completions")
async def fake_chat_completions(body: dict) -> object:  # type: ignore[type-arg]
    """A minimal OpenAI chat completions endpoint (streamed or not) for the llm scenario."""
    if not body.get("stream"):
        return JSONResponse(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": "fake-model",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "sync reply"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            }
        )

    async def events() -> AsyncIterator[str]:
        yield _chunk({"role": "assistant", "content": ""})
        for token in LLM_TOKENS:
            await asyncio.sleep(0.01)
            yield _chunk({"content": token})
        yield _chunk({}, finish="stop")
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def fake_openai_url() -> str:
    return f"http://127.0.0.1:{config.run.port}/fake-openai/v1"


def sync_llm_call(prompt: str) -> str:
    client = openai.OpenAI(base_url=fake_openai_url(), api_key="test", max_retries=0)
    reply = client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": prompt}]
    )
    return str(reply.choices[0].message.content)


async def llm_calls() -> None:
    client = openai.AsyncOpenAI(base_url=fake_openai_url(), api_key="test", max_retries=0)
    stream = await client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    sync_text = await cl.make_async(sync_llm_call)("hi from a thread")
    await cl.Message(content=f"llm done: {text} / {sync_text}").send()


async def remove_step() -> None:
    async with steptrace.Step(name="temporary") as temporary:
        with steptrace.Step(name="temporary-child"):
            pass
    await temporary.remove()
    with steptrace.Step(name="kept"):
        pass
    await cl.Message(content="remove done").send()


@cl.on_message
async def on_message(message: cl.Message) -> None:
    command, _, argument = message.content.partition(" ")
    if command == "plan":
        await plan(argument)
    elif command == "fail":
        await fail()
    elif command == "slow":
        await slow()
    elif command == "executor":
        await executor_top_level()
    elif command == "remove":
        await remove_step()
    elif command == "llm":
        await llm_calls()
