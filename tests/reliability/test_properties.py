"""Property-based: whatever the arguments, Step raises the documented error or records faithfully.

Documented errors (DESIGN.md, "precise semantics"): ``TypeError`` for a non-string ``name`` or
``type``, non-list ``tags`` or non-string tag items, non-dict ``metadata``, non-bool flags
(``default_open``, ``auto_collapse``, ``collapsed_on_success``) and non-string tokens (``None``
is ignored); ``ValueError`` for an unknown ``status`` or ``context_exception`` string. Anything
else must be recorded faithfully on the span (read back from the in-memory exporter, tokens
rebuilt from the ``step.token`` events), or, for values OpenTelemetry cannot carry, in a safe
bounded form that never raises.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import steptrace
from steptrace._serialize import DEFAULT_MAX_VALUE_LENGTH

STATUSES = ("pending", "running", "success", "failed")
CONTEXT_EXCEPTIONS = ("raise", "summary", "verbose", "ignore")
KNOWN_KINDS = {
    "llm": "LLM",
    "tool": "TOOL",
    "retrieval": "RETRIEVER",
    "embedding": "EMBEDDING",
    "rerank": "RERANKER",
    "run": "CHAIN",
    "undefined": "CHAIN",
}
FLAGS = ("default_open", "auto_collapse", "collapsed_on_success")
INT64 = 2**63

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Arg:
    """One drawn argument: its value and the error it must cause (None: valid)."""

    value: Any
    error: type[Exception] | tuple[type[Exception], ...] | None = None


def valid(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Arg]:
    return strategy.map(Arg)


def invalid(strategy: st.SearchStrategy[Any], error: Any) -> st.SearchStrategy[Arg]:
    return strategy.map(lambda value: Arg(value, error))


# --- strategies ---------------------------------------------------------------------------------

texts = st.text(max_size=40)
not_str = st.one_of(
    st.integers(), st.floats(), st.binary(max_size=8), st.lists(st.integers(), max_size=2)
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30))
metadata_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

# Per Step argument: (valid values, invalid values with the error they must raise).
ARGUMENTS: dict[str, tuple[st.SearchStrategy[Arg], st.SearchStrategy[Arg]]] = {
    "name": (
        valid(st.none() | texts),
        invalid(not_str | st.dictionaries(texts, texts), TypeError),
    ),
    "type": (
        valid(texts | st.sampled_from([*KNOWN_KINDS, "user_message", "assistant_message"])),
        invalid(st.none() | not_str, TypeError),
    ),
    "tags": (
        valid(st.none() | st.lists(st.text(max_size=15), max_size=5)),
        st.one_of(
            invalid(st.text(min_size=1) | st.integers() | st.dictionaries(texts, texts), TypeError),
            invalid(
                st.tuples(st.lists(st.text(max_size=5), max_size=3), not_str).map(
                    lambda parts: [*parts[0], parts[1]]
                ),
                TypeError,
            ),
        ),
    ),
    "metadata": (
        valid(
            st.none()
            | st.dictionaries(st.text(min_size=1, max_size=15), metadata_values, max_size=8)
        ),
        invalid(
            st.lists(st.integers(), max_size=3) | st.text(min_size=1) | st.integers(), TypeError
        ),
    ),
    **{
        flag: (
            valid(st.booleans()),
            invalid(st.none() | st.integers() | st.text(max_size=5), TypeError),
        )
        for flag in FLAGS
    },
    "status": (
        valid(st.sampled_from(STATUSES)),
        st.one_of(
            invalid(st.text(max_size=12).filter(lambda s: s not in STATUSES), ValueError),
            invalid(st.integers() | st.none(), (TypeError, ValueError)),
        ),
    ),
    "context_exception": (
        valid(st.sampled_from(CONTEXT_EXCEPTIONS)),
        st.one_of(
            invalid(st.text(max_size=12).filter(lambda s: s not in CONTEXT_EXCEPTIONS), ValueError),
            invalid(st.integers(), (TypeError, ValueError)),
        ),
    ),
}


@st.composite
def step_arguments(draw: st.DrawFn) -> dict[str, Arg]:
    """All of Step's validated arguments; in about half the draws, one or two are invalid."""
    wrong: set[str] = set()
    if draw(st.booleans()):
        wrong = draw(st.sets(st.sampled_from(sorted(ARGUMENTS)), min_size=1, max_size=2))
    return {key: draw(pair[1] if key in wrong else pair[0]) for key, pair in ARGUMENTS.items()}


