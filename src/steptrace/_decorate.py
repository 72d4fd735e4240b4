"""``@steptrace.step`` and ``@Step(...)`` on every kind of function.

Sync and coroutine functions run inside the step. Generator and async-generator functions keep
their kind (``inspect`` still sees a generator function): the step opens at the first ``next``,
stays open while the generator is suspended, and ends when it is exhausted, closed or collected.
The step's context is attached only around each resumption, never across a ``yield``, so the
caller's context is untouched while the generator is suspended and no token is ever detached in
a context it was not created in ("Failed to detach context" in other SDKs).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, overload

from steptrace._step import Step

F = TypeVar("F", bound=Callable[..., Any])

#: Items of a decorated generator kept as its output when they are not text.
MAX_RECORDED_ITEMS = 1000


def _arguments(signature: inspect.Signature | None, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by name (``self``/``cls`` left out), as Chainlit logs them."""
    if signature is None:
        return {"args": list(args), "kwargs": kwargs} if args or kwargs else {}
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError:
        return {"args": list(args), "kwargs": kwargs}
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    for implicit in ("self", "cls"):
        arguments.pop(implicit, None)
    return arguments


def _new_step(template: dict[str, Any], default_name: str) -> Step:
    options = dict(template)
    if not options.get("name"):
        options["name"] = default_name
    options["metadata"] = dict(options.get("metadata") or {})
    if options.get("tags") is not None:
        options["tags"] = list(options["tags"])
    return Step(**options)


def _record_result(step: Step, result: Any) -> None:
    # Falsy results (0, "", False, []) are results too; only None means "nothing returned".
    if result is not None and not step._output_set:
        step.output = result


def decorate(func: F, template: dict[str, Any]) -> F:
    """Wrap ``func`` so that every call runs in a new Step built from ``template``."""
    if not callable(func):
        raise TypeError(f"step decorator needs a callable, got {type(func).__name__}")
    try:
        signature: inspect.Signature | None = inspect.signature(func)
    except (TypeError, ValueError):
        signature = None
    name = getattr(func, "__name__", None) or type(func).__name__

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
            step = _new_step(template, name)
            step.input = _arguments(signature, args, kwargs)
            agen = func(*args, **kwargs)
            recorder = _ItemRecorder(step)
            step.begin()
            to_send: Any = None
            to_throw: BaseException | None = None
            while True:
                token = step._attach()
                try:
                    if to_throw is not None:
                        item = await agen.athrow(to_throw)
                    else:
                        item = await agen.asend(to_send)
                except StopAsyncIteration:
                    step._detach(token)
                    recorder.finish()
                    step._finish(None)
                    return
                except BaseException as exc:
                    step._detach(token)
                    recorder.finish()
                    if step._finish(exc):
                        return
                    raise
                step._detach(token)
                recorder.add(item)
                to_throw = None
                try:
                    to_send = yield item
                except GeneratorExit:
                    await _aclose(agen, step)
                    recorder.finish()
                    step.set_attributes({"step.generator.closed_early": True})
                    step._finish(None)
                    raise
                except BaseException as exc:
                    to_throw = exc

        return async_gen_wrapper  # type: ignore[return-value]

    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            step = _new_step(template, name)
            step.input = _arguments(signature, args, kwargs)
            gen = func(*args, **kwargs)
            recorder = _ItemRecorder(step)
            step.begin()
            to_send: Any = None
            to_throw: BaseException | None = None
            while True:
                token = step._attach()
                try:
                    if to_throw is not None:
                        item = gen.throw(to_throw)
                    else:
                        item = gen.send(to_send)
                except StopIteration as stop:
                    step._detach(token)
                    recorder.finish()
                    _record_result(step, stop.value)
                    step._finish(None)
                    return stop.value
                except BaseException as exc:
                    step._detach(token)
                    recorder.finish()
                    if step._finish(exc):
                        return None
                    raise
                step._detach(token)
                recorder.add(item)
                to_throw = None
                try:
                    to_send = yield item
                except GeneratorExit:
                    token = step._attach()
                    try:
                        gen.close()
                    finally:
                        step._detach(token)
                    recorder.finish()
                    step.set_attributes({"step.generator.closed_early": True})
                    step._finish(None)
                    raise
                except BaseException as exc:
                    to_throw = exc

        return gen_wrapper  # type: ignore[return-value]

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            step = _new_step(template, name)
            step.input = _arguments(signature, args, kwargs)
            async with step:
                result = await func(*args, **kwargs)
                _record_result(step, result)
                return result

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        step = _new_step(template, name)
        step.input = _arguments(signature, args, kwargs)
        with step:
            result = func(*args, **kwargs)
            _record_result(step, result)
            return result

    return sync_wrapper  # type: ignore[return-value]


async def _aclose(agen: Any, step: Step) -> None:
    token = step._attach()
    try:
        await agen.aclose()
    finally:
        step._detach(token)


class _ItemRecorder:
    """What a decorated generator yields: text is streamed into the step as it comes, anything
    else is kept (bounded) and becomes the output when the generator ends."""

    __slots__ = ("_items", "_step")

    def __init__(self, step: Step) -> None:
        self._step = step
        self._items: list[Any] | None = None

    def add(self, item: Any) -> None:
        if isinstance(item, str):
            self._step.stream_token(item)
            return
        if self._items is None:
            self._items = []
        if len(self._items) < MAX_RECORDED_ITEMS:
            self._items.append(item)

    def finish(self) -> None:
        items = self._items
        if items and not self._step._output_set:
            self._step.output = items


@overload
def step(func: F) -> F: ...
@overload
def step(
    func: None = None,
    *,
    name: str | None = None,
    type: str = "undefined",
    **options: Any,
) -> Callable[[F], F]: ...
def step(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    type: str = "undefined",
    **options: Any,
) -> Any:
    """Decorate a function so that each call is a Step: ``@step`` or ``@step(name=..., type=...)``.

    Takes every ``Step`` argument. Works on sync, async, generator and async-generator
    functions; the arguments become the input and the return value the output.
    """
    # Validate the options once, at decoration time, with the Step constructor itself.
    template = Step(name=name, type=type, **options)._template()
    if func is None:
        return lambda f: decorate(f, template)
    return decorate(func, template)
