"""A Panel chat whose steps are steptrace Steps: one instrumentation for Panel and OTLP.

Run it:

    .venv/bin/panel serve examples/panel_app.py --show

Each step shows up live as a ``ChatStep`` card (status badge, title, streamed text, nested
steps) in this session's chat, and is exported as an OpenTelemetry span (set
``OTEL_EXPORTER_OTLP_ENDPOINT`` for Jaeger or any OTLP backend). The "LLM" is a stand-in that
streams a canned answer, so no API key is needed.
"""

from __future__ import annotations

import time

import panel as pn
import steptrace_panel

import steptrace

pn.extension()
steptrace.configure(service_name="panel-example")

DOCUMENTS = {
    "panel": "Panel builds data apps and chat UIs in Python.",
    "opentelemetry": "OpenTelemetry is the open standard for traces, metrics and logs.",
    "steptrace": "steptrace makes every step of an LLM app a span and a live chat step.",
}


@steptrace.step(name="search documents", type="retrieval")
def search(question: str) -> list[str]:
    time.sleep(0.3)
    words = question.lower().split()
    return [text for key, text in DOCUMENTS.items() if key in words] or list(DOCUMENTS.values())


def respond(contents: str, user: str, instance: pn.chat.ChatInterface) -> str:
    """Panel runs this sync callback in a worker thread; the steps still reach this chat."""
    with steptrace.Step(
        name="answer the question",
        type="run",
        running_title="Answering...",
        success_title="Answered",
    ) as run:
        run.input = contents
        hits = search(contents)
        with steptrace.Step(name="draft answer", type="llm", running_title="Writing...") as llm:
            llm.input = "\n".join(hits)
            for word in f"Based on {len(hits)} document(s): {' '.join(hits)}".split(" "):
                llm.stream(word + " ")
                time.sleep(0.03)
        run.output = llm.output
    return str(llm.output)


chat = pn.chat.ChatInterface(callback=respond, callback_exception="verbose")
exporter = steptrace_panel.attach(chat)  # the one line: steptrace steps -> this chat
chat.servable(title="steptrace + Panel")
