"""An OTLP backend that refuses, hangs, errors or recovers never breaks or stalls the app.

Each test runs ``app.py`` (``steptrace.configure()`` from ``OTEL_*``) in a subprocess against a
real local endpoint, over OTLP/HTTP and OTLP/gRPC: its steps never raise, no step takes longer
than ``STEP_BOUND_S``, the exit finishes within ``EXIT_BOUND_S``, and what the backend accepts
once it works again is exactly what was produced.
"""

from __future__ import annotations

import time

import grpc  # type: ignore[import-untyped]
import pytest

from .app_process import REPORT_TIMEOUT_S, App, finish, otlp_env, run_batches
from .receivers import (
    HOST,
    BlackholeServer,
    OtlpGrpcReceiver,
    OtlpHttpReceiver,
    free_port,
    refusing_endpoint,
)

pytestmark = pytest.mark.integration

PROTOCOLS = ["http/protobuf", "grpc"]


def receiver_for(protocol: str, answers: list[object] = (), port: int = 0):  # type: ignore[assignment]
    if protocol == "grpc":
        return OtlpGrpcReceiver(answers, port=port)
    return OtlpHttpReceiver(answers, port=port)  # type: ignore[arg-type]


def step_names(batch: int, steps: int) -> set[str]:
    return {f"b{batch}-step-{i}" for i in range(steps)}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_refused_connections(protocol: str) -> None:
    env = otlp_env(refusing_endpoint(), protocol)
    with App(env, "--batches", "2", "--steps", "200", "--tokens", "20") as app:
        run_batches(app, 2)
        finish(app)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_backend_that_accepts_and_never_answers(protocol: str) -> None:
    # More than a few batches' worth, so shutdown has a queue to give up on.
    with BlackholeServer() as blackhole:
        env = otlp_env(blackhole.endpoint(), protocol)
        with App(env, "--batches", "2", "--steps", "1500", "--tokens", "5") as app:
            run_batches(app, 2)
            finish(app)
        assert blackhole.connections >= 1  # the exporter did try, and got stuck


@pytest.mark.parametrize(
    ("protocol", "failure"),
    [
        ("http/protobuf", 429),
        ("http/protobuf", 503),
        ("grpc", grpc.StatusCode.UNAVAILABLE),
    ],
    ids=["http-429", "http-503", "grpc-unavailable"],
)
def test_retryable_errors_then_recovery_delivers_everything(protocol: str, failure: object) -> None:
    with receiver_for(protocol, [failure, failure]) as receiver:
        env = otlp_env(receiver.endpoint, protocol)
        with App(env, "--steps", "60", "--tokens", "10") as app:
            run_batches(app, 1)
            assert receiver.wait_for_spans(60, REPORT_TIMEOUT_S), receiver.answered
            finish(app)
        answered = receiver.answered
        assert answered[:2] == [getattr(failure, "name", failure)] * 2
        assert sorted(receiver.span_names) == sorted(step_names(0, 60))  # all, exactly once


@pytest.mark.parametrize(
    ("protocol", "failure"),
    [("http/protobuf", 500), ("grpc", grpc.StatusCode.INTERNAL)],
    ids=["http-500", "grpc-internal"],
)
def test_non_retryable_error_loses_that_batch_only(protocol: str, failure: object) -> None:
    # One export per flush (the schedule delay never fires): the first is refused for good.
    with receiver_for(protocol, [failure]) as receiver:
        env = otlp_env(receiver.endpoint, protocol, OTEL_BSP_SCHEDULE_DELAY="600000")
        with App(env, "--batches", "2", "--steps", "40", "--flush") as app:
            first, second = run_batches(app, 2)
            assert first["flush_s"] < 10 and second["flushed"] is True
            finish(app)
        assert receiver.answered[0] == getattr(failure, "name", failure)
        assert receiver.rejected_span_count == 40
        assert sorted(receiver.span_names) == sorted(step_names(1, 40))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_spans_buffered_during_short_outage_are_delivered(protocol: str) -> None:
    port = free_port()
    env = otlp_env(f"http://{HOST}:{port}", protocol)
    with App(env, "--steps", "80", "--tokens", "10") as app:
        run_batches(app, 1)  # produced while nothing listens: the exporter retries
        time.sleep(1.5)
        with receiver_for(protocol, port=port) as receiver:
            assert receiver.wait_for_spans(80, 30), (
                f"{receiver.span_count} of 80 spans after the backend came back\n{app.stderr}"
            )
            finish(app)
        assert sorted(receiver.span_names) == sorted(step_names(0, 80))


def test_configured_pipeline_reports_its_drops() -> None:
    """``configure()``'s batch processor counts what the full queue refuses, and warns once."""
    with BlackholeServer() as blackhole:
        env = otlp_env(
            blackhole.endpoint(),
            "http/protobuf",
            OTEL_BSP_MAX_QUEUE_SIZE="100",
            OTEL_BSP_MAX_EXPORT_BATCH_SIZE="50",
        )
        with App(env, "--steps", "1000", "--tokens", "0") as app:
            (report,) = run_batches(app, 1)
            stats = report["export_stats"]
            assert stats["dropped"] >= 1000 - 100 - 50  # at most a queue and a batch kept
            assert stats["queued"] + stats["exported"] + stats["failed"] + stats["dropped"] == 1000
            finish(app)
        assert app.stderr.count("span export queue full") == 1
