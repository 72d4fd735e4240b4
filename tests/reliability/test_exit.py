"""Steps still open when the app exits (normally, by an uncaught exception, or by ``sys.exit``
inside a step) are ended and exported, and the exit stays bounded.

Open at exit, in ``app.py --leave-open``: a step begun by hand (with a finished child), a step
around a generator suspended at its first ``yield``, and a step in a thread blocked forever.
"""

from __future__ import annotations

import pytest

from .app_process import EXIT_BOUND_S, App, finish, otlp_env, run_batches
from .receivers import BlackholeServer, OtlpHttpReceiver, attribute_value

pytestmark = pytest.mark.integration

LEFT_OPEN = {"open-manual", "open-generator", "open-in-thread"}


def check_open_steps_exported(receiver: OtlpHttpReceiver) -> None:
    assert receiver.wait_for(lambda: set(receiver.span_names) >= LEFT_OPEN, 10), receiver.span_names
    spans = {span.name: span for span in receiver.spans}
    for name in LEFT_OPEN:
        assert spans[name].end_time_unix_nano >= spans[name].start_time_unix_nano > 0
        assert attribute_value(spans[name], "step.ended_at_exit") is True, name
    # The child ended normally, under the parent that was still open.
    assert spans["open-child"].parent_span_id == spans["open-manual"].span_id
    assert attribute_value(spans["open-child"], "step.ended_at_exit") is None
    assert {f"b0-step-{i}" for i in range(20)} <= set(spans)


def test_open_steps_are_ended_at_normal_exit() -> None:
    with OtlpHttpReceiver() as receiver:
        env = otlp_env(receiver.endpoint, "http/protobuf")
        with App(env, "--steps", "20", "--leave-open") as app:
            run_batches(app, 1)
            finish(app)
        check_open_steps_exported(receiver)


def test_open_steps_are_ended_after_an_uncaught_exception() -> None:
    with OtlpHttpReceiver() as receiver:
        env = otlp_env(receiver.endpoint, "http/protobuf")
        with App(env, "--steps", "20", "--leave-open", "--crash") as app:
            run_batches(app, 1)
            assert app.next_report()["event"] == "exiting"
            code, elapsed = app.wait_exit()
            assert code == 1
            assert "RuntimeError: crash on purpose" in app.stderr
            assert elapsed < EXIT_BOUND_S
        check_open_steps_exported(receiver)


def test_exit_with_open_steps_is_bounded_when_the_backend_hangs() -> None:
    with BlackholeServer() as blackhole:
        env = otlp_env(blackhole.endpoint(), "http/protobuf")
        with App(env, "--steps", "500", "--leave-open") as app:
            run_batches(app, 1)
            finish(app)