# About one token in ten is of a wrong type.
tokens = st.integers(0, 9).flatmap(
    lambda roll: (
        invalid(not_str, TypeError) if roll == 0 else valid(st.none() | st.text(max_size=12))
    )
)
token_ops = st.lists(st.tuples(tokens, st.booleans(), st.booleans()), max_size=60)


# --- expected recordings ------------------------------------------------------------------------


def same(a: Any, b: Any) -> bool:
    """Deep equality where NaN equals NaN and tuples equal lists."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def check_metadata_attribute(value: Any, recorded: Any) -> None:
    """Primitives and homogeneous lists of them as is; everything else as JSON."""
    primitive = (str, bool, int, float)
    if type(value) in primitive:
        if type(value) is int and abs(value) >= INT64:
            assert recorded == str(value)  # OTLP integers are 64-bit: kept exactly, as text
        else:
            assert same(recorded, value)
        return
    homogeneous = (
        isinstance(value, list)
        and value
        and type(value[0]) in primitive
        and all(type(item) is type(value[0]) for item in value)
        and not (type(value[0]) is int and any(abs(item) >= INT64 for item in value))
    )
    if homogeneous:
        assert same(list(recorded), value)
    else:
        assert isinstance(recorded, str)
        assert same(json.loads(recorded), value)


@dataclass
class Streamed:
    """The text a sequence of ``stream_token`` calls must leave, per target."""

    text: dict[bool, str] = field(default_factory=lambda: {False: "", True: ""})
    touched: dict[bool, bool] = field(default_factory=lambda: {False: False, True: False})

    def apply(self, token: str, is_sequence: bool, is_input: bool) -> None:
        if not token:
            return  # empty and None tokens are ignored
        self.text[is_input] = token if is_sequence else self.text[is_input] + token
        self.touched[is_input] = True


def rebuild_from_events(span: Any) -> dict[str, str]:
    text = {"output": "", "input": ""}
    for event in span.events:
        if event.name != "step.token":
            continue
        target = event.attributes["step.token.target"]
        piece = event.attributes["step.token.text"]
        replace = event.attributes["step.token.replace"]
        text[target] = piece if replace else text[target] + piece
    return text


# --- properties ---------------------------------------------------------------------------------


def only_span(spans: InMemorySpanExporter) -> Any:
    finished = spans.get_finished_spans()
    assert len(finished) == 1, [s.name for s in finished]
    return finished[0]


@SETTINGS
@given(args=step_arguments(), tokens=token_ops)
def test_step_raises_the_documented_error_or_records_faithfully(
    spans: InMemorySpanExporter, args: dict[str, Arg], tokens: list[tuple[Arg, bool, bool]]
) -> None:
    spans.clear()
    kwargs = {key: arg.value for key, arg in args.items()}
    expected_errors = [arg.error for arg in args.values() if arg.error is not None]
    if expected_errors:
        with pytest.raises(Exception) as raised:
            steptrace.Step(**kwargs)
        assert any(isinstance(raised.value, error) for error in expected_errors), (
            f"{raised.value!r} is not a documented error for {kwargs}"
        )
        assert spans.get_finished_spans() == ()
        return

    streamed = Streamed()
    with steptrace.Step(**kwargs) as step:
        for token, is_sequence, is_input in tokens:
            if token.error is not None:
                with pytest.raises(TypeError):
                    step.stream_token(token.value, is_sequence=is_sequence, is_input=is_input)
            else:
                step.stream_token(token.value, is_sequence=is_sequence, is_input=is_input)
                streamed.apply(token.value, is_sequence, is_input)

    span = only_span(spans)
    attributes = span.attributes
    assert span.name == (kwargs["name"] or kwargs["type"])
    assert attributes["step.type"] == kwargs["type"]
    assert attributes["openinference.span.kind"] == KNOWN_KINDS.get(kwargs["type"], "CHAIN")
    assert attributes["step.status"] == "success"
    if kwargs["tags"]:
        assert list(attributes["step.tags"]) == kwargs["tags"]
    else:
        assert "step.tags" not in attributes
    for key, value in (kwargs["metadata"] or {}).items():
        check_metadata_attribute(value, attributes[f"step.metadata.{key}"])
    for flag in ("default_open", "auto_collapse"):
        assert attributes.get(f"step.{flag}", False) is kwargs[flag]

    rebuilt = rebuild_from_events(span)
    for is_input, target in ((False, "output"), (True, "input")):
        assert rebuilt[target] == streamed.text[is_input]
        if streamed.touched[is_input]:
            assert getattr(step, target) == streamed.text[is_input]
            assert attributes[f"{target}.value"] == streamed.text[is_input]


@SETTINGS
@given(
    target=st.sampled_from(["type", "name", "tags", "metadata", "status", "context_exception"]),
    data=st.data(),
)
def test_invalid_setter_raises_and_leaves_the_step_intact(
    spans: InMemorySpanExporter, target: str, data: st.DataObject
) -> None:
    spans.clear()
    bad = data.draw(
        {
            "type": ARGUMENTS["type"][1],
            "name": ARGUMENTS["name"][1],
            "tags": ARGUMENTS["tags"][1],
            "metadata": ARGUMENTS["metadata"][1],
            "status": ARGUMENTS["status"][1],
            "context_exception": ARGUMENTS["context_exception"][1],
        }[target]
    )
    with steptrace.Step(name="kept", type="tool", tags=["t"], metadata={"k": 1}) as step:
        with pytest.raises(Exception) as raised:
            setattr(step, target, bad.value)
        assert isinstance(raised.value, bad.error)  # type: ignore[arg-type]
        step.output = "still recorded"
    attributes = only_span(spans).attributes
    assert (attributes["step.type"], list(attributes["step.tags"])) == ("tool", ["t"])
    assert attributes["step.metadata.k"] == 1
    assert attributes["step.status"] == "success"
    assert attributes["output.value"] == "still recorded"


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


def circular_list() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


def circular_dict() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    return loop


AWKWARD = [
    Unprintable,
    circular_list,
    circular_dict,
    threading.Lock,
    lambda: b"\x00\xff" * 10,
    lambda: {1, 2, 3},
    lambda: {("tuple", "key"): 1},
    lambda: object(),
    lambda: "x" * (DEFAULT_MAX_VALUE_LENGTH + 100),
    lambda: ["x" * (DEFAULT_MAX_VALUE_LENGTH + 1)],
    lambda: 2**100,
    lambda: [2**70, 1],
    lambda: [None],
    lambda: [],
    lambda: {"nested": [Unprintable()]},
]
# The longest a recorded value may be: the limit plus the "…[truncated N chars]" mark.
BOUND = DEFAULT_MAX_VALUE_LENGTH + 40


@SETTINGS
@given(
    values=st.dictionaries(
        st.text(min_size=1, max_size=10),
        st.sampled_from(AWKWARD).map(lambda make: make()),
        max_size=6,
    ),
    io=st.sampled_from(AWKWARD).map(lambda make: make()),
)
def test_unserialisable_values_are_recorded_in_a_bounded_form(
    spans: InMemorySpanExporter, values: dict[str, Any], io: Any
) -> None:
    spans.clear()
    with steptrace.Step(name="awkward", metadata=values) as step:
        step.input = io
        step.output = io
    attributes = only_span(spans).attributes
    for key in values:
        recorded = attributes[f"step.metadata.{key}"]
        pieces = recorded if isinstance(recorded, tuple) else (recorded,)
        for piece in pieces:
            assert not isinstance(piece, str) or len(piece) <= BOUND
    for target in ("input", "output"):
        recorded = attributes.get(f"{target}.value")
        assert recorded is None or (isinstance(recorded, str) and len(recorded) <= BOUND)
