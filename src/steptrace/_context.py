"""Which step is current, and carrying that across threads.

The current step lives in the OpenTelemetry context (next to the current span), never in a
shared mutable stack: asyncio tasks get their own copy, and threads get it exactly when the OTel
context is carried to them (``wrap_context`` or ``instrument_threads``).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context

if TYPE_CHECKING:
    from steptrace._step import Step

STEP_KEY = otel_context.create_key("steptrace-step")

F = TypeVar("F", bound=Callable[..., Any])

ThreadIdProvider = Callable[[], "str | None"]
_thread_id_provider: ThreadIdProvider | None = None


def current_step() -> Step | None:
    """The innermost open Step in this context, or ``None``."""
    step = otel_context.get_value(STEP_KEY)
    while step is not None and step._ended:  # type: ignore[attr-defined]
        step = step._parent_step  # type: ignore[attr-defined]
    return step  # type: ignore[return-value]


def set_thread_id_provider(provider: ThreadIdProvider | None) -> None:
    """Supply ``thread_id`` for new top-level steps (chat exporters route by it).

    Steps with an explicit ``thread_id`` or a parent step keep theirs; ``None`` removes it.
    """
    global _thread_id_provider
    if provider is not None and not callable(provider):
        raise TypeError(f"provider must be callable or None, got {type(provider).__name__}")
    _thread_id_provider = provider


def provided_thread_id() -> str | None:
    provider = _thread_id_provider
    if provider is None:
        return None
    try:
        value = provider()
    except Exception:
        return None
    return value if isinstance(value, str) or value is None else str(value)


def wrap_context(fn: F) -> F:
    """Bind the caller's context (current step and span) to ``fn``, to run it in another thread.

    ``executor.submit(steptrace.wrap_context(work), x)`` makes steps opened by ``work`` children
    of the step that submitted it.
    """
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run_in_context(*args: Any, **kwargs: Any) -> Any:
        return ctx.copy().run(fn, *args, **kwargs)

    return run_in_context  # type: ignore[return-value]


def instrument_threads() -> None:
    """Make ``threading.Thread`` and ``ThreadPoolExecutor`` (so ``loop.run_in_executor`` too)
    run in a copy of the starting code's context: the current step, its span, and context
    variables of chat frameworks (a Chainlit session) all carry over, as with
    ``asyncio.to_thread``."""
    from steptrace._threads import ThreadContextInstrumentor

    instrumentor = ThreadContextInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def uninstrument_threads() -> None:
    """Undo ``instrument_threads``."""
    from steptrace._threads import ThreadContextInstrumentor

    instrumentor = ThreadContextInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
