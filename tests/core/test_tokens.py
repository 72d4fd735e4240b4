"""Streamed tokens as ``step.token`` span events: exact, ordered, within the event limit."""

from __future__ import annotations

import time

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import steptrace
from steptrace import _tokens, _tracing


def rebuild(span, target: str = "output") -> str:
    """Apply a span's token events in order, as a reader of the trace would."""
    text = ""
    for event in span.events:
        if event.name != "step.token" or event.attributes["step.token.target"] != target:
            continue
        if event.attributes["step.token.replace"]:
            text = event.attributes["step.token.text"]
        else:
            text += event.attributes["step.token.text"]
    return text


@pytest.fixture
def limited():
    """A provider with a small event limit, used by steps for the test's duration."""

    def make(max_events: int) -> InMemorySpanExporter:
        exporter = InMemorySpanExporter()
        provider = TracerProvider(span_limits=SpanLimits(max_events=max_events))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        _tracing.use_provider(provider)
        return exporter

    yield make
    _tracing.use_provider(None)


@pytest.fixture
def fast_slices(monkeypatch):
    """Make every token start a new time slice, the worst case for the event budget."""
    monkeypatch.setattr(_tokens, "_BASE_INTERVAL_NS", 0)


def test_ten_thousand_tokens_rebuild_exactly_within_the_default_limit(spans, fast_slices):
    tokens = [f"tok{i} " for i in range(10_000)]
    with steptrace.Step(name="long", type="llm") as step:
        for token in tokens:
            step.stream_token(token)
    (span,) = spans.get_finished_spans()
    token_events = [e for e in span.events if e.name == "step.token"]
    assert 1 <= len(token_events) <= 128
    assert span.dropped_events == 0
    assert rebuild(span) == "".join(tokens) == step.output
    # output.value is bounded (65,536 chars by default); the token events carry the whole text
    full = "".join(tokens)
    assert span.attributes["output.value"].startswith(full[:65_536])
    assert span.attributes["output.value"].endswith(f"[truncated {len(full) - 65_536} chars]")
    assert span.attributes["step.token_count"] == 10_000


def test_limit_comes_from_the_provider_span_limits(limited, fast_slices):
    exporter = limited(10)
    with steptrace.Step(name="s") as step:
        for i in range(500):
            step.stream_token(str(i % 10))
            step.stream_token("x", is_input=True)
        step.stream_token("!", is_input=True)
    (span,) = exporter.get_finished_spans()
    assert len(span.events) <= 10
    assert span.dropped_events == 0
    assert rebuild(span) == "".join(str(i % 10) for i in range(500))
    assert rebuild(span, "input") == "x" * 500 + "!"


def test_limit_leaves_room_for_the_exception_event(limited, fast_slices):
    exporter = limited(6)
    with pytest.raises(RuntimeError), steptrace.Step(name="s") as step:
        for i in range(100):
            step.stream_token(f"{i},")
        raise RuntimeError("late failure")
    (span,) = exporter.get_finished_spans()
    assert span.dropped_events == 0
    assert [e.name for e in span.events][-1] == "exception"
    assert rebuild(span) == "".join(f"{i}," for i in range(100))


def test_env_event_limit_is_honoured(monkeypatch, fast_slices):
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "7")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # reads the limit from the environment
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _tracing.use_provider(provider)
    try:
        with steptrace.Step(name="s") as step:
            for i in range(300):
                step.stream_token(chr(65 + i % 26))
    finally:
        _tracing.use_provider(None)
    (span,) = exporter.get_finished_spans()
    assert len(span.events) <= 7 and span.dropped_events == 0
    assert rebuild(span) == "".join(chr(65 + i % 26) for i in range(300))


def test_sequence_tokens_replace_and_are_marked(spans):
    with steptrace.Step(name="s") as step:
        step.stream_token("draft one")
        step.stream_token("final", is_sequence=True)
        step.stream_token(" answer")
    (span,) = spans.get_finished_spans()
    assert step.output == "final answer"
    assert rebuild(span) == "final answer"
    assert any(e.attributes["step.token.replace"] for e in span.events)


def test_replace_in_a_later_slice_rebuilds_exactly(spans, fast_slices):
    with steptrace.Step(name="s") as step:
        for part in ("a", "b", "c"):
            step.stream_token(part)
        step.stream_token("X", is_sequence=True)
        step.stream_token("y")
    (span,) = spans.get_finished_spans()
    assert rebuild(span) == step.output == "Xy"


def test_input_tokens_target_the_input(spans):
    with steptrace.Step(name="s") as step:
        step.stream_token("what is ", is_input=True)
        step.stream_token("otel?", is_input=True)
        step.stream_token("a spec")
    (span,) = spans.get_finished_spans()
    assert step.input == "what is otel?"
    assert rebuild(span, "input") == "what is otel?"
    assert rebuild(span) == "a spec"
    assert span.attributes["input.value"] == "what is otel?"


def test_first_token_sets_time_to_first_token(spans):
    with steptrace.Step(name="s") as step:
        time.sleep(0.02)
        step.stream_token("first")
        time.sleep(0.02)
        step.stream_token("second")
    (span,) = spans.get_finished_spans()
    ttft = span.attributes["step.time_to_first_token_s"]
    duration = (span.end_time - span.start_time) / 1e9
    assert 0.02 <= ttft < duration
    assert step.time_to_first_token_s == pytest.approx(ttft, abs=1e-3)


def test_events_are_spread_over_time_for_a_slow_stream(spans, monkeypatch):
    monkeypatch.setattr(_tokens, "_BASE_INTERVAL_NS", 5_000_000)  # 5 ms slices
    with steptrace.Step(name="s") as step:
        for i in range(20):
            step.stream_token(f"{i} ")
            time.sleep(0.006)
    (span,) = spans.get_finished_spans()
    events = [e for e in span.events if e.name == "step.token"]
    assert len(events) >= 5  # not one blob at the end
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    assert rebuild(span) == "".join(f"{i} " for i in range(20))


def test_empty_and_none_tokens_are_ignored_and_non_strings_rejected(spans):
    with steptrace.Step(name="s") as step:
        step.stream_token("")
        step.stream_token(None)
        with pytest.raises(TypeError, match="token"):
            step.stream_token(42)  # type: ignore[arg-type]
        step.stream_token("ok")
    (span,) = spans.get_finished_spans()
    assert step.output == "ok" and rebuild(span) == "ok"


def test_tokens_after_the_end_reach_the_value_not_the_span(spans):
    with steptrace.Step(name="s") as step:
        step.stream_token("inside")
    step.stream_token(" after")
    (span,) = spans.get_finished_spans()
    assert rebuild(span) == "inside"
    assert step.output == "inside after"


def test_stream_token_without_with_starts_the_step(spans):
    step = steptrace.Step(name="bare")
    step.stream_token("hello")
    assert step.status == "pending"  # as Panel's stream(): streaming alone does not run it
    step.status = "success"  # a final status ends a step begun outside a with block
    (span,) = spans.get_finished_spans()
    assert rebuild(span) == "hello" and span.attributes["step.status"] == "success"
