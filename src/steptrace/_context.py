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
#: Asked in order for a new top-level step's thread id; the first that answers wins.
_thread_id_providers: tuple[ThreadIdProvider, ...] = ()


def current_step() -> Step | None:
    """The innermost open Step in this context, or ``None``."""
    step = otel_context.get_value(STEP_KEY)
    while step is not None and step._ended:  # type: ignore[attr-defined]
        step = step._parent_step  # type: ignore[attr-defined]
    return step  # type: ignore[return-value]


def _check_provider(provider: object) -> None:
    if not callable(provider):
        raise TypeError(f"provider must be callable, got {type(provider).__name__}")


def add_thread_id_provider(provider: ThreadIdProvider) -> None:
    """Add a source of ``thread_id`` for new top-level steps (chat exporters route by it).

    Several can coexist (a Chainlit and a Panel exporter in one process): each returns None
    outside its own sessions. Steps with an explicit ``thread_id`` or a parent keep theirs.
    """
    global _thread_id_providers
    _check_provider(provider)
    if provider not in _thread_id_providers:
        _thread_id_providers = (*_thread_id_providers, provider)


def remove_thread_id_provider(provider: ThreadIdProvider) -> None:
    """Undo ``add_thread_id_provider``."""
    global _thread_id_providers
    _thread_id_providers = tuple(p for p in _thread_id_providers if p != provider)


def set_thread_id_provider(provider: ThreadIdProvider | None) -> None:
    """Make ``provider`` the only source of ``thread_id`` for new top-level steps (``None``
    removes every provider). Exporters that may share a process use ``add_thread_id_provider``."""
    global _thread_id_providers
    if provider is None:
        _thread_id_providers = ()
        return
    _check_provider(provider)
    _thread_id_providers = (provider,)


def provided_thread_id() -> str | None:
    for provider in _thread_id_providers:
        try:
            value = provider()
        except Exception:
            continue
        if value is not None:
            return value if isinstance(value, str) else str(value)
    return None


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
