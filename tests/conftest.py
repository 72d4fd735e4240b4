"""Session-wide fixtures shared by the whole suite (keep per-area fixtures in their own dirs)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# tests/phoenix_server.py; pytest puts tests/ on sys.path for this conftest.
from phoenix_server import PhoenixServer, phoenix_available, run_phoenix


@pytest.fixture(scope="session")
def phoenix() -> Iterator[PhoenixServer]:
    """A private Arize Phoenix server on 127.0.0.1 (OTLP/HTTP, OTLP/gRPC, REST), for the session.

    Skips when `.venv-phoenix` is missing, except under `CI=true`, where that is a failure.
    """
    if not phoenix_available():
        message = ".venv-phoenix is missing: run `bash scripts/bootstrap.sh` to create it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with run_phoenix() as server:
        yield server


# -- OpenTelemetry: one real SDK provider for the session, spans kept in memory ---------------

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

_SPANS = InMemorySpanExporter()


@pytest.fixture(scope="session", autouse=True)
def otel_provider() -> TracerProvider:
    """The global TracerProvider for in-process tests: the real SDK, exporting to memory.

    The global provider can be set only once per process; tests that need another set-up
    (no SDK, `configure()` from the environment, other span limits) run in a subprocess or
    use `steptrace._tracing.use_provider` for their duration.
    """
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_SPANS))
        trace.set_tracer_provider(provider)
    return provider


@pytest.fixture
def spans(otel_provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    """The in-memory exporter, emptied before the test: `spans.get_finished_spans()`."""
    _SPANS.clear()
    yield _SPANS
    _SPANS.clear()
