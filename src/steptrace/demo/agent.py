"""One agent turn, instrumented with steptrace: the code a user of the SDK would write.

``travel_assistant`` (a ``run`` step) answers a travel question: it searches the guides
(``retrieval``) and checks the forecast (``tool``), concurrently when the question names a city,
then streams the answer from an OpenAI-compatible chat model through the real ``openai`` client.
The ``llm`` step comes from ``steptrace.instrument("openai")``; nothing here touches spans.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import steptrace
from steptrace.demo import weather
from steptrace.demo.knowledge import DocumentStore, find_city

#: Simulated network latency (seconds) of the vector store and the weather API, so the live
#: view has something to show; everything else is real work.
SEARCH_LATENCY_S = 0.25
WEATHER_LATENCY_S = 0.45

SYSTEM_PROMPT = (
    "You are a concise travel assistant. Answer the question in three to five sentences, "
    "using only the documents and the forecast given. Cite documents as [1], [2]."
)

_STORE = DocumentStore()


@dataclass
class TurnResult:
    """What one turn produced (``error`` is set when it failed)."""

    question: str
    answer: str = ""
    trace_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: BaseException | None = None


@steptrace.step(name="search_docs", type="retrieval", running_title="Searching the travel guides")
async def search_docs(query: str, k: int = 3) -> list[dict[str, Any]]:
    """The ``k`` guides that best match ``query`` (BM25 over an in-memory store)."""
    await asyncio.sleep(SEARCH_LATENCY_S)
    hits = _STORE.search(query, k)
    step = steptrace.current_step()
    if step is not None:
        titles = ", ".join(doc.title for doc, _ in hits)
        noun = "guide" if len(hits) == 1 else "guides"
        step.success_title = f"{len(hits)} {noun}: {titles}" if hits else "no matching guide"
        attributes: dict[str, Any] = {}
        for i, (doc, score) in enumerate(hits):  # OpenInference's retrieval attributes
            prefix = f"retrieval.documents.{i}.document"
            attributes.update(
                {f"{prefix}.id": doc.id, f"{prefix}.content": doc.text, f"{prefix}.score": score}
            )
        step.set_attributes(attributes)
    return [
        {"id": doc.id, "title": doc.title, "city": doc.city, "score": score, "text": doc.text}
        for doc, score in hits
    ]


@steptrace.step(name="get_weather", type="tool", running_title="Checking the forecast")
async def get_weather(city: str, days: int = 3) -> dict[str, Any]:
    """The forecast for ``city`` from the (offline) demo weather service."""
    await asyncio.sleep(WEATHER_LATENCY_S)
    report = weather.forecast(city, days)
    step = steptrace.current_step()
    if step is not None:
        step.success_title = weather.headline(report)
        step.set_attributes(
            {
                "tool.name": "get_weather",
                "tool.description": weather.DESCRIPTION,
                "tool.parameters": json.dumps(weather.PARAMETERS),
            }
        )
    return report


def build_messages(
    question: str, docs: list[dict[str, Any]], report: dict[str, Any] | None
) -> list[dict[str, str]]:
    """The chat request: the retrieved guides and the forecast as context for the question."""
    lines = [f"Question: {question}", "", "Documents:"]
    if docs:
        lines += [f"[{i}] {doc['title']}: {doc['text']}" for i, doc in enumerate(docs, 1)]
    else:
        lines.append("(none found)")
    lines.append("")
    lines.append(
        f"Forecast (get_weather): {json.dumps(report)}" if report else "Forecast: (no city given)"
    )
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "\n".join(lines)},
    ]


@contextlib.asynccontextmanager
async def _llm_step(model: str, manual: bool) -> AsyncIterator[steptrace.Step | None]:
    """A hand-made ``llm`` step, only when the openai auto-instrumentation is not active."""
    if not manual:
        yield None
        return
    async with steptrace.Step(name=f"chat {model}", type="llm") as step:
        yield step


async def ask_llm(
    client: Any, model: str, messages: list[dict[str, str]], result: TurnResult, *, manual: bool
) -> str:
    """Stream the answer; usage comes in the stream's last chunk (``include_usage``)."""
    parts: list[str] = []
    async with _llm_step(model, manual) as step:
        if step is not None:
            step.input = messages
        stream = await client.chat.completions.create(
            model=model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:  # the response is closed however the loop ends
            async for chunk in stream:
                if chunk.choices:
                    delta = chunk.choices[0].delta.content
                    if delta:
                        parts.append(delta)
                        if step is not None:
                            await step.stream_token(delta)
                if chunk.usage is not None:
                    result.input_tokens = chunk.usage.prompt_tokens
                    result.output_tokens = chunk.usage.completion_tokens
    return "".join(parts)


async def run_turn(
    question: str,
    client: Any,
    model: str,
    *,
    thread_id: str | None = None,
    turn: int = 1,
    manual_llm_step: bool = False,
) -> TurnResult:
    """Answer ``question``; the whole turn is one trace rooted at the ``travel_assistant`` step.

    A failure (the LLM refusing the key, a network error) ends the steps as failed and comes
    back in ``TurnResult.error`` rather than as an exception.
    """
    result = TurnResult(question)
    run = steptrace.Step(
        name="travel_assistant",
        type="run",
        thread_id=thread_id,
        tags=["demo"],
        metadata={"turn": turn, "model": model},
        show_input="markdown",
        default_open=True,
        collapsed_on_success=False,
    )
    run.input = question  # set before it starts, so the chat shows the question at once
    try:
        async with run:
            result.trace_id = run.trace_id
            city = find_city(question)
            if city is not None:
                docs, report = await asyncio.gather(search_docs(question), get_weather(city))
            else:  # no city named: the best guide's city, if it is about one
                docs = await search_docs(question)
                city = docs[0]["city"] if docs else None
                report = await get_weather(city) if city else None
            messages = build_messages(question, docs, report)
            result.answer = await ask_llm(client, model, messages, result, manual=manual_llm_step)
            run.output = result.answer
    except Exception as exc:  # recorded on the steps already; the caller reports it
        result.error = exc
    return result
