"""Exceptions and cancellation in a Step: the four ``context_exception`` modes, output that must
survive an error, cancellation that always propagates, and falsy results of decorated functions.
"""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.trace import StatusCode

import steptrace
from core.helpers import finished
from steptrace import Step

MODES = ["raise", "summary", "verbose", "ignore"]


def exception_events(span):
    return [e for e in span.events if e.name == "exception"]


def assert_recorded(span, exc_type_suffix: str, message: str) -> None:
    """One standard ``exception`` event for the error, with type, message and stacktrace."""
    recorded = exception_events(span)
    assert len(recorded) == 1, [e.name for e in span.events]
    attributes = recorded[0].attributes
    assert attributes["exception.type"].endswith(exc_type_suffix)
    assert attributes["exception.message"] == message
    assert "Traceback (most recent call last)" in attributes["exception.stacktrace"]


def assert_failed_span(span, description_part: str) -> None:
    assert span.attributes["step.status"] == "failed"
    assert span.status.status_code == StatusCode.ERROR
    assert description_part in span.status.description


# -- the four modes, sync and async ------------------------------------------------------------


def test_raise_records_then_propagates(spans):
    reached_after = False
    with pytest.raises(ValueError, match="boom"):
        with Step(name="raise mode") as step:
            raise ValueError("boom")
        reached_after = True  # pragma: no cover
    assert reached_after is False
    assert step.status == "failed"
    assert step.output == "boom"
    span = finished(spans, "raise mode")
    assert_failed_span(span, "boom")
    assert_recorded(span, "ValueError", "boom")


async def test_raise_records_then_propagates_async(spans):
    with pytest.raises(ValueError, match="boom"):
        async with Step(name="raise mode async") as step:
            raise ValueError("boom")
    assert step.status == "failed"
    span = finished(spans, "raise mode async")
    assert_failed_span(span, "boom")
    assert_recorded(span, "ValueError", "boom")


def test_raise_is_the_default():
    assert Step().context_exception == "raise"


@pytest.mark.parametrize("mode", ["summary", "verbose"])
def test_summary_and_verbose_record_and_swallow(spans, mode):
    after = []
    with Step(name=f"{mode} mode", context_exception=mode) as step:
        raise ValueError("boom")
    after.append("ran")
    assert after == ["ran"]
    assert step.status == "failed"
    assert step.title == "Error: 'ValueError'"
    span = finished(spans, f"{mode} mode")
    assert_failed_span(span, "boom")
    assert_recorded(span, "ValueError", "boom")


@pytest.mark.parametrize("mode", ["summary", "verbose"])
async def test_summary_and_verbose_record_and_swallow_async(spans, mode):
    async with Step(name=f"{mode} async", context_exception=mode) as step:
        raise ValueError("boom")
    assert step.status == "failed"
    span = finished(spans, f"{mode} async")
    assert_failed_span(span, "boom")
    assert_recorded(span, "ValueError", "boom")


def test_summary_puts_the_message_in_the_output(spans):
    with Step(name="summary text", context_exception="summary") as step:
        raise ValueError("boom")
    assert step.output == "boom"
    assert finished(spans, "summary text").attributes["output.value"] == "boom"


def test_verbose_appends_the_formatted_traceback(spans):
    with Step(name="verbose text", context_exception="verbose") as step:
        step.stream("working")
        raise ValueError("boom")
    output = step.output
    assert output.startswith("working\n")
    assert "Traceback (most recent call last)" in output
    assert 'raise ValueError("boom")' in output
    assert "ValueError: boom" in output
    assert finished(spans, "verbose text").attributes["output.value"] == output


def test_ignore_swallows_and_ends_success(spans):
    with Step(name="ignore mode", context_exception="ignore", success_title="Fine") as step:
        step.stream("kept")
        raise ValueError("boom")
    assert step.status == "success"
    assert step.title == "Fine"
    assert step.output == "kept"
    span = finished(spans, "ignore mode")
    assert span.attributes["step.status"] == "success"
    assert span.attributes["output.value"] == "kept"
    assert span.status.status_code == StatusCode.UNSET


