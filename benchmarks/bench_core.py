"""The core's cost against raw OpenTelemetry, measured side by side in one run (issue 2).

1. A Step with type, tags, metadata, input and output, against a raw SDK span carrying the same
   attributes (taken from a real steptrace span at start-up, so the two always match). Both on
   an SDK ``TracerProvider`` with a ``BatchSpanProcessor`` into an exporter that discards.
   Target: <= 1.25x.
2. The same Step with no SDK configured at all, against the same calls on the OpenTelemetry API's
   no-op span (no provider set). Target: <= 2x.
3. One step with 10,000 streamed tokens, against one raw span with 10,000 ``add_event`` calls
   (SDK provider as in 1). Target: <= 1.0x.

Also shown, without a target: 1 and 3 with one no-op listener attached (the live chat mirror
on), and the raw span of 1 through ``CountingBatchSpanProcessor`` (export accounting) against
the same through the SDK's ``BatchSpanProcessor``: the cost of counting.
Each measure: warm-up, then 21 runs of about 0.1 s interleaved with its baseline (many short
runs, so a burst of load from a neighbour on a shared machine hits both sides alike), median
time per operation (``time.perf_counter_ns``); the ratio is steptrace's median over the
baseline's. Batch processors get a queue of 100,000 spans so none is dropped mid-run.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from time import perf_counter_ns
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Batch, calibrate, fmt_ns, interleaved
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

import steptrace
from steptrace import _tracing

INPUT = "What is the capital of France? Answer in one word, then explain briefly."
OUTPUT = "Paris. It has been the capital since the 10th century, with short interruptions."
TAGS = ["retrieval", "cache-miss"]
METADATA = {"model": "gpt-4o-mini", "temperature": 0.2, "attempt": 1, "cached": False}
STREAM_TOKENS = [f" tok{i % 97:02d}" for i in range(10_000)]
OUTPUT_KEYS = ("output.value", "output.mime_type", "step.status")
QUEUE = 100_000  # batch processors' queue: big enough that no span is dropped mid-run


class DiscardingExporter(SpanExporter):
    """The sink of every pipeline here: exports succeed and go nowhere."""

    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def step_batch(n: int) -> int:
    Step = steptrace.Step
    t0 = perf_counter_ns()
    for _ in range(n):
        with Step(name="tool call", type="tool", tags=TAGS, metadata=METADATA) as step:
            step.input = INPUT
            step.output = OUTPUT
    return perf_counter_ns() - t0


def raw_span_batch(tracer: Any, attributes: dict[str, Any]) -> Batch:
    """Raw spans with ``attributes``: all at start but the output ones, set before the end
    (as an app sets an output it only has at the end)."""
    at_start = {k: v for k, v in attributes.items() if k not in OUTPUT_KEYS}
    at_end = {k: v for k, v in attributes.items() if k in OUTPUT_KEYS}

    def batch(n: int) -> int:
        start = tracer.start_as_current_span
        t0 = perf_counter_ns()
        for _ in range(n):
            with start("tool call", attributes=at_start) as span:
                span.set_attributes(at_end)
        return perf_counter_ns() - t0

    return batch


def stream_batch(n: int) -> int:
    Step, tokens = steptrace.Step, STREAM_TOKENS
    t0 = perf_counter_ns()
    for _ in range(n):
        with Step(name="llm", type="llm") as step:
            stream_token = step.stream_token
            for token in tokens:
                stream_token(token)
    return perf_counter_ns() - t0


def raw_events_batch(tracer: Any) -> Batch:
    def batch(n: int) -> int:
        tokens = STREAM_TOKENS
        t0 = perf_counter_ns()
        for _ in range(n):
            with tracer.start_as_current_span("llm") as span:
                add_event = span.add_event
                for token in tokens:
                    add_event("step.token", {"step.token.text": token})
        return perf_counter_ns() - t0

    return batch


def with_listener(batch: Batch) -> Batch:
    """``batch`` with one no-op listener attached, the bus drained inside the timing."""

    def listener(event: str, payload: dict[str, Any]) -> None:
        return None

    def run(n: int) -> int:
        steptrace.add_listener(listener)
        try:
            t0 = perf_counter_ns()
            batch(n)
            steptrace.flush()
            return perf_counter_ns() - t0
        finally:
            steptrace.remove_listener(listener)

    return run


def sample_step_attributes() -> dict[str, Any]:
    """The attributes steptrace records for the benchmarked step, from a real span."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _tracing.use_provider(provider)
    try:
        step_batch(1)
    finally:
        _tracing.use_provider(None)
    (span,) = memory.get_finished_spans()
    return dict(span.attributes or {})


