"""``@steptrace.step``, ``@steptrace.step(...)`` and ``@steptrace.Step(...)`` on sync, coroutine,
generator and async-generator functions.

Chainlit's decorator closes the step at once for generators (output ``"<generator object …>"``),
turns async generator functions into plain functions for ``inspect``, and ``@cl.Step(...)``
raises ``TypeError``; none of that may happen here.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import json

import pytest
from opentelemetry.trace import StatusCode

import steptrace
from core.helpers import finished
from steptrace import Step


def names(spans) -> list[str]:
    return [s.name for s in spans.get_finished_spans()]


def input_of(span) -> dict:
    assert span.attributes["input.mime_type"] == "application/json"
    return json.loads(span.attributes["input.value"])


# The three decorator forms; the expected span name for a function called ``work``.
FORMS = {
    "bare": (lambda f: steptrace.step(f), "work", "undefined"),
    "empty call": (lambda f: steptrace.step()(f), "work", "undefined"),
    "step(name, type)": (lambda f: steptrace.step(name="named", type="tool")(f), "named", "tool"),
    "Step instance": (lambda f: Step(name="named", type="tool")(f), "named", "tool"),
}


@pytest.fixture(params=list(FORMS))
def form(request):
    return FORMS[request.param]


# -- every form on every kind of function ------------------------------------------------------


def test_sync_function(spans, form):
    decorate, expected_name, expected_type = form

    def work(a, b=2):
        """Adds."""
        return a + b

    decorated = decorate(work)
    assert not inspect.iscoroutinefunction(decorated)
    assert not inspect.isgeneratorfunction(decorated)
    assert not inspect.isasyncgenfunction(decorated)
    assert decorated.__name__ == "work" and decorated.__doc__ == "Adds."
    assert decorated.__wrapped__ is work
    assert inspect.signature(decorated) == inspect.signature(work)

    assert decorated(1, b=5) == 6
    span = finished(spans, expected_name)
    assert span.attributes["step.type"] == expected_type
    assert input_of(span) == {"a": 1, "b": 5}
    assert span.attributes["output.value"] == "6"
    assert span.attributes["step.status"] == "success"


async def test_coroutine_function(spans, form):
    decorate, expected_name, expected_type = form

    async def work(question):
        await asyncio.sleep(0)
        return {"answer": question.upper()}

    decorated = decorate(work)
    assert inspect.iscoroutinefunction(decorated)
    assert not inspect.isasyncgenfunction(decorated)
    assert decorated.__name__ == "work"

    call = decorated("why")
    assert inspect.iscoroutine(call)
    assert spans.get_finished_spans() == ()  # nothing runs before it is awaited
    assert await call == {"answer": "WHY"}
    span = finished(spans, expected_name)
    assert span.attributes["step.type"] == expected_type
    assert input_of(span) == {"question": "why"}
    assert span.attributes["output.mime_type"] == "application/json"
    assert span.attributes["output.value"] == '{"answer": "WHY"}'


def test_generator_function(spans, form):
    decorate, expected_name, expected_type = form

    def work(n):
        for i in range(n):
            yield f"t{i} "

    decorated = decorate(work)
    assert inspect.isgeneratorfunction(decorated)
    assert not inspect.iscoroutinefunction(decorated)
    assert decorated.__name__ == "work"

    gen = decorated(3)
    assert inspect.isgenerator(gen)
    assert next(gen) == "t0 "
    assert next(gen) == "t1 "
    assert names(spans) == []  # still open while it yields
    assert list(gen) == ["t2 "]
    span = finished(spans, expected_name)
    assert span.attributes["step.type"] == expected_type
    assert input_of(span) == {"n": 3}
    assert span.attributes["output.value"] == "t0 t1 t2 "
    assert span.attributes["step.status"] == "success"


async def test_async_generator_function(spans, form):
    decorate, expected_name, expected_type = form

    async def work(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield f"t{i} "

    decorated = decorate(work)
    assert inspect.isasyncgenfunction(decorated)
    assert not inspect.iscoroutinefunction(decorated)
    assert decorated.__name__ == "work"

    agen = decorated(3)
    assert inspect.isasyncgen(agen)
    assert await agen.__anext__() == "t0 "
    assert names(spans) == []  # still open while it yields
    assert [item async for item in agen] == ["t1 ", "t2 "]
    span = finished(spans, expected_name)
    assert span.attributes["step.type"] == expected_type
    assert input_of(span) == {"n": 3}
    assert span.attributes["output.value"] == "t0 t1 t2 "


# -- decorator syntax and options ---------------------------------------------------------------


def test_decorator_syntax_forms(spans):
    @steptrace.step
    def bare():
        return "b"

    @steptrace.step(name="custom name", type="retrieval")
    def called():
        return "c"

    @Step(name="from instance", type="llm")
    def instance():
        return "i"

    assert (bare(), called(), instance()) == ("b", "c", "i")
    assert names(spans) == ["bare", "custom name", "from instance"]
    assert finished(spans, "custom name").attributes["openinference.span.kind"] == "RETRIEVER"
    assert finished(spans, "from instance").attributes["openinference.span.kind"] == "LLM"


@pytest.mark.parametrize("via", ["step", "Step"])
def test_every_step_option_reaches_the_span(spans, via):
    options = {
        "name": "configured",
        "type": "tool",
        "tags": ["a", "b"],
        "metadata": {"k": "v"},
        "language": "python",
        "icon": "wrench",
        "thread_id": "thread-3",
        "default_open": True,
    }
    decorator = steptrace.step(**options) if via == "step" else Step(**options)

    @decorator
    def work():
        return 1

    work()
    a = finished(spans, "configured").attributes
    assert a["step.type"] == "tool"
    assert list(a["step.tags"]) == ["a", "b"]
    assert a["step.metadata.k"] == "v"
    assert a["step.language"] == "python"
    assert a["step.icon"] == "wrench"
    assert a["step.thread_id"] == "thread-3"
    assert a["step.default_open"] is True


def test_decorator_options_are_validated_when_decorating():
    with pytest.raises(TypeError, match="type"):
        steptrace.step(type=3)
    with pytest.raises(ValueError, match="context_exception"):
        steptrace.step(context_exception="loud")


def test_each_call_is_a_new_step(spans):
    @steptrace.step
    def work(x):
        return x

    work(1)
    work(2)
    first, second = spans.get_finished_spans()
    assert first.attributes["step.id"] != second.attributes["step.id"]
    assert first.context.span_id != second.context.span_id
    assert input_of(first) == {"x": 1} and input_of(second) == {"x": 2}


def test_metadata_changed_in_one_call_does_not_leak_into_the_next(spans):
    @steptrace.step(name="isolated", metadata={"base": 1}, tags=["t"])
    def work(mark):
        step = steptrace.current_step()
        step.metadata[mark] = True
        step.tags.append(mark)

    work("first")
    work("second")
    first, second = spans.get_finished_spans()
    assert "step.metadata.second" not in first.attributes
    assert "step.metadata.first" not in second.attributes
    assert list(second.attributes["step.tags"]) == ["t", "second"]


def test_current_step_inside_is_the_decorated_step(spans):
    seen = {}

    @steptrace.step(name="current")
    def work():
        seen["step"] = steptrace.current_step()

    work()
    assert seen["step"] is not None
    assert seen["step"].name == "current"
    assert seen["step"].id == finished(spans, "current").attributes["step.id"]
    assert steptrace.current_step() is None


async def test_concurrent_calls_are_siblings(spans):
    @steptrace.step(name="leaf")
    async def leaf(i):
        await asyncio.sleep(0)
        return i

    async with Step(name="root"):
        assert await asyncio.gather(leaf(1), leaf(2)) == [1, 2]
    root = finished(spans, "root")
    leaves = [s for s in spans.get_finished_spans() if s.name == "leaf"]
    assert len(leaves) == 2
    assert all(s.parent.span_id == root.context.span_id for s in leaves)
    assert leaves[0].attributes["step.id"] != leaves[1].attributes["step.id"]


# -- arguments and results ---------------------------------------------------------------------


def test_method_input_leaves_out_self(spans):
    class Retriever:
        def __init__(self):
            self.secret = "not in the input"

        @steptrace.step(name="method")
        def search(self, query, k=3):
            return [query] * k

    assert Retriever().search("otel", k=2) == ["otel", "otel"]
    span = finished(spans, "method")
    assert input_of(span) == {"query": "otel", "k": 2}
    assert "not in the input" not in span.attributes["input.value"]
    assert span.attributes["output.value"] == '["otel", "otel"]'


async def test_async_method_input_leaves_out_self(spans):
    class Agent:
        @steptrace.step(name="async method")
        async def act(self, goal):
            return goal

    assert await Agent().act("plan") == "plan"
    assert input_of(finished(spans, "async method")) == {"goal": "plan"}


def test_varargs_and_kwargs_are_recorded(spans):
    @steptrace.step(name="variadic")
    def work(*args, **kwargs):
        return len(args) + len(kwargs)

    assert work(1, 2, flag=True) == 3
    recorded = input_of(finished(spans, "variadic"))
    assert recorded == {"args": [1, 2], "kwargs": {"flag": True}}


def test_result_is_returned_unchanged(spans):
    marker = object()

    @steptrace.step
    def work():
        return marker

    assert work() is marker
    assert finished(spans, "work").attributes["output.value"] == repr(marker)


# -- generators: open while suspended, ended however they end -----------------------------------


def make_gen():
    @steptrace.step(name="gen step")
    def produce():
        yield "a"
        yield "b"
        yield "c"

    return produce


def test_generator_step_ends_when_exhausted(spans):
    produce = make_gen()
    gen = produce()
    assert next(gen) == "a"
    assert names(spans) == []
    assert next(gen) == "b"
    assert next(gen) == "c"
    assert names(spans) == []
    with pytest.raises(StopIteration):
        next(gen)
    span = finished(spans, "gen step")
    assert span.attributes["output.value"] == "abc"
    assert span.status.status_code == StatusCode.UNSET


def test_generator_step_ends_on_break(spans):
    produce = make_gen()
    for item in produce():
        assert item == "a"
        break
    span = finished(spans, "gen step")  # the loop's generator was dropped: the step ended
    assert span.attributes["output.value"] == "a"
    assert span.status.status_code == StatusCode.UNSET


def test_generator_step_ends_on_close(spans):
    produce = make_gen()
    gen = produce()
    assert next(gen) == "a"
    gen.close()
    span = finished(spans, "gen step")
    assert span.attributes["output.value"] == "a"
    assert span.status.status_code == StatusCode.UNSET
    assert [e for e in span.events if e.name == "exception"] == []


def test_generator_step_ends_when_collected(spans):
    produce = make_gen()
    gen = produce()
    assert next(gen) == "a"
    assert names(spans) == []
    del gen
    gc.collect()
    span = finished(spans, "gen step")
    assert span.attributes["output.value"] == "a"


def test_generator_step_fails_when_the_body_raises(spans):
    @steptrace.step(name="gen failure")
    def produce():
        yield "a"
        raise ValueError("broke mid-stream")

    gen = produce()
    assert next(gen) == "a"
    with pytest.raises(ValueError, match="broke mid-stream"):
        next(gen)
    span = finished(spans, "gen failure")
    assert span.attributes["step.status"] == "failed"
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["output.value"].startswith("a")


def test_generator_send_and_return_value_pass_through(spans):
    @steptrace.step(name="echo")
    def echo():
        received = []
        value = yield "ready"
        while value is not None:
            received.append(value)
            value = yield f"got {value}"
        return received

    def delegate():
        return (yield from echo())

    gen = delegate()
    assert next(gen) == "ready"
    assert gen.send("x") == "got x"
    assert gen.send("y") == "got y"
    with pytest.raises(StopIteration) as stop:
        gen.send(None)
    assert stop.value.value == ["x", "y"]
    assert finished(spans, "echo").attributes["step.status"] == "success"


def test_steps_inside_a_generator_are_its_children(spans):
    @steptrace.step(name="gen parent")
    def produce():
        with Step(name="child 1"):
            pass
        yield 1
        with Step(name="child 2"):
            pass
        yield 2

    with Step(name="caller"):
        assert list(produce()) == [1, 2]
    caller, parent = finished(spans, "caller"), finished(spans, "gen parent")
    assert parent.parent.span_id == caller.context.span_id
    for child in ("child 1", "child 2"):
        assert finished(spans, child).parent.span_id == parent.context.span_id


def test_a_suspended_generator_does_not_become_the_callers_current_step(spans):
    @steptrace.step(name="suspended")
    def produce():
        yield 1
        yield 2

    with Step(name="caller") as caller:
        gen = produce()
        assert next(gen) == 1
        assert steptrace.current_step() is caller
        with Step(name="sibling"):
            pass
        assert next(gen) == 2
        gen.close()
    caller_span = finished(spans, "caller")
    assert finished(spans, "sibling").parent.span_id == caller_span.context.span_id
    assert finished(spans, "suspended").parent.span_id == caller_span.context.span_id


def make_agen():
    @steptrace.step(name="agen step")
    async def produce():
        yield "a"
        await asyncio.sleep(0)
        yield "b"

    return produce


async def test_async_generator_step_ends_when_exhausted(spans):
    produce = make_agen()
    agen = produce()
    assert await agen.__anext__() == "a"
    assert names(spans) == []
    assert await agen.__anext__() == "b"
    with pytest.raises(StopAsyncIteration):
        await agen.__anext__()
    assert finished(spans, "agen step").attributes["output.value"] == "ab"


async def test_async_generator_step_ends_on_aclose(spans):
    produce = make_agen()
    agen = produce()
    async for item in agen:
        assert item == "a"
        break
    assert names(spans) == []  # break does not close an async generator...
    await agen.aclose()  # ...aclose() does
    span = finished(spans, "agen step")
    assert span.attributes["output.value"] == "a"
    assert span.status.status_code == StatusCode.UNSET


async def test_async_generator_step_ends_when_collected(spans):
    produce = make_agen()
    agen = produce()
    assert await agen.__anext__() == "a"
    del agen
    gc.collect()
    # the event loop's async-generator finaliser schedules aclose(); let it run
    for _ in range(100):
        if names(spans):
            break
        await asyncio.sleep(0)
    assert finished(spans, "agen step").attributes["output.value"] == "a"


async def test_steps_inside_an_async_generator_are_its_children(spans):
    @steptrace.step(name="agen parent")
    async def produce():
        async with Step(name="achild 1"):
            pass
        yield 1
        async with Step(name="achild 2"):
            pass
        yield 2

    async with Step(name="acaller") as caller:
        items = []
        async for item in produce():
            items.append(item)
            assert steptrace.current_step() is caller
    assert items == [1, 2]
    parent = finished(spans, "agen parent")
    assert parent.parent.span_id == finished(spans, "acaller").context.span_id
    for child in ("achild 1", "achild 2"):
        assert finished(spans, child).parent.span_id == parent.context.span_id


async def test_async_generator_input_and_failure(spans):
    @steptrace.step(name="agen failure")
    async def produce(prompt, temperature=0.0):
        yield prompt
        raise RuntimeError("stream broke")

    agen = produce("hi", temperature=0.5)
    assert await agen.__anext__() == "hi"
    with pytest.raises(RuntimeError, match="stream broke"):
        await agen.__anext__()
    span = finished(spans, "agen failure")
    assert input_of(span) == {"prompt": "hi", "temperature": 0.5}
    assert span.attributes["step.status"] == "failed"
    assert span.status.status_code == StatusCode.ERROR
