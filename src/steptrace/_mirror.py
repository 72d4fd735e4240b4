"""Spans that steptrace did not create (other OpenTelemetry instrumentations) mirrored as steps.

A span processor added to the SDK provider in use (the app's or the one ``configure()`` built,
never replacing either) turns foreign spans into ``new_message`` at start and ``update_message``
at end, nested under the step that was current when they started. They carry no tokens.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from steptrace import _context, _live, _tracing
from steptrace._serialize import iso_utc as _iso
from steptrace._serialize import to_text

logger = logging.getLogger("steptrace")

_KIND_TO_TYPE = {
    "LLM": "llm",
    "TOOL": "tool",
    "RETRIEVER": "retrieval",
    "EMBEDDING": "embedding",
    "RERANKER": "rerank",
    "CHAIN": "undefined",
    "AGENT": "run",
}

_mirrored: weakref.WeakSet[Any] = weakref.WeakSet()
_lock = threading.Lock()


def ensure_mirroring() -> None:
    """Add the mirror processor to the SDK provider in use, once per provider."""
    provider = _tracing.active_provider()
    if provider is None or provider in _mirrored:
        return
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        return
    with _lock:
        if provider in _mirrored:
            return
        add(ForeignSpanMirror())
        _mirrored.add(provider)


def _step_type(attributes: Any) -> str:
    kind = attributes.get("openinference.span.kind") if attributes else None
    if isinstance(kind, str) and kind in _KIND_TO_TYPE:
        return _KIND_TO_TYPE[kind]
    if attributes and attributes.get("gen_ai.operation.name") in ("chat", "text_completion"):
        return "llm"
    if attributes and attributes.get("gen_ai.operation.name") == "execute_tool":
        return "tool"
    return "undefined"


class ForeignSpanMirror(SpanProcessor):
    """Publishes foreign spans on the live bus while anyone listens."""

    def __init__(self) -> None:
        self._open: dict[int, tuple[str | None, str | None]] = {}
        # span id of a duplicate llm span → the steptrace llm step standing for it
        self._aliases: dict[int, str] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not _live.BUS.listeners:
            return
        scope = span.instrumentation_scope
        if scope is not None and scope.name == _tracing.SCOPE:
            return
        try:
            self._started(span, parent_context)
        except Exception:
            logger.exception("steptrace: mirroring a foreign span failed")

    def _started(self, span: Span, parent_context: Context | None) -> None:
        from opentelemetry import context as otel_context

        ctx = parent_context if parent_context is not None else otel_context.get_current()
        step = ctx.get(_context.STEP_KEY)
        parent = span.parent
        parent_id: str | None = None
        thread_id: str | None = None
        if step is not None:
            thread_id = step.thread_id  # type: ignore[attr-defined]
        if parent is not None and parent.is_valid:
            step_span = getattr(step, "_span", None)
            if (
                step is not None
                and step_span is not None
                and (step_span.get_span_context().span_id == parent.span_id)
            ):
                parent_id = step.id  # type: ignore[attr-defined]
            else:
                parent_id = format(parent.span_id, "016x")
        if parent is not None and parent.span_id in self._aliases:
            parent_id = self._aliases[parent.span_id]
        span_id = span.get_span_context().span_id
        if (
            step is not None
            and parent_id == step.id  # type: ignore[attr-defined]
            and step.type == "llm"  # type: ignore[attr-defined]
            and _step_type(span.attributes) == "llm"
        ):
            # A client library's own span for the call steptrace already shows as an llm step
            # (anthropic traces itself): not a second step; its children nest under ours.
            self._aliases[span_id] = parent_id
            return
        if thread_id is None:
            thread_id = _context.provided_thread_id()
        self._open[span_id] = (parent_id, thread_id)
        _live.BUS.publish(_live.NEW, _span_dict(span, parent_id, thread_id, ended=False))

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.get_span_context()
        if ctx is None:
            return
        self._aliases.pop(ctx.span_id, None)
        known = self._open.pop(ctx.span_id, None)
        if known is None or not _live.BUS.listeners:
            return
        try:
            _live.BUS.publish(_live.UPDATE, _span_dict(span, known[0], known[1], ended=True))
        except Exception:
            logger.exception("steptrace: mirroring a foreign span failed")

    def shutdown(self) -> None:
        self._open.clear()
        self._aliases.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _span_dict(
    span: ReadableSpan, parent_id: str | None, thread_id: str | None, *, ended: bool
) -> dict[str, Any]:
    ctx = span.get_span_context()
    attributes = span.attributes or {}
    failed = ended and span.status is not None and span.status.status_code == StatusCode.ERROR
    status = ("failed" if failed else "success") if ended else "running"
    start_ns = span.start_time or time.time_ns()
    end_ns = span.end_time if ended else None
    output = attributes.get("output.value", "")
    if failed and not output and span.status.description:
        output = span.status.description
    return {
        "id": format(ctx.span_id, "016x"),
        "name": span.name,
        "type": _step_type(attributes),
        "threadId": thread_id,
        "parentId": parent_id,
        "input": to_text(attributes.get("input.value", "")),
        "output": to_text(output),
        "isError": failed,
        "streaming": False,
        "metadata": {"otel.scope": span.instrumentation_scope.name}
        if span.instrumentation_scope is not None
        else {},
        "tags": None,
        "createdAt": _iso(start_ns),
        "start": _iso(start_ns),
        "end": _iso(end_ns),
        "language": None,
        "showInput": "json",
        "defaultOpen": False,
        "autoCollapse": False,
        "generation": None,
        "status": status,
        "title": "",
        "traceId": format(ctx.trace_id, "032x"),
        "spanId": format(ctx.span_id, "016x"),
        "icon": None,
        "collapsedOnSuccess": True,
        "timeToFirstToken": None,
        "duration": (end_ns - start_ns) / 1e9 if end_ns is not None else None,
        "foreign": True,
    }
