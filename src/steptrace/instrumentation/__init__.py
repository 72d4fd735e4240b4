"""LLM auto-instrumentation: ``steptrace.instrument()`` turns client calls into ``llm`` steps.

``instrument()`` instruments every supported library that is installed (missing ones are
skipped quietly); ``instrument("openai")`` just the ones named; ``uninstrument(...)`` undoes it.
``"threading"`` is accepted too: it makes threads and thread pools carry the current step
(``steptrace.instrument_threads()``); it is not part of the no-argument default. Each library's
instrumentor is an OpenTelemetry ``BaseInstrumentor`` (idempotent, symmetric, suppressible with
OpenTelemetry's suppression context key) registered under the ``opentelemetry_instrumentor``
entry point, so ``opentelemetry-instrument python app.py`` picks them up as well.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )

    from steptrace.instrumentation.anthropic import AnthropicInstrumentor
    from steptrace.instrumentation.openai import OpenAIInstrumentor

logger = logging.getLogger("steptrace.instrumentation")

#: name -> (module of the instrumentor, its class, the library it instruments)
_LIBRARIES: dict[str, tuple[str, str, str]] = {
    "openai": ("steptrace.instrumentation.openai", "OpenAIInstrumentor", "openai"),
    "anthropic": ("steptrace.instrumentation.anthropic", "AnthropicInstrumentor", "anthropic"),
}
_THREADING = "threading"


def _check(names: tuple[str, ...]) -> tuple[str, ...]:
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"library names must be strings, got {type(name).__name__}")
        if name not in _LIBRARIES and name != _THREADING:
            known = ", ".join(sorted([*_LIBRARIES, _THREADING]))
            raise ValueError(f"unknown library {name!r} to instrument (known: {known})")
    return names


def _installed(library: str) -> bool:
    try:
        return importlib.util.find_spec(library) is not None
    except (ImportError, ValueError):
        return False


def _instrumentor(name: str) -> BaseInstrumentor:
    module, cls, _library = _LIBRARIES[name]
    return getattr(importlib.import_module(module), cls)()


def instrument(*names: str, **kwargs: Any) -> None:
    """Instrument the named libraries, or every supported one that is installed.

    An unknown name raises ``ValueError``; a named library that is not installed is skipped
    with a warning. Calling it again is harmless. ``kwargs`` go to ``BaseInstrumentor.instrument``.
    """
    explicit = bool(names)
    for name in _check(names) or tuple(_LIBRARIES):
        if name == _THREADING:
            from steptrace._context import instrument_threads

            instrument_threads()
            continue
        library = _LIBRARIES[name][2]
        if not _installed(library):
            if explicit:
                logger.warning("steptrace: cannot instrument %s: it is not installed", library)
            continue
        instrumentor = _instrumentor(name)
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(**kwargs)


def uninstrument(*names: str) -> None:
    """Undo ``instrument`` for the named libraries (default: all of them)."""
    for name in _check(names) or tuple(_LIBRARIES):
        if name == _THREADING:
            from steptrace._context import uninstrument_threads

            uninstrument_threads()
            continue
        if not _installed(_LIBRARIES[name][2]):
            continue
        instrumentor = _instrumentor(name)
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def __getattr__(name: str) -> Any:
    """``OpenAIInstrumentor``/``AnthropicInstrumentor`` on first use (the client libraries are
    imported only when instrumenting)."""
    for module, cls, _library in _LIBRARIES.values():
        if name == cls:
            value = getattr(importlib.import_module(module), cls)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AnthropicInstrumentor", "OpenAIInstrumentor", "instrument", "uninstrument"]