async def test_ignore_swallows_and_ends_success_async(spans):
    async with Step(name="ignore async", context_exception="ignore") as step:
        raise ValueError("boom")
    assert step.status == "success"
    assert finished(spans, "ignore async").status.status_code == StatusCode.UNSET


def test_mode_can_be_changed_in_the_body(spans):
    with Step(name="changed mode") as step:
        step.context_exception = "summary"
        raise ValueError("boom")
    assert step.status == "failed"


def test_swallowed_child_error_leaves_the_parent_successful(spans):
    with Step(name="parent") as parent:
        with Step(name="child", context_exception="summary") as child:
            raise ValueError("boom")
    assert child.status == "failed" and parent.status == "success"
    assert finished(spans, "parent").status.status_code == StatusCode.UNSET
    assert finished(spans, "child").status.status_code == StatusCode.ERROR


def test_propagated_child_error_fails_the_parent_too(spans):
    with pytest.raises(ValueError):
        with Step(name="parent") as parent:
            with Step(name="child") as child:
                raise ValueError("boom")
    assert child.status == "failed" and parent.status == "failed"
    assert_recorded(finished(spans, "parent"), "ValueError", "boom")
    assert_recorded(finished(spans, "child"), "ValueError", "boom")


# -- output produced before an error survives it -----------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("raise", "partial answer\nboom"),
        ("summary", "partial answer\nboom"),
        ("ignore", "partial answer"),
    ],
)
def test_streamed_output_survives_an_error(spans, mode, expected):
    try:
        with Step(name="streamed then failed", context_exception=mode) as step:
            step.stream_token("partial")
            step.stream_token(" answer")
            raise ValueError("boom")
    except ValueError:
        assert mode == "raise"
    assert step.output == expected
    span = finished(spans, "streamed then failed")
    assert span.attributes["output.value"] == expected
    tokens = "".join(e.attributes["step.token.text"] for e in span.events if e.name == "step.token")
    assert tokens == "partial answer"


def test_streamed_output_survives_verbose(spans):
    with Step(name="streamed verbose", context_exception="verbose") as step:
        step.stream_token("partial answer")
        raise ValueError("boom")
    assert step.output.startswith("partial answer\n")


def test_streamed_output_survives_when_failed_title_is_set(spans):
    with pytest.raises(ValueError):
        with Step(name="failed title", failed_title="Search failed") as step:
            step.stream_token("partial answer")
            raise ValueError("boom")
    assert step.output == "partial answer"
    assert step.title == "Search failed"
    assert finished(spans, "failed title").attributes["output.value"] == "partial answer"


def test_assigned_output_survives_an_error(spans):
    with pytest.raises(ValueError):
        with Step(name="assigned then failed") as step:
            step.output = "half done"
            raise ValueError("boom")
    assert step.output.startswith("half done")
    assert "boom" in step.output
    assert (
        finished(spans, "assigned then failed").attributes["output.value"].startswith("half done")
    )


async def test_streamed_output_survives_an_error_async(spans):
    with pytest.raises(ValueError):
        async with Step(name="async streamed then failed") as step:
            await step.stream_token("partial")
            raise ValueError("boom")
    assert step.output == "partial\nboom"


def test_error_message_goes_after_a_trailing_newline_without_a_blank_line():
    with Step(context_exception="summary") as step:
        step.stream("line\n")
        raise ValueError("boom")
    assert step.output == "line\nboom"


# -- cancellation always propagates ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_task_cancel_is_recorded_and_propagates(spans, mode):
    entered = asyncio.Event()
    holder: dict = {}
    after_step: list = []

    async def body() -> None:
        async with Step(name="cancelled", context_exception=mode) as step:
            holder["step"] = step
            await step.stream_token("partial")
            entered.set()
            await asyncio.Event().wait()  # until cancelled
        after_step.append("continued")  # must not run: cancellation propagates

    task = asyncio.create_task(body())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert after_step == []
    step = holder["step"]
    assert step.status == "failed"
    assert step.output.startswith("partial")
    span = finished(spans, "cancelled")
    assert span.attributes["output.value"].startswith("partial")
    recorded = exception_events(span)
    assert len(recorded) == 1
    assert recorded[0].attributes["exception.type"].endswith("CancelledError")


