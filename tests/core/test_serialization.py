"""Telemetry never breaks the app: values that cannot be serialised (a lock, bytes, a
self-referencing dict, a 5 MB string, an object whose ``__repr__`` raises) in metadata, input or
output never raise and are recorded in a bounded form, on the span and on the chat channel; a
failing exporter or span processor never raises into the app."""

from __future__ import annotations

import json
import threading

import pytest
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import steptrace
from steptrace import Step, _tracing

# -- awkward values ----------------------------------------------------------------------------


class BadRepr:
    """An object whose ``__repr__`` (and so its default ``__str__``) raises."""

    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


class BadReprAndStr(BadRepr):
    def __str__(self) -> str:
        raise RuntimeError("str exploded")


class AmbiguousTruth:
    """Behaves like a numpy array / pandas DataFrame: comparisons are element-wise and the
    result has no truth value (``if array == "":`` raises ValueError)."""

    class _Elementwise:
        def __bool__(self) -> bool:
            raise ValueError("The truth value of an array is ambiguous")

    def __eq__(self, other):
        return self._Elementwise()

    def __ne__(self, other):
        return self._Elementwise()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "array([1, 2, 3])"


def self_referencing_dict() -> dict:
    value: dict = {"name": "loop"}
    value["self"] = value
    return value


BIG = "x" * 5_000_000

AWKWARD = {
    "lock": threading.Lock,
    "bytes": lambda: b"\x00\x01binary\xff" * 100,
    "self-referencing dict": self_referencing_dict,
    "5 MB string": lambda: BIG,
    "raising __repr__": BadRepr,
    "raising __repr__ and __str__": BadReprAndStr,
    "lock inside a dict": lambda: {"lock": threading.Lock(), "n": 1},
    "bytes inside a list": lambda: [b"\x00raw", b"\xffraw"],
}

#: Slack for the truncation marker appended to a cut value.
MARKER_SLACK = 100


def limit() -> int:
    return steptrace.settings.max_value_length + MARKER_SLACK


def only_span(spans):
    finished = spans.get_finished_spans()
    assert len(finished) == 1, [s.name for s in finished]
    return finished[0]


def assert_bounded_text(value) -> str:
    assert isinstance(value, str), type(value)
    assert len(value) <= limit()
    assert "\x00" not in value  # no raw binary
    return value


# -- metadata, input and output never raise and stay bounded ----------------------------------


@pytest.mark.parametrize("kind", list(AWKWARD))
def test_awkward_metadata_is_recorded_bounded(spans, kind):
    value = AWKWARD[kind]()
    with Step(name="meta", metadata={"value": value, "plain": "ok"}) as step:
        pass
    assert step.status == "success"
    span = only_span(spans)
    assert span.attributes["step.metadata.plain"] == "ok"
    assert_bounded_text(span.attributes["step.metadata.value"])


@pytest.mark.parametrize("kind", list(AWKWARD))
@pytest.mark.parametrize("field", ["input", "output"])
def test_awkward_input_and_output_are_recorded_bounded(spans, kind, field):
    value = AWKWARD[kind]()
    with Step(name="io") as step:
        setattr(step, field, value)
    assert step.status == "success"
    span = only_span(spans)
    assert_bounded_text(span.attributes[f"{field}.value"])
    assert span.attributes[f"{field}.mime_type"] in ("text/plain", "application/json")


@pytest.mark.parametrize("kind", list(AWKWARD))
def test_awkward_values_reach_the_chat_bounded(spans, events, kind):
    value = AWKWARD[kind]()
    with Step(name="wire", metadata={"value": value}) as step:
        step.input = value
        step.output = value
        step.update()
        wire = step.to_dict()
    assert isinstance(wire["input"], str) and isinstance(wire["output"], str)
    final_event, final = events.of(step.id)[-1]
    assert final_event == "update_message" and final["status"] == "success"
    for field in ("input", "output"):
        assert isinstance(final[field], str)
        assert len(final[field]) < len(BIG)  # a 5 MB value is not sent whole to the chat
    only_span(spans)


def test_five_megabyte_string_is_cut(spans):
    with Step(name="big", metadata={"big": BIG}) as step:
        step.input = BIG
        step.output = BIG
    attributes = only_span(spans).attributes
    for key in ("step.metadata.big", "input.value", "output.value"):
        text = assert_bounded_text(attributes[key])
        assert text.startswith("x" * 1000)
        assert len(text) < len(BIG)


def test_a_streamed_five_megabytes_is_cut_on_the_span(spans):
    with Step(name="big stream") as step:
        for _ in range(50):
            step.stream_token("y" * 100_000)
    assert len(step.output) == 5_000_000  # the value itself is the app's, untouched
    text = assert_bounded_text(only_span(spans).attributes["output.value"])
    assert text.startswith("y" * 1000)


def test_unrepresentable_objects_are_named_by_their_type(spans):
    with Step(name="named", metadata={"bad": BadReprAndStr()}) as step:
        step.input = BadRepr()
        step.output = BadReprAndStr()
    attributes = only_span(spans).attributes
    assert "BadReprAndStr" in attributes["step.metadata.bad"]
    assert "BadRepr" in attributes["input.value"]
    assert "BadReprAndStr" in attributes["output.value"]


def test_lock_and_self_reference_keep_what_can_be_kept(spans):
    with Step(name="partial", metadata={"lock": {"lock": threading.Lock(), "n": 1}}) as step:
        step.input = self_referencing_dict()
    attributes = only_span(spans).attributes
    assert '"n": 1' in attributes["step.metadata.lock"]
    assert "lock" in attributes["step.metadata.lock"]
    assert "loop" in attributes["input.value"]


