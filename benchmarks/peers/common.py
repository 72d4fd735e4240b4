"""What every suite shares: the workload data, the ``Impl`` interface, and the raw OTel floor.

Workloads, the same data for everyone:

(a) ``nested``: one iteration = a parent step (type ``run``) holding one nested step that
    carries a type (``tool``), tags, metadata (4 keys), an input and an output; both end.
(b) ``stream``: one iteration = one step with 1,000 streamed tokens (~6 chars each), then ends.
(c) ``memory``: one root step holding 10,000 nested steps, each as in (a), created and ended in
    sequence; peak memory over the run, including the export pipeline draining it.

Stdlib only at import time: the same file is imported in every peer's virtualenv.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

INPUT = "What is the capital of France? Answer in one word, then explain briefly."
OUTPUT = "Paris. It has been the capital since the 10th century, with short interruptions."
TAGS = ["retrieval", "cache-miss"]
METADATA = {"model": "gpt-4o-mini", "temperature": 0.2, "attempt": 1, "cached": False}
TOKENS = [f" tok{i % 97:02d}" for i in range(1_000)]
MEMORY_STEPS = 10_000


class Impl:
    """One way of doing the workloads. Batches return elapsed nanoseconds."""

    name = ""
    mode = "sync"
    describe = ""
    packages: tuple[str, ...] = ()
    memory_steps = MEMORY_STEPS

    def setup(self) -> None:
        """Process-level configuration, once, before anything is measured."""

    def nested(self, n: int) -> int:
        raise NotImplementedError

    def stream(self, n: int) -> int:
        raise NotImplementedError

    def memory(self) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Drain the pipeline (so memory held by it counts, and nothing leaks between runs)."""


_the_loop: asyncio.AbstractEventLoop | None = None


def run_async(coro_factory: Callable[[], Any]) -> Any:
    """Run a coroutine on this suite's one event loop (created once, reused by every batch)."""
    global _the_loop
    if _the_loop is None:
        _the_loop = asyncio.new_event_loop()
    return _the_loop.run_until_complete(coro_factory())


# --- OpenTelemetry SDK ---------------------------------------------------------------------------


def noop_exporter() -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class NoopExporter(SpanExporter):
        """Discards every batch: the sink all OTel-based pipelines here end in."""

        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    return NoopExporter()


MEMORY_MODE = False
"""Set by ``workload.py --memory``: pipelines export synchronously (see ``span_processor``)."""


def span_processor() -> Any:
    """The processor in front of the no-op exporter: the SDK's ``BatchSpanProcessor`` for
    timing; a ``SimpleSpanProcessor`` for memory, because a batch queue's backlog (up to 2,048
    ended spans, how many depends on when its worker thread gets the CPU) would swamp the
    memory the libraries themselves hold."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if MEMORY_MODE:
        return SimpleSpanProcessor(noop_exporter())
    return BatchSpanProcessor(noop_exporter())


def sdk_provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    provider.add_span_processor(span_processor())
    return provider


def _step_attributes(kind: str) -> dict[str, Any]:
    """The attributes a steptrace step of this kind carries (DESIGN.md's span mapping)."""
    attributes: dict[str, Any] = {
        "step.id": "0b7e5c1e-6a3f-4a8e-9d51-3f9e2f1c7a10",
        "step.type": kind,
        "openinference.span.kind": "TOOL" if kind == "tool" else "CHAIN",
    }
    return attributes


class OtelImpl(Impl):
    """Raw OpenTelemetry SDK: the floor. Same attributes as a steptrace span, set by hand."""

    name = "otel"
    describe = (
        "SDK TracerProvider + BatchSpanProcessor (SimpleSpanProcessor for (c)) -> no-op "
        "exporter; start_as_current_span with "
        "the same attributes as steptrace's spans (ids, type, tags, metadata, input/output with "
        "mime types, status); (b) one add_event('step.token', text) per token"
    )
    packages = ("opentelemetry-sdk",)

    def __init__(self, global_provider: bool) -> None:
        self._global = global_provider

    def setup(self) -> None:
        from opentelemetry import trace

        if self._global:
            if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                self.provider = trace.get_tracer_provider()
            else:
                self.provider = sdk_provider()
                trace.set_tracer_provider(self.provider)
        else:
            self.provider = sdk_provider()
        self.tracer = self.provider.get_tracer("bench")
        child = _step_attributes("tool")
        child["step.tags"] = tuple(TAGS)
        child.update({f"step.metadata.{k}": v for k, v in METADATA.items()})
        self.child_attributes = child
        self.parent_attributes = _step_attributes("run")

    def nested(self, n: int) -> int:
        tracer, clock = self.tracer, perf_counter_ns
        parent_attrs, child_attrs = self.parent_attributes, self.child_attributes
        t0 = clock()
        for _ in range(n):
            with tracer.start_as_current_span("parent", attributes=parent_attrs) as parent:
                with tracer.start_as_current_span("child", attributes=child_attrs) as span:
                    span.set_attribute("input.value", INPUT)
                    span.set_attribute("input.mime_type", "text/plain")
                    span.set_attribute("output.value", OUTPUT)
                    span.set_attribute("output.mime_type", "text/plain")
                    span.set_attribute("step.status", "success")
                parent.set_attribute("step.status", "success")
        return clock() - t0

    def stream(self, n: int) -> int:
        tracer, clock, tokens = self.tracer, perf_counter_ns, TOKENS
        attrs = self.parent_attributes
        t0 = clock()
        for _ in range(n):
            with tracer.start_as_current_span("llm", attributes=attrs) as span:
                for token in tokens:
                    span.add_event("step.token", {"step.token.text": token})
        return clock() - t0

    def memory(self) -> None:
        with self.tracer.start_as_current_span("root", attributes=self.parent_attributes):
            self.nested_children(self.memory_steps)
        self.flush()

    def nested_children(self, n: int) -> None:
        tracer, child_attrs = self.tracer, self.child_attributes
        for _ in range(n):
            with tracer.start_as_current_span("child", attributes=child_attrs) as span:
                span.set_attribute("input.value", INPUT)
                span.set_attribute("input.mime_type", "text/plain")
                span.set_attribute("output.value", OUTPUT)
                span.set_attribute("output.mime_type", "text/plain")
                span.set_attribute("step.status", "success")

    def flush(self) -> None:
        self.provider.force_flush()
