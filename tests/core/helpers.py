"""Helpers shared by the core tests: a recording listener and finished-span look-ups."""

from __future__ import annotations

import threading

import steptrace

#: The Chainlit StepDict keys every live step dict carries (DESIGN.md, the chat UI channel).
CHAINLIT_KEYS = frozenset(
    [
        "id",
        "name",
        "type",
        "threadId",
        "parentId",
        "input",
        "output",
        "isError",
        "streaming",
        "metadata",
        "tags",
        "createdAt",
        "start",
        "end",
        "language",
        "showInput",
        "defaultOpen",
        "autoCollapse",
    ]
)
#: steptrace's additions the contract names.
STEPTRACE_KEYS = frozenset({"status", "title", "traceId", "spanId"})


class Recorder:
    """A listener keeping every live event (payloads copied when they arrive)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self._lock = threading.Lock()

    def __call__(self, event: str, payload: dict) -> None:
        with self._lock:
            self.events.append((event, dict(payload)))

    def of(self, step_id: str) -> list[tuple[str, dict]]:
        steptrace.flush()
        with self._lock:
            return [(e, p) for e, p in self.events if p.get("id") == step_id]

    def names_of(self, step_id: str) -> list[str]:
        return [e for e, _ in self.of(step_id)]


def finished(spans, name: str):
    """The one finished span called ``name``."""
    matching = [s for s in spans.get_finished_spans() if s.name == name]
    assert len(matching) == 1, [s.name for s in spans.get_finished_spans()]
    return matching[0]


def attrs(spans, name: str) -> dict:
    return dict(finished(spans, name).attributes)
