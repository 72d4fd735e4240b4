"""The soak: 100,000 steps with streamed tokens, the live bus on, RSS sampled as it goes.

Run in a fresh subprocess by ``test_soak.py``. Steps go through ``steptrace.configure()`` with an
exporter that discards (the SDK's batch processor in front of it), and one listener counts the
live events. Every ``--every`` steps: drain the bus and the exporter, collect garbage, record the
RSS. Prints one JSON line: the RSS checkpoints, the events seen, the steps that raised.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import steptrace


class CountingExporter(SpanExporter):
    """Counts the spans handed to it and keeps none of them."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--tokens", type=int, default=8)
    args = parser.parse_args()

    exporter = CountingExporter()
    steptrace.configure(exporter=exporter)
    events: dict[str, int] = {}

    def listener(event: str, payload: dict[str, Any]) -> None:
        events[event] = events.get(event, 0) + 1

    steptrace.add_listener(listener)
    tokens = [f"tok{i} " for i in range(args.tokens)]
    errors = 0
    checkpoints: list[tuple[int, int]] = []
    # Python heap still allocated after a flush and a collection: a leak shows here exactly,
    # while RSS also carries allocator arenas kept from the export queue's high-water mark.
    heap: list[tuple[int, int]] = []
    tracemalloc.start()
    started = time.perf_counter()
    done = 0
    while done < args.steps:
        # One conversation turn: a run step holding a retrieval and a streamed llm step.
        try:
            with steptrace.Step(name="turn", type="run", metadata={"turn": done}) as turn:
                turn.input = {"question": "why?", "n": done}
                with steptrace.Step(name="retrieve", type="retrieval", tags=["kb"]) as retrieve:
                    retrieve.output = ["doc-1", "doc-2"]
                with steptrace.Step(name="answer", type="llm") as answer:
                    for token in tokens:
                        answer.stream_token(token)
                turn.output = answer.output
        except Exception:
            errors += 1
        done += 3
        if done % args.every < 3:
            steptrace.flush()
            gc.collect()
            checkpoints.append((done, rss_bytes()))
            heap.append((done, tracemalloc.get_traced_memory()[0]))
    steptrace.flush()
    result = {
        "steps": done,
        "seconds": time.perf_counter() - started,
        "checkpoints": checkpoints,
        "heap": heap,
        "errors": errors,
        "events": events,
        "exported_spans": exporter.spans,
        "dropped_spans": steptrace.export_stats().dropped,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
