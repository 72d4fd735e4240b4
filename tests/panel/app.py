"""The Panel app the browser test serves (``panel serve tests/panel/app.py``).

A ChatInterface whose sync callback (Panel runs it in a worker thread) opens plain steptrace
steps: a run with a nested tool step and a streamed llm step, then a step that fails. Cards
stay open on success so the browser can read them.
"""

from __future__ import annotations

import time

import panel as pn
import steptrace_panel

import steptrace

pn.extension()

ANSWER_TOKENS = ["The ", "answer ", "is ", "42."]


def respond(contents: str, user: str, instance: pn.chat.ChatInterface) -> str:
    with steptrace.Step(
        name="plan",
        type="run",
        running_title="Planning",
        success_title="Planned",
        collapsed_on_success=False,
    ):
        with steptrace.Step(name="search", type="tool", collapsed_on_success=False) as search:
            search.output = f"searched for {contents}"
        with steptrace.Step(name="answer", type="llm", collapsed_on_success=False) as llm:
            for token in ANSWER_TOKENS:
                llm.stream(token)
                time.sleep(0.02)
    try:
        with steptrace.Step(name="fragile") as fragile:
            fragile.stream("partial output")
            raise ValueError("boom")
    except ValueError:
        pass
    return f"done {contents}"


chat = pn.chat.ChatInterface(callback=respond)
steptrace_panel.attach(chat)
chat.servable()
