"""A Chainlit app whose steps are steptrace Steps: one instrumentation for Chainlit and OTLP.

Run it (from this directory, so Chainlit finds ``.chainlit/config.toml``):

    cd examples
    ../.venv-chainlit/bin/chainlit run chainlit_app.py

Every step below shows up live in the user's Chainlit session, nested under the message that
started it, and is exported as an OpenTelemetry span (set ``OTEL_EXPORTER_OTLP_ENDPOINT`` for
Jaeger or any OTLP backend; ``OTEL_TRACES_EXPORTER=console`` prints them). The "LLM" is a
stand-in that streams a canned answer, so no API key is needed; with ``steptrace.instrument()``
real OpenAI / Anthropic calls become streamed ``llm`` steps the same way.
"""

from __future__ import annotations

import asyncio
import time

import chainlit as cl
import steptrace_chainlit

import steptrace

steptrace.configure(service_name="chainlit-example")
steptrace_chainlit.enable()  # the one line: steptrace steps -> this Chainlit app's sessions

DOCUMENTS = {
    "chainlit": "Chainlit builds chat UIs for LLM apps in Python.",
    "opentelemetry": "OpenTelemetry is the open standard for traces, metrics and logs.",
    "steptrace": "steptrace makes every step of an LLM app a span and a live chat step.",
}


@steptrace.step(name="search documents", type="retrieval")
def search(question: str) -> list[str]:
    """Blocking work: it runs in a worker thread (cl.make_async) and is still shown."""
    time.sleep(0.3)
    words = question.lower().split()
    return [text for key, text in DOCUMENTS.items() if key in words] or list(DOCUMENTS.values())


async def fake_llm(prompt: str) -> list[str]:
    await asyncio.sleep(0.2)
    return f"Based on {prompt.count(chr(10)) + 1} document(s): {prompt}".split(" ")


@cl.on_message
async def on_message(message: cl.Message) -> None:
    async with steptrace.Step(name="answer the question", type="run") as run:
        run.input = message.content
        hits = await cl.make_async(search)(message.content)

        async with steptrace.Step(name="draft answer", type="llm") as llm:
            llm.input = "\n".join(hits)
            for word in await fake_llm(llm.input):
                await llm.stream_token(word + " ")
                await asyncio.sleep(0.03)
        run.output = llm.output
    await cl.Message(content=str(llm.output)).send()