@pytest.mark.parametrize("mode", MODES)
def test_keyboard_interrupt_is_recorded_and_propagates(spans, mode):
    with pytest.raises(KeyboardInterrupt):
        with Step(name="interrupted", context_exception=mode) as step:
            step.stream_token("partial")
            raise KeyboardInterrupt
    assert step.status == "failed"
    # str(KeyboardInterrupt()) is empty: nothing but the verbose traceback is added
    if mode == "verbose":
        assert step.output.startswith("partial\n```python\nTraceback")
    else:
        assert step.output == "partial"
    span = finished(spans, "interrupted")
    assert span.attributes["output.value"] == step.output
    recorded = exception_events(span)
    assert len(recorded) == 1
    assert recorded[0].attributes["exception.type"] == "KeyboardInterrupt"


@pytest.mark.parametrize("mode", MODES)
async def test_keyboard_interrupt_propagates_from_async_with(spans, mode):
    with pytest.raises(KeyboardInterrupt):
        async with Step(name="interrupted async", context_exception=mode):
            raise KeyboardInterrupt
    assert len(exception_events(finished(spans, "interrupted async"))) == 1


@pytest.mark.parametrize("mode", MODES)
def test_generator_exit_is_recorded_and_propagates(spans, mode):
    def producer():
        with Step(name="inside generator", context_exception=mode) as step:
            step.stream_token("first")
            yield 1
            yield 2  # pragma: no cover - closed before

    gen = producer()
    assert next(gen) == 1
    gen.close()  # RuntimeError("generator ignored GeneratorExit") if the step swallowed it
    span = finished(spans, "inside generator")
    assert span.attributes["output.value"].startswith("first")
    if mode != "verbose":
        assert span.attributes["output.value"] == "first"
    recorded = exception_events(span)
    assert len(recorded) == 1
    assert recorded[0].attributes["exception.type"] == "GeneratorExit"


@pytest.mark.parametrize("mode", MODES)
def test_explicit_generator_exit_propagates(spans, mode):
    with pytest.raises(GeneratorExit):
        with Step(name="explicit exit", context_exception=mode):
            raise GeneratorExit
    assert len(exception_events(finished(spans, "explicit exit"))) == 1


# -- decorated functions: errors and falsy results ---------------------------------------------


@pytest.mark.parametrize(("value", "text"), [(0, "0"), ("", ""), (False, "False"), ([], "[]")])
def test_falsy_results_of_sync_functions_are_recorded(spans, value, text):
    @steptrace.step(name="falsy")
    def compute():
        return value

    assert compute() == value
    attributes = finished(spans, "falsy").attributes
    assert attributes["output.value"] == text


@pytest.mark.parametrize(("value", "text"), [(0, "0"), ("", ""), (False, "False"), (0.0, "0.0")])
async def test_falsy_results_of_coroutines_are_recorded(spans, value, text):
    @steptrace.step(name="falsy async")
    async def compute():
        return value

    assert await compute() == value
    assert finished(spans, "falsy async").attributes["output.value"] == text


def test_none_result_is_not_recorded(spans):
    @steptrace.step(name="returns none")
    def compute():
        return None

    assert compute() is None
    attributes = finished(spans, "returns none").attributes
    assert "output.value" not in attributes
    assert "output.mime_type" not in attributes


async def test_none_result_of_a_coroutine_is_not_recorded(spans):
    @steptrace.step(name="returns none async")
    async def compute():
        return None

    assert await compute() is None
    assert "output.value" not in finished(spans, "returns none async").attributes


def test_output_set_in_the_body_wins_over_the_result(spans):
    @steptrace.step(name="explicit output")
    def compute():
        steptrace.current_step().output = "chosen"
        return "returned"

    assert compute() == "returned"
    assert finished(spans, "explicit output").attributes["output.value"] == "chosen"


def test_decorated_function_error_propagates_and_is_recorded(spans):
    @steptrace.step(name="decorated failure")
    def compute():
        raise LookupError("nothing found")

    with pytest.raises(LookupError, match="nothing found"):
        compute()
    span = finished(spans, "decorated failure")
    assert_failed_span(span, "nothing found")
    assert_recorded(span, "LookupError", "nothing found")


