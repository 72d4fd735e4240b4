"""The cost of LLM auto-instrumentation against the raw client, measured in one run (issue 3).

Real ``openai`` and ``anthropic`` clients talk to the local servers of ``steptrace.testing``
(loopback, no network), once uninstrumented (the baseline) and once instrumented, interleaved
run by run so drift hits both alike. steptrace reports to an SDK ``TracerProvider`` with a
``BatchSpanProcessor`` into an exporter that discards.

1. Per streamed chunk: iterating a stream of 1,000 text chunks, timed from the first chunk to
   the end (the server has already written the whole answer, so this is the client's own
   per-chunk work: SSE decoding, JSON, model objects, plus ours). Target: <= 1.10x.
   Also shown, without a target: with one no-op listener attached (the live chat mirror on),
   and with message content capture off.
2. Per non-streaming call: one ``create()`` round trip to the local server; shown with the
   absolute overhead per call, without a target (the loopback round trip is far cheaper than
   any real provider's, so this is the worst case for the ratio).
3. steptrace's own work, isolated from I/O and from the machine's noise: per chunk (the stream
   proxy and the recording of chunks the client already parsed) and per non-streamed call (the
   step with its attributes over an already-parsed response); best of 20.

Two clocks: CPU time of this process (all its threads: the caller's, steptrace's live-event
dispatcher and span processor, the local server's) -- the cost, and robust on a shared machine
-- and wall-clock time, which other processes' load makes noisier. The ratio and the target
verdict use CPU time; the wall-clock ratio is printed beside it. Each row: median per operation
over the runs, the variants interleaved run by run.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter_ns, process_time_ns
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anthropic
import openai
from _harness import fmt_ns
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import steptrace
from steptrace import _tracing
from steptrace.testing import AnthropicServer, OpenAIServer, Reply

CHUNKS = 1_000
PIECES = [f"tok{i % 97:02d} " for i in range(CHUNKS)]
MESSAGES = [{"role": "user", "content": "Stream a long answer, please."}]
SHORT = Reply(text="A short answer for the per-call measure.")


class DiscardingExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@contextmanager
def instrumentation(library: str, on: bool) -> Iterator[None]:
    """The library instrumented (``on``) or not, for the duration."""
    if on:
        steptrace.instrument(library)
    else:
        steptrace.uninstrument(library)
    try:
        yield
    finally:
        steptrace.instrument(library)


def _noop_listener(event: str, payload: dict[str, Any]) -> None:
    return None


@contextmanager
def variant(listener: bool = False, capture: bool | None = None) -> Iterator[None]:
    saved = steptrace.settings.capture_message_content
    steptrace.settings.capture_message_content = capture
    if listener:
        steptrace.add_listener(_noop_listener)
    try:
        yield
    finally:
        if listener:
            steptrace.flush()
            steptrace.remove_listener(_noop_listener)
        steptrace.settings.capture_message_content = saved


Clocks = tuple[int, int]
"""(CPU ns, wall ns) spent on a batch."""
Batch = Callable[[int], Clocks]


def chunk_batch(library: str, open_stream: Callable[[], Any], on: bool, **variant_kw: Any) -> Batch:
    """``n`` streams read to the end; the time from each first chunk to its last."""

    def batch(n: int) -> Clocks:
        cpu = wall = 0
        with instrumentation(library, on), variant(**variant_kw):
            for _ in range(n):
                stream = open_stream()
                iterator = iter(stream)
                next(iterator)
                c0, w0 = process_time_ns(), perf_counter_ns()
                for _chunk in iterator:
                    pass
                cpu += process_time_ns() - c0
                wall += perf_counter_ns() - w0
        return cpu, wall

    return batch


def call_batch(library: str, call: Callable[[], Any], on: bool) -> Batch:
    def batch(n: int) -> Clocks:
        with instrumentation(library, on):
            c0, w0 = process_time_ns(), perf_counter_ns()
            for _ in range(n):
                call()
            return process_time_ns() - c0, perf_counter_ns() - w0

    return batch


def interleaved(batches: dict[str, Batch], ops: int, per: int, runs: int) -> dict[str, Clocks]:
    """Median (CPU, wall) ns per unit: each batch runs ``ops`` operations of ``per`` units."""
    for batch in batches.values():
        batch(1)  # warm-up
    samples: dict[str, list[Clocks]] = {name: [] for name in batches}
    for _ in range(runs):
        for name, batch in batches.items():
            gc.collect()
            samples[name].append(batch(ops))
    units = ops * per
    return {
        name: (
            statistics.median(c for c, _ in v) / units,
            statistics.median(w for _, w in v) / units,
        )
        for name, v in samples.items()
    }


Row = tuple[str, Clocks, Clocks, float | None]


def per_chunk_rows(
    label: str, library: str, open_stream: Callable[[], Any], chunks: int, runs: int, streams: int
) -> list[Row]:
    t = interleaved(
        {
            "raw": chunk_batch(library, open_stream, False),
            "on": chunk_batch(library, open_stream, True),
            "listener": chunk_batch(library, open_stream, True, listener=True),
            "no-content": chunk_batch(library, open_stream, True, capture=False),
        },
        ops=streams,
        per=chunks,
        runs=runs,
    )
    return [
        (f"{label}: per chunk, instrumented / raw client", t["on"], t["raw"], 1.10),
        ("  same, one no-op listener attached (live mirror)", t["listener"], t["raw"], None),
        ("  same, message content capture off", t["no-content"], t["raw"], None),
    ]


def per_call_row(label: str, library: str, call: Callable[[], Any], runs: int, n: int) -> Row:
    t = interleaved(
        {"raw": call_batch(library, call, False), "on": call_batch(library, call, True)},
        ops=n,
        per=1,
        runs=runs,
    )
    return (f"{label}: per call, instrumented / raw client", t["on"], t["raw"], None)


def own_work_per_chunk(chunks: list[Any], call_class: type, capture: bool) -> float:
    """Best-of-20 ns per chunk for the proxy + recording alone, over already-parsed chunks."""
    from steptrace.instrumentation._stream import StreamProxy

    saved = steptrace.settings.capture_message_content
    steptrace.settings.capture_message_content = capture
    best = float("inf")
    try:
        for _ in range(20):
            call = call_class(None, {"model": "m", "messages": MESSAGES}, stream=True)
            proxy = StreamProxy(iter(chunks), call)
            t0 = perf_counter_ns()
            for _chunk in proxy:
                pass
            best = min(best, (perf_counter_ns() - t0) / len(chunks))
    finally:
        steptrace.settings.capture_message_content = saved
    return best


def own_work_per_call(response: Any, call_class: type, kwargs: dict[str, Any]) -> float:
    """Best-of-20 ns for one non-streamed call's step (start, request and response attributes,
    end), over a response the client already parsed: what the wrapper adds to a call."""
    best = float("inf")
    for _ in range(20):
        t0 = perf_counter_ns()
        for _ in range(50):
            call = call_class(None, kwargs, stream=False)
            call.on_response(response)
            call.end(None, None)
        best = min(best, (perf_counter_ns() - t0) / 50)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 short runs (smoke test)")
    args = parser.parse_args(argv)
    runs, streams, calls = (3, 2, 30) if args.quick else (9, 3, 60)

    if _tracing.active_provider() is not None:
        print("bench_llm: a TracerProvider is already set; run this in a fresh interpreter")
        return 2
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
    trace.set_tracer_provider(provider)

    rows: list[Row] = []
    with (
        OpenAIServer(Reply(chunks=PIECES)) as oai_srv,
        AnthropicServer(Reply(chunks=PIECES)) as claude_srv,
    ):
        oai = openai.OpenAI(base_url=oai_srv.base_url, api_key="bench", max_retries=0)
        claude = anthropic.Anthropic(base_url=claude_srv.base_url, api_key="bench", max_retries=0)

        def openai_stream() -> Any:
            return oai.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )

        def anthropic_stream() -> Any:
            return claude.messages.create(
                model="claude-bench", max_tokens=4096, messages=MESSAGES, stream=True
            )

        # chunks after the first: OpenAI adds a finish chunk and a usage chunk; Anthropic
        # adds content_block_stop, message_delta and message_stop (ping is not yielded).
        rows += per_chunk_rows(
            "openai chat stream", "openai", openai_stream, CHUNKS + 2, runs, streams
        )
        rows += per_chunk_rows(
            "anthropic messages stream", "anthropic", anthropic_stream, CHUNKS + 4, runs, streams
        )

        from steptrace.instrumentation.anthropic import MessagesCall
        from steptrace.instrumentation.openai import ChatCompletionsCall

        with instrumentation("openai", False), instrumentation("anthropic", False):
            parsed = {
                "openai chat": (list(openai_stream()), ChatCompletionsCall),
                "anthropic messages": (list(anthropic_stream()), MessagesCall),
            }
        own = [
            (
                f"{name}, content capture {'on' if capture else 'off'}",
                own_work_per_chunk(chunks, call_class, capture),
            )
            for name, (chunks, call_class) in parsed.items()
            for capture in (True, False)
        ]

        oai_srv.script = SHORT
        claude_srv.script = SHORT
        oai_kwargs = {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0.2}
        claude_kwargs = {"model": "claude-bench", "max_tokens": 64, "messages": MESSAGES}
        with instrumentation("openai", False), instrumentation("anthropic", False):
            own_calls = [
                (
                    "openai chat completion",
                    own_work_per_call(
                        oai.chat.completions.create(**oai_kwargs), ChatCompletionsCall, oai_kwargs
                    ),
                ),
                (
                    "anthropic message",
                    own_work_per_call(
                        claude.messages.create(**claude_kwargs), MessagesCall, claude_kwargs
                    ),
                ),
            ]
        rows.append(
            per_call_row(
                "openai chat completion",
                "openai",
                lambda: oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES),
                runs,
                calls,
            )
        )
        rows.append(
            per_call_row(
                "anthropic message",
                "anthropic",
                lambda: claude.messages.create(
                    model="claude-bench", max_tokens=64, messages=MESSAGES
                ),
                runs,
                calls,
            )
        )
        oai.close()
        claude.close()
    provider.shutdown()

    print(
        f"bench_llm: Python {platform.python_version()}, openai {openai.__version__}, "
        f"anthropic {anthropic.__version__}, {runs} runs, median per operation; "
        "times are CPU time of the process"
    )
    print_table(rows)
    print()
    print("steptrace's own work per chunk (proxy + recording, parsed chunks, no I/O, best of 20):")
    for label, ns in own:
        print(f"  {label:<40} {fmt_ns(ns):>10}")
    print("steptrace's own work per non-streamed call (step + attributes, no I/O, best of 20):")
    for label, ns in own_calls:
        print(f"  {label:<40} {fmt_ns(ns):>10}")
    return 0


def print_table(rows: list[Row]) -> None:
    width = max(len(r[0]) for r in rows)
    print(
        f"{'comparison':<{width}}  {'steptrace':>10}  {'raw':>10}  {'ratio':>6}  "
        f"{'overhead':>10}  {'wall ratio':>10}  target (CPU)"
    )
    for label, (ours, ours_wall), (base, base_wall), target in rows:
        ratio = ours / base if base else float("inf")
        wall_ratio = ours_wall / base_wall if base_wall else float("inf")
        verdict = ""
        if target is not None:
            verdict = f"<= {target:g}x " + ("met" if ratio <= target else "MISSED")
        times = f"{fmt_ns(ours):>10}  {fmt_ns(base):>10}"
        extra = f"{fmt_ns(max(0.0, ours - base)):>10}  {wall_ratio:>9.2f}x"
        print(f"{label:<{width}}  {times}  {ratio:>5.2f}x  {extra}  {verdict}")


if __name__ == "__main__":
    raise SystemExit(main())
