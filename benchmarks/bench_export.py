"""Export throughput over OTLP, and what is dropped when the app outruns the exporter.

Steps (a ``tool`` step with type, tags, metadata, input and output, no tokens) are produced as
fast as one thread can, through the real OTLP exporter (HTTP/protobuf, then gRPC) to a local
receiver running in a child process (so it does not share this process's GIL) that decodes
every request with ``opentelemetry-proto`` and counts the spans. For each protocol:

- ``throughput``: ``CountingBatchSpanProcessor`` with a queue big enough for every step, so
  nothing drops: steps/s produced, and steps/s exported end to end (from the first step to the
  receiver having counted the last one).
- ``outrun``: a slow backend (every export request answered after ``--latency`` s, 0.25 by
  default: a distant or overloaded collector) and the SDK's default queue (2,048 spans,
  OTEL_BSP_MAX_QUEUE_SIZE): the producer outruns the exporter. ``steptrace.export_stats()``'s
  ``dropped`` must equal what never reached the receiver.
- ``sdk-bsp``: the same slow backend with the SDK's plain ``BatchSpanProcessor``, for
  comparison: its drops show only as the difference at the receiver, and as the SDK's
  "Queue full, dropping Span." warning, logged at most once per 20 s and without a count.
  (Warnings are counted here, not printed; each run starts as a fresh process would, with
  steptrace's one-time warning not yet given.)

In one process the exporter thread and the producer share the GIL, so "exported/s" in the
``throughput`` rows is what a busy single-threaded app gets, not the exporter's ceiling.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "reliability")]

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanProcessor  # noqa: E402
from receivers import ReceiverProcess  # type: ignore[import-not-found]  # noqa: E402

import steptrace  # noqa: E402
from steptrace import _export_stats, _tracing  # noqa: E402
from steptrace._export_stats import CountingBatchSpanProcessor  # noqa: E402

INPUT = "What is the capital of France? Answer in one word, then explain briefly."
OUTPUT = "Paris. It has been the capital since the 10th century, with short interruptions."
TAGS = ["retrieval", "cache-miss"]
METADATA = {"model": "gpt-4o-mini", "temperature": 0.2, "attempt": 1, "cached": False}


def exporter_for(protocol: str, endpoint: str) -> Any:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    return Http(endpoint=f"{endpoint}/v1/traces")


@dataclass
class Result:
    protocol: str
    pipeline: str
    produced: int
    produce_s: float
    received: int
    export_s: float
    stats: Any  # ExportStats, or None for the SDK's processor
    warnings: int  # log records at WARNING and above during the run

    @property
    def dropped_reported(self) -> str:
        return "—" if self.stats is None else str(self.stats.dropped)


class CountingHandler(logging.Handler):
    """Counts warnings instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def run(protocol: str, pipeline: str, steps: int, latency_s: float) -> Result:
    latency = 0.0 if pipeline == "throughput" else latency_s
    root = logging.getLogger()
    handler, saved = CountingHandler(), root.handlers[:]
    root.handlers = [handler]
    try:
        return _run(protocol, pipeline, steps, latency, handler)
    finally:
        root.handlers = saved


def _run(
    protocol: str, pipeline: str, steps: int, latency: float, handler: CountingHandler
) -> Result:
    kind = "grpc" if protocol == "grpc" else "http"
    _export_stats._warned = False  # as in a fresh process
    with ReceiverProcess(kind, latency_s=latency) as receiver:
        exporter = exporter_for(protocol, receiver.endpoint)
        processor: SpanProcessor
        if pipeline == "throughput":
            processor = CountingBatchSpanProcessor(exporter, max_queue_size=steps + 1)
        elif pipeline == "outrun":
            processor = CountingBatchSpanProcessor(exporter)
        else:
            processor = BatchSpanProcessor(exporter)
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(processor)
        _tracing.use_provider(provider)
        try:
            Step = steptrace.Step
            started = time.perf_counter()
            for _ in range(steps):
                with Step(name="tool call", type="tool", tags=TAGS, metadata=METADATA) as step:
                    step.input = INPUT
                    step.output = OUTPUT
            produced_at = time.perf_counter()
            provider.force_flush(60_000)
            received = receiver.wait_for_spans(steps, timeout=120, idle=3)
            # The last span's arrival, not the idle wait, ends the export time.
            done_at = max(produced_at, receiver.last_change_at)
            stats = None
            if isinstance(processor, CountingBatchSpanProcessor):
                stats = processor.export_stats()
        finally:
            _tracing.use_provider(None)
            provider.shutdown()
    produce_s, export_s = produced_at - started, done_at - started
    return Result(protocol, pipeline, steps, produce_s, received, export_s, stats, handler.count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.25, help="slow backend, s/request")
    parser.add_argument("--quick", action="store_true", help="5,000 steps")
    args = parser.parse_args(argv)
    steps = 5_000 if args.quick else args.steps
    results = [
        run(protocol, pipeline, steps, args.latency)
        for protocol in ("http/protobuf", "grpc")
        for pipeline in ("throughput", "outrun", "sdk-bsp")
    ]
    print_table(results)
    return 0


def print_table(results: list[Result]) -> None:
    print(
        f"## OTLP export: Python {platform.python_version()}, steptrace {steptrace.__version__}, "
        "receiver in a child process on 127.0.0.1\n"
    )
    print(
        "| protocol | pipeline | steps | produced/s | exported (receiver) | exported/s "
        "| dropped (export_stats) | lost (produced - received) | warnings logged |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.protocol} | {r.pipeline} | {r.produced:,} | {r.produced / r.produce_s:,.0f} "
            f"| {r.received:,} | {r.received / r.export_s:,.0f} | {r.dropped_reported} "
            f"| {r.produced - r.received:,} | {r.warnings:,} |"
        )
    print()
    for r in results:
        if r.stats is not None:
            print(f"- {r.protocol} {r.pipeline}: steptrace.export_stats() -> {r.stats}")


if __name__ == "__main__":
    raise SystemExit(main())
