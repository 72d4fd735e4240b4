"""Carrying the caller's whole context into threads, the way ``asyncio.to_thread`` does.

OpenTelemetry's threading instrumentor carries only the OTel context. Chat frameworks keep
their session in context variables of their own (Chainlit's ``context_var``), and a step opened
in a worker thread needs both: its parent and the session it belongs to. So threads started and
work submitted to a ``ThreadPoolExecutor`` (``loop.run_in_executor`` included) run in a copy of
the context of the code that started or submitted them.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper


def _start(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    # Bind the starter's context to this thread object's run(), whatever class defines it
    # (subclasses such as Timer override run()).
    ctx = contextvars.copy_context()
    original_run = instance.run

    def run_in_starter_context() -> Any:
        return ctx.run(original_run)

    try:
        instance.run = run_in_starter_context
    except AttributeError:  # a subclass with __slots__ and no run slot: leave it as it is
        pass
    return wrapped(*args, **kwargs)


def _submit(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
    if not args:
        return wrapped(*args, **kwargs)
    fn, *rest = args
    ctx = contextvars.copy_context()

    def run_in_submitter_context(*fn_args: Any, **fn_kwargs: Any) -> Any:
        return ctx.run(fn, *fn_args, **fn_kwargs)

    return wrapped(run_in_submitter_context, *rest, **kwargs)


class ThreadContextInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """``Thread.start`` and ``ThreadPoolExecutor.submit`` carry the caller's context."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        wrap_function_wrapper(threading.Thread, "start", _start)
        wrap_function_wrapper(ThreadPoolExecutor, "submit", _submit)

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap(threading.Thread, "start")
        unwrap(ThreadPoolExecutor, "submit")
