"""Finding the tracer to use, cheaply, on every step.

With no TracerProvider configured anywhere, steps skip span creation entirely (they still
nest, stream and reach listeners), so an app that has not set up OpenTelemetry pays next to
nothing. Once the app or ``configure()`` sets a provider, steps become real spans.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import NoOpTracer, ProxyTracerProvider, Tracer, TracerProvider

from steptrace._version import __version__

SCOPE = "steptrace"

_provider_override: TracerProvider | None = None
_cached_provider: object = None
_cached_tracer: Tracer | None = None


def use_provider(provider: TracerProvider | None) -> None:
    """Make steps use ``provider`` instead of the global one (``None``: back to global)."""
    global _provider_override
    _provider_override = provider


def active_provider() -> TracerProvider | None:
    """The provider steps report to, or ``None`` when no real one is configured."""
    if _provider_override is not None:
        return _provider_override
    # The API keeps the global provider in a module attribute; reading it avoids building a
    # ProxyTracerProvider lookup on every step. Fall back to the public call if it moves.
    provider = getattr(trace, "_TRACER_PROVIDER", None)
    if provider is None and not hasattr(trace, "_TRACER_PROVIDER"):
        provider = trace.get_tracer_provider()
        if isinstance(provider, ProxyTracerProvider):
            return None
    return provider


def get_tracer() -> Tracer | None:
    """steptrace's tracer on the active provider; ``None`` if spans would be no-ops anyway."""
    global _cached_provider, _cached_tracer
    provider = active_provider()
    if provider is _cached_provider:
        return _cached_tracer
    tracer: Tracer | None = None
    if provider is not None:
        tracer = provider.get_tracer(SCOPE, __version__)
        if isinstance(tracer, NoOpTracer):
            tracer = None
    _cached_provider, _cached_tracer = provider, tracer
    return tracer