Row = tuple[str, float, float, float | None]


def compare(
    label: str,
    ours: Batch,
    baseline: Batch,
    target: float | None,
    runs: int,
    target_s: float,
) -> Row:
    ops = min(calibrate(ours, target_s), calibrate(baseline, target_s))
    timings = interleaved({"ours": (ours, ops), "baseline": (baseline, ops)}, runs)
    return (label, timings["ours"].per_op_ns, timings["baseline"].per_op_ns, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 short runs (smoke test)")
    args = parser.parse_args(argv)
    runs, target_s = (3, 0.05) if args.quick else (21, 0.1)

    def run(label: str, ours: Batch, baseline: Batch, target: float | None) -> Row:
        return compare(label, ours, baseline, target, runs=runs, target_s=target_s)

    if _tracing.active_provider() is not None:
        print("bench_core: a TracerProvider is already set; run this in a fresh interpreter")
        return 2
    rows: list[Row] = []

    # 2. Nothing configured: steptrace against the API's no-op span, same calls.
    noop_tracer = trace.get_tracer("bench")
    attributes = sample_step_attributes()
    rows.append(
        run(
            "Step, no SDK configured / OTel no-op span",
            step_batch,
            raw_span_batch(noop_tracer, attributes),
            2.0,
        )
    )

    # 1 and 3: an SDK provider with a batch processor into a discarding exporter.
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter(), max_queue_size=QUEUE))
    trace.set_tracer_provider(provider)
    sdk_tracer = provider.get_tracer("bench")
    rows.append(
        run(
            "Step (type, tags, metadata, input, output) / raw SDK span, same attributes",
            step_batch,
            raw_span_batch(sdk_tracer, attributes),
            1.25,
        )
    )
    rows.append(
        run(
            "10,000 streamed tokens / 10,000 raw span.add_event",
            stream_batch,
            raw_events_batch(sdk_tracer),
            1.0,
        )
    )
    rows.append(
        run(
            "  same Step, one no-op listener attached / raw SDK span",
            with_listener(step_batch),
            raw_span_batch(sdk_tracer, attributes),
            None,
        )
    )
    rows.append(
        run(
            "  10,000 tokens, one no-op listener attached / raw add_event",
            with_listener(stream_batch),
            raw_events_batch(sdk_tracer),
            None,
        )
    )
    from steptrace._export_stats import CountingBatchSpanProcessor

    counting = TracerProvider()
    counting.add_span_processor(
        CountingBatchSpanProcessor(DiscardingExporter(), max_queue_size=QUEUE)
    )
    rows.append(
        run(
            "  raw SDK span: CountingBatchSpanProcessor / BatchSpanProcessor",
            raw_span_batch(counting.get_tracer("bench"), attributes),
            raw_span_batch(sdk_tracer, attributes),
            None,
        )
    )
    provider.shutdown()
    counting.shutdown()
    print_table(rows)
    return 0


def print_table(rows: list[Row]) -> None:
    print(
        f"steptrace core benchmark: Python {platform.python_version()}, "
        f"opentelemetry-sdk {_version('opentelemetry-sdk')}, steptrace {steptrace.__version__}"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'comparison':<{width}}  {'steptrace':>10}  {'baseline':>10}  {'ratio':>6}  target")
    for label, ours, base, target in rows:
        ratio = ours / base if base else float("inf")
        verdict = ""
        if target is not None:
            verdict = f"<= {target:g}x " + ("met" if ratio <= target else "MISSED")
        times = f"{fmt_ns(ours):>10}  {fmt_ns(base):>10}"
        print(f"{label:<{width}}  {times}  {ratio:>5.2f}x  {verdict}")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    raise SystemExit(main())
