"""``configure()``: the app's provider is kept, otherwise OTEL_* decides; bounded exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from opentelemetry import trace

import steptrace


def run(
    code: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (the global provider can be set once per process)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_apps_own_provider_is_used_and_never_replaced(otel_provider, spans):
    provider = steptrace.configure()
    assert provider is otel_provider
    assert trace.get_tracer_provider() is otel_provider
    with steptrace.Step(name="kept"):
        pass
    assert [s.name for s in spans.get_finished_spans()] == ["kept"]


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="exporter"):
        steptrace.configure(exporter="jaeger-thrift")
    with pytest.raises(ValueError, match="protocol"):
        steptrace.configure(protocol="udp")
    with pytest.raises(TypeError, match="redact"):
        steptrace.configure(redact="***")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="capture_message_content"):
        steptrace.configure(capture_message_content="no")  # type: ignore[arg-type]


def test_console_exporter_from_the_environment_prints_readable_lines():
    result = run(
        """
        import steptrace
        steptrace.configure()
        with steptrace.Step(name="retrieve", type="retrieval") as step:
            step.output = "3 documents"
        try:
            with steptrace.Step(name="tool", type="tool"):
                raise ValueError("no such city")
        except ValueError:
            pass
        """,
        {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "console-test"},
    )
    assert result.returncode == 0, result.stderr
    assert "✓ retrieve [retrieval]" in result.stderr and '→ "3 documents"' in result.stderr
    assert "✗ tool [tool]" in result.stderr and "no such city" in result.stderr


def test_exporter_none_exports_nothing_and_steps_still_work():
    result = run(
        """
        import steptrace
        provider = steptrace.configure()
        events = []
        steptrace.add_listener(lambda e, d: events.append(e))
        with steptrace.Step(name="s") as step:
            step.stream_token("x")
        steptrace.flush()
        print(type(provider).__name__, step.status, events)
        """,
        {"OTEL_TRACES_EXPORTER": "none"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "TracerProvider success ['new_message', 'stream_start', 'update_message']"
    )
    assert result.stderr == ""


def test_unknown_exporter_in_the_environment_is_a_clear_error():
    result = run("import steptrace; steptrace.configure()", {"OTEL_TRACES_EXPORTER": "zipkin"})
    assert result.returncode != 0 and "exporter must be one of" in result.stderr


def test_without_any_sdk_steps_nest_stream_and_reach_listeners():
    result = run(
        """
        import asyncio, steptrace
        events = []
        steptrace.add_listener(lambda e, d: events.append((e, d.get("name"), d.get("parentId"))))
        async def main():
            async with steptrace.Step(name="outer") as outer:
                async with steptrace.Step(name="inner") as inner:
                    await inner.stream_token("hi")
                    assert steptrace.current_step() is inner
            return outer, inner
        outer, inner = asyncio.run(main())
        steptrace.flush()
        assert inner.parent_id == outer.id and inner.span_id is None and inner.output == "hi"
        print(events[1][0], events[1][2] == outer.id)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["new_message", "True"]


def test_steps_left_open_are_ended_and_exported_at_exit():
    result = run(
        """
        import steptrace
        steptrace.configure()

        @steptrace.step(type="tool")
        def numbers():
            yield 1
            yield 2

        it = numbers()
        next(it)  # suspended forever
        sent = steptrace.Step(name="sent-never-ended")
        sent.send()
        sent.stream_token("partial")
        """,
        {"OTEL_TRACES_EXPORTER": "console"},
    )
    assert result.returncode == 0, result.stderr
    assert "numbers [tool]" in result.stderr
    assert "sent-never-ended [undefined]" in result.stderr and '"partial"' in result.stderr


def _silent_server() -> tuple[socket.socket, int]:
    """A TCP server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    return server, server.getsockname()[1]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_exit_is_bounded_when_the_backend_never_answers(protocol):
    server, port = _silent_server()
    try:
        started = time.monotonic()
        result = run(
            """
            import steptrace
            steptrace.configure()
            for i in range(50):
                with steptrace.Step(name=f"s{i}") as step:
                    step.stream_token("x")
            print("app done")
            """,
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            },
            timeout=120,
        )
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "app done"
    # The exit handler gives up after 5 s; interpreter start-up and imports come on top.
    assert elapsed < 30, f"exit took {elapsed:.1f}s"


def test_exit_is_bounded_when_the_backend_refuses_connections():
    server, port = _silent_server()
    server.close()  # nothing listens there now: connections are refused
    started = time.monotonic()
    result = run(
        """
        import steptrace
        steptrace.configure()
        with steptrace.Step(name="s"):
            pass
        print("app done")
        """,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"},
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "app done"
    assert time.monotonic() - started < 30
