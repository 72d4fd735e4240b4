"""The async twin of ``app.py``: the ChatInterface callback is a coroutine run on the event loop,
its steps are ``async with`` steps, and a blocking part runs in ``asyncio.to_thread``."""

from __future__ import annotations

import asyncio

import panel as pn
import steptrace_panel

import steptrace

pn.extension()


@steptrace.step(name="blocking lookup", type="retrieval", collapsed_on_success=False)
def blocking_lookup(query: str) -> str:
    return f"looked up {query}"


async def respond(contents: str, user: str, instance: pn.chat.ChatInterface) -> str:
    async with steptrace.Step(
        name="plan", type="run", success_title="Planned (async)", collapsed_on_success=False
    ):
        await asyncio.to_thread(blocking_lookup, contents)
        async with steptrace.Step(name="answer", type="llm", collapsed_on_success=False) as llm:
            for token in ["async ", "answer"]:
                await llm.stream_token(token)
                await asyncio.sleep(0.02)
    return f"done {contents}"


chat = pn.chat.ChatInterface(callback=respond)
steptrace_panel.attach(chat)
chat.servable()
