"""``steptrace.configure()``: optional set-up from the standard ``OTEL_*`` environment.

Without it, steps report to the global TracerProvider, whatever the app set up. With it, and
no provider set by the app, steptrace builds one: exporters chosen by ``OTEL_TRACES_EXPORTER``
(``otlp``, ``console``, ``none``), OTLP over HTTP/protobuf or gRPC per
``OTEL_EXPORTER_OTLP_PROTOCOL``, endpoint/headers/timeout/service name from their variables.
A provider the app set itself is never replaced.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from steptrace import _tracing
from steptrace._export_stats import CountingBatchSpanProcessor
from steptrace._settings import Redactor, settings

logger = logging.getLogger("steptrace")

EXPORTER_NAMES = ("otlp", "console", "none")
PROTOCOLS = ("http/protobuf", "grpc")

_lock = threading.Lock()
#: The provider steptrace created (and so owns: flushes and shuts down), if any.
_owned_provider: TracerProvider | None = None
_web_channel: Any = None


def configure(
    *,
    service_name: str | None = None,
    exporter: str | SpanExporter | Sequence[str | SpanExporter] | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: dict[str, str] | None = None,
    console: bool = False,
    tracer_provider: TracerProvider | None = None,
    capture_message_content: bool | None = None,
    redact: Redactor | None = None,
    max_value_length: int | None = None,
    web: bool | dict[str, Any] | None = None,
) -> TracerProvider | None:
    """Set steptrace up; every argument is optional and defaults to the ``OTEL_*`` environment.

    - ``exporter``: ``"otlp"``, ``"console"``, ``"none"``, a ``SpanExporter``, or a list of them
      (default: ``OTEL_TRACES_EXPORTER``, else ``"otlp"``).
    - ``endpoint`` / ``protocol`` / ``headers``: OTLP settings (default: ``OTEL_EXPORTER_OTLP_*``);
      ``protocol`` is ``"http/protobuf"`` or ``"grpc"``.
    - ``console``: also print finished steps readably to stderr.
    - ``tracer_provider``: report steps to this provider instead of the global one.
    - ``capture_message_content``, ``redact``, ``max_value_length``: what content leaves the
      process, see ``steptrace.settings``.
    - ``web``: ``True`` or a dict of options starts the live web chat channel
      (needs ``steptrace-web``).

    Returns the TracerProvider steps report to. The app's own global provider, if it set one,
    is used as it is: steptrace never replaces it.
    """
    global _owned_provider, _web_channel
    _update_settings(capture_message_content, redact, max_value_length)
    names = _exporter_list(exporter)
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    if service_name is not None and not isinstance(service_name, str):
        raise TypeError(f"service_name must be a string, got {type(service_name).__name__}")
    if not isinstance(console, bool):
        raise TypeError(f"console must be a bool, got {type(console).__name__}")

    with _lock:
        if tracer_provider is not None:
            if not isinstance(tracer_provider, trace.TracerProvider):
                raise TypeError(
                    "tracer_provider must be a TracerProvider, "
                    f"got {type(tracer_provider).__name__}"
                )
            _tracing.use_provider(tracer_provider)
            provider: TracerProvider | None = tracer_provider  # type: ignore[assignment]
            if exporter is not None or console:
                _add_processors(provider, names, endpoint, protocol, headers, console)
        else:
            existing = _tracing.active_provider()
            if existing is not None:
                provider = existing  # the app's (or ours from an earlier call): keep it
                if existing is not _owned_provider and (exporter is not None or console):
                    _add_processors(existing, names, endpoint, protocol, headers, console)
                elif existing is _owned_provider:
                    logger.debug("steptrace.configure() called again; keeping the provider")
            else:
                provider = TracerProvider(resource=_resource(service_name), shutdown_on_exit=False)
                _add_processors(provider, names, endpoint, protocol, headers, console)
                trace.set_tracer_provider(provider)
                _owned_provider = provider

    from steptrace._mirror import ensure_mirroring

    ensure_mirroring()
    if web:
        _web_channel = _start_web(web)
    return provider  # type: ignore[return-value]


def _update_settings(
    capture: bool | None, redact: Callable[[str, str], str] | None, max_length: int | None
) -> None:
    if capture is not None:
        if not isinstance(capture, bool):
            raise TypeError(f"capture_message_content must be a bool, got {type(capture).__name__}")
        settings.capture_message_content = capture
    if redact is not None:
        if not callable(redact):
            raise TypeError(f"redact must be callable, got {type(redact).__name__}")
        settings.redact = redact
    if max_length is not None:
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 16:
            raise ValueError(f"max_value_length must be an int >= 16, got {max_length!r}")
        settings.max_value_length = max_length


def _exporter_list(
    exporter: str | SpanExporter | Sequence[str | SpanExporter] | None,
) -> list[str | SpanExporter]:
    if exporter is None:
        raw = os.environ.get("OTEL_TRACES_EXPORTER", "otlp")
        items: list[str | SpanExporter] = [part.strip() for part in raw.split(",") if part.strip()]
    elif isinstance(exporter, (str, SpanExporter)):
        items = [exporter]
    elif isinstance(exporter, Sequence):
        items = list(exporter)
    else:
        raise TypeError(
            f"exporter must be a name, a SpanExporter or a list of them, "
            f"got {type(exporter).__name__}"
        )
    for item in items:
        if isinstance(item, str):
            if item not in EXPORTER_NAMES:
                raise ValueError(
                    f"exporter must be one of {', '.join(EXPORTER_NAMES)} (or a SpanExporter); "
                    f"got {item!r}"
                )
        elif not isinstance(item, SpanExporter):
            raise TypeError(f"exporter items must be names or SpanExporters, got {item!r}")
    return items


def _resource(service_name: str | None) -> Resource:
    attributes: dict[str, Any] = {}
    if service_name is not None:
        attributes[SERVICE_NAME] = service_name
    elif not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        attributes[SERVICE_NAME] = _default_service_name()
    return Resource.create(attributes)


def _default_service_name() -> str:
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    script = script.removesuffix(".py")
    return script if script and script not in ("-c", "-m", "python") else "steptrace-app"


def _add_processors(
    provider: TracerProvider,
    names: list[str | SpanExporter],
    endpoint: str | None,
    protocol: str | None,
    headers: dict[str, str] | None,
    console: bool,
) -> None:
    processors: list[SpanProcessor] = []
    want_console = console
    for item in names:
        # Batching that counts what it drops (steptrace.export_stats()) instead of losing it
        # silently, with a bounded shutdown.
        if isinstance(item, SpanExporter):
            processors.append(CountingBatchSpanProcessor(item))
        elif item == "otlp":
            exporter = _otlp_exporter(endpoint, protocol, headers)
            processors.append(CountingBatchSpanProcessor(exporter))
        elif item == "console":
            want_console = True
    if want_console:
        from steptrace._console import ReadableConsoleExporter

        processors.append(SimpleSpanProcessor(ReadableConsoleExporter()))
    for processor in processors:
        provider.add_span_processor(processor)


def _otlp_exporter(
    endpoint: str | None, protocol: str | None, headers: dict[str, str] | None
) -> SpanExporter:
    chosen = (
        protocol
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if chosen == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=endpoint, headers=headers)
    if chosen in ("http/protobuf", "http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        if endpoint is not None and not endpoint.rstrip("/").endswith("/v1/traces"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        return HttpExporter(endpoint=endpoint, headers=headers)
    raise ValueError(
        f"OTLP protocol must be one of {', '.join(PROTOCOLS)}; got {chosen!r} "
        "(from OTEL_EXPORTER_OTLP_PROTOCOL)"
    )


def _start_web(options: bool | dict[str, Any]) -> Any:
    try:
        import steptrace_web  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ImportError(
            "configure(web=...) needs the web chat channel: pip install steptrace-web"
        ) from exc
    kwargs = options if isinstance(options, dict) else {}
    channel = steptrace_web.serve(**kwargs)
    print(f"steptrace: live steps at {channel.url}", file=sys.stderr)
    return channel


def web_channel() -> Any:
    """The web chat channel started by ``configure(web=...)``, if any."""
    return _web_channel


def flush(timeout: float = 5.0) -> bool:
    """Deliver everything pending: live events to listeners, finished spans to the exporters."""
    from steptrace import _live

    delivered = _live.BUS.flush(timeout)
    provider = _tracing.active_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is None:
        return delivered
    try:
        return bool(force_flush(int(timeout * 1000))) and delivered
    except Exception:
        logger.exception("steptrace: flushing the TracerProvider failed")
        return False


def shutdown(timeout: float = 5.0) -> bool:
    """Flush and shut down what steptrace set up (an app's own provider is left alone).

    Bounded by ``timeout`` even when the backend refuses connections or never answers:
    returns False if the export did not finish in time.
    """
    global _owned_provider, _web_channel
    provider, _owned_provider = _owned_provider, None
    channel, _web_channel = _web_channel, None
    if channel is not None:
        try:
            channel.stop()
        except Exception:
            logger.exception("steptrace: stopping the web channel failed")
    if provider is None:
        return True
    worker = threading.Thread(
        target=_shutdown_provider, args=(provider, timeout), name="steptrace-shutdown", daemon=True
    )
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        logger.warning("steptrace: spans not exported within %.1fs at shutdown", timeout)
        return False
    return True


def _shutdown_provider(provider: TracerProvider, timeout: float) -> None:
    try:
        provider.force_flush(int(timeout * 1000))
    except Exception:
        logger.exception("steptrace: flushing at shutdown failed")
    try:
        provider.shutdown()
    except Exception:
        logger.exception("steptrace: shutting down the TracerProvider failed")
