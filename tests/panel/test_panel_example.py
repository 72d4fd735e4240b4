"""``examples/panel_app.py``'s callback, run against its real ChatInterface."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from panel.chat import ChatStep
from panel.pane import Markdown

import steptrace

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "panel_app.py"


def test_the_example_shows_nested_cards_in_its_chat() -> None:
    spec = importlib.util.spec_from_file_location("steptrace_panel_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    try:
        reply = example.respond("what is panel", "User", example.chat)
        steptrace.flush()
        (message,) = example.chat.objects
        (run,) = [obj for obj in message.object.objects if isinstance(obj, ChatStep)]
        assert run.title == "Answered"
        assert run.status == "success"
        nested = [obj for obj in run.objects if isinstance(obj, ChatStep)]
        assert [card.title for card in nested] == ["search documents", "draft answer"]
        assert all(card.status == "success" for card in nested)
        draft_texts = [str(obj.object) for obj in nested[1].objects if isinstance(obj, Markdown)]
        assert draft_texts[-1].strip() == reply.strip()
        assert "Panel builds data apps" in reply
    finally:
        example.exporter.detach()