def test_non_string_metadata_keys(spans):
    with Step(name="keys", metadata={1: "one", ("a", "b"): "tuple"}):
        pass
    attributes = only_span(spans).attributes
    assert attributes["step.metadata.1"] == "one"
    assert "tuple" in [v for k, v in attributes.items() if k.startswith("step.metadata.")]


@pytest.mark.parametrize("which", ["self-referencing", "deeply nested"])
def test_values_labelled_json_are_json(spans, which):
    if which == "self-referencing":
        value = self_referencing_dict()
    else:
        value = []
        for _ in range(5000):
            value = [value]
    with Step(name="json", metadata={"value": value}) as step:
        step.input = value
        step.output = value
    attributes = only_span(spans).attributes
    for field in ("input", "output"):
        if attributes[f"{field}.mime_type"] == "application/json":
            json.loads(attributes[f"{field}.value"])
    json.loads(attributes["step.metadata.value"])


def test_long_homogeneous_metadata_lists_are_bounded(spans):
    ints = list(range(1_000_000))
    strings = ["s" * 1000] * 10_000
    with Step(name="long lists", metadata={"ints": ints, "strings": strings}):
        pass
    attributes = only_span(spans).attributes
    for key in ("step.metadata.ints", "step.metadata.strings"):
        value = attributes[key]
        size = len(value) if isinstance(value, str) else sum(len(str(item)) for item in value)
        assert size <= limit(), (key, size)


@pytest.mark.parametrize("field", ["input", "output"])
def test_array_like_values_do_not_lose_the_span(spans, field):
    with Step(name="array") as step:
        setattr(step, field, AmbiguousTruth())
    span = only_span(spans)
    assert span.attributes[f"{field}.value"] == "array([1, 2, 3])"


@pytest.mark.parametrize("how", ["with", "decorator"])
def test_array_like_output_never_raises_into_the_app_with_a_listener(spans, events, how):
    if how == "with":
        with Step(name="array wire") as step:
            step.output = AmbiguousTruth()
    else:

        @steptrace.step(name="array wire")
        def embed():
            return AmbiguousTruth()

        assert isinstance(embed(), AmbiguousTruth)
    assert only_span(spans).attributes["output.value"] == "array([1, 2, 3])"


# -- failing exporters and processors never raise into the app ---------------------------------


class FailingExporter(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans):
        self.calls += 1
        raise ConnectionRefusedError("backend unreachable")

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        raise ConnectionRefusedError("backend unreachable")


class FailingProcessor(SpanProcessor):
    def __init__(self) -> None:
        self.calls = 0

    def on_start(self, span, parent_context=None) -> None:
        self.calls += 1
        raise RuntimeError("processor broke on start")

    def on_end(self, span) -> None:
        self.calls += 1
        raise RuntimeError("processor broke on end")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        raise RuntimeError("processor broke on flush")


@pytest.fixture
def private_provider():
    """A separate SDK provider for the test, made current for steptrace, restored after."""
    provider = TracerProvider(shutdown_on_exit=False)
    _tracing.use_provider(provider)
    try:
        yield provider
    finally:
        _tracing.use_provider(None)
        try:
            provider.shutdown()
        except Exception:
            pass


def run_app_code() -> Step:
    """What an app does: nested steps, tokens, an error handled by the app."""
    with Step(name="outer", type="run") as outer:
        outer.input = {"question": "q"}
        with Step(name="inner", type="llm") as inner:
            inner.stream_token("an")
            inner.stream_token("swer")
        try:
            with Step(name="failing", type="tool"):
                raise ValueError("tool failed")
        except ValueError:
            pass
        outer.output = inner.output
    return outer


@pytest.mark.parametrize("processor_type", [SimpleSpanProcessor, BatchSpanProcessor])
def test_failing_exporter_never_raises_into_the_app(private_provider, processor_type):
    exporter = FailingExporter()
    private_provider.add_span_processor(processor_type(exporter))
    outer = run_app_code()
    assert outer.status == "success" and outer.output == "answer"
    assert isinstance(steptrace.flush(), bool)
    assert exporter.calls >= 1  # the exporter really was called, and failed


async def test_failing_exporter_never_raises_into_async_app_code(private_provider):
    exporter = FailingExporter()
    private_provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with Step(name="async outer") as step:
        await step.stream_token("ok")
    assert step.status == "success" and step.output == "ok"
    assert exporter.calls == 1


def test_failing_processor_never_raises_into_the_app(private_provider):
    processor = FailingProcessor()
    private_provider.add_span_processor(processor)
    outer = run_app_code()
    assert outer.status == "success" and outer.output == "answer"
    assert steptrace.flush() is False  # the flush failed, and said so instead of raising
    assert processor.calls >= 1


def test_failing_exporter_does_not_disturb_healthy_ones(private_provider):
    healthy = InMemorySpanExporter()
    private_provider.add_span_processor(SimpleSpanProcessor(FailingExporter()))
    private_provider.add_span_processor(SimpleSpanProcessor(healthy))
    run_app_code()
    finished = {s.name: s for s in healthy.get_finished_spans()}
    assert set(finished) == {"outer", "inner", "failing"}
    assert finished["inner"].attributes["output.value"] == "answer"
    assert finished["failing"].status.status_code == StatusCode.ERROR


def test_failing_exporter_does_not_stop_live_events(private_provider, events):
    private_provider.add_span_processor(SimpleSpanProcessor(FailingExporter()))
    outer = run_app_code()
    received = events.of(outer.id)
    assert received[0][0] == "new_message"
    assert received[-1][0] == "update_message" and received[-1][1]["output"] == "answer"


def test_the_provider_is_restored_after_use_provider(spans):
    with Step(name="back on the global provider"):
        pass
    assert [s.name for s in spans.get_finished_spans()] == ["back on the global provider"]