async def test_decorated_coroutine_error_summary_returns_none(spans):
    @steptrace.step(name="decorated summary", context_exception="summary")
    async def compute():
        raise LookupError("nothing found")

    assert await compute() is None
    span = finished(spans, "decorated summary")
    assert_failed_span(span, "nothing found")


async def test_decorated_coroutine_cancelled_propagates(spans):
    entered = asyncio.Event()

    @steptrace.step(name="decorated cancelled", context_exception="ignore")
    async def compute():
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(compute())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    recorded = exception_events(finished(spans, "decorated cancelled"))
    assert len(recorded) == 1
    assert recorded[0].attributes["exception.type"].endswith("CancelledError")


# -- exceptions that are awkward themselves ----------------------------------------------------


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of the exception failed")


@pytest.mark.parametrize("mode", ["raise", "summary", "verbose"])
def test_an_exception_whose_str_raises_is_still_handled(spans, mode):
    try:
        with Step(name="unprintable error", context_exception=mode) as step:
            raise UnprintableError
    except UnprintableError:
        assert mode == "raise"  # the app's own exception, not a telemetry one
    assert step.status == "failed"
    assert "UnprintableError" in step.output or mode == "verbose"
    span = finished(spans, "unprintable error")
    assert span.status.status_code == StatusCode.ERROR
    assert "UnprintableError" in span.status.description


def test_an_exception_whose_str_raises_still_gets_its_exception_event(spans):
    with pytest.raises(UnprintableError):
        with Step(name="unprintable event"):
            raise UnprintableError
    recorded = exception_events(finished(spans, "unprintable event"))
    assert len(recorded) == 1
    assert recorded[0].attributes["exception.type"].endswith("UnprintableError")
    assert "Traceback (most recent call last)" in recorded[0].attributes["exception.stacktrace"]


def test_a_huge_exception_message_is_bounded_on_the_span(spans):
    huge = "z" * 5_000_000
    with pytest.raises(ValueError):
        with Step(name="huge error") as step:
            raise ValueError(huge)
    assert step.output == huge  # the app's value is untouched
    span = finished(spans, "huge error")
    bound = steptrace.settings.max_value_length + 100
    assert len(span.attributes["output.value"]) <= bound
    assert len(span.status.description) <= bound
    assert len(exception_events(span)[0].attributes["exception.message"]) <= bound


# -- cancellation through decorated generators -------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_cancelling_a_decorated_async_generator_propagates(spans, mode):
    entered = asyncio.Event()

    @steptrace.step(name="cancelled agen", context_exception=mode)
    async def produce():
        yield "first"
        entered.set()
        await asyncio.Event().wait()
        yield "never"  # pragma: no cover

    async def consume() -> list:
        return [item async for item in produce()]

    task = asyncio.create_task(consume())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = finished(spans, "cancelled agen")
    assert span.attributes["output.value"].startswith("first")
    recorded = exception_events(span)
    assert len(recorded) == 1
    assert recorded[0].attributes["exception.type"].endswith("CancelledError")


@pytest.mark.parametrize("mode", MODES)
def test_keyboard_interrupt_thrown_into_a_decorated_generator_propagates(spans, mode):
    @steptrace.step(name="interrupted gen", context_exception=mode)
    def produce():
        yield "first"
        yield "second"  # pragma: no cover

    gen = produce()
    assert next(gen) == "first"
    with pytest.raises(KeyboardInterrupt):
        gen.throw(KeyboardInterrupt())
    span = finished(spans, "interrupted gen")
    assert span.attributes["output.value"].startswith("first")
    assert exception_events(span)[0].attributes["exception.type"] == "KeyboardInterrupt"


@pytest.mark.parametrize("mode", ["summary", "verbose"])
def test_decorated_generator_error_is_swallowed_in_summary_modes(spans, mode):
    @steptrace.step(name="swallowing gen", context_exception=mode)
    def produce():
        yield "first"
        raise ValueError("mid-stream")

    assert list(produce()) == ["first"]
    span = finished(spans, "swallowing gen")
    assert span.attributes["step.status"] == "failed"
    assert span.attributes["output.value"].startswith("first\n")
    assert "mid-stream" in span.attributes["output.value"]
