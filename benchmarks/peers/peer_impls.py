"""The peers' side of the workloads: each peer doing (a), (b) and (c) its own idiomatic way.

Imported by ``workload.py`` in every venv; a peer's package is imported only in its own suite.
Every suite also runs ``otel-here``: the raw OpenTelemetry SDK floor on a private provider in
that venv (its own OTel version), a same-process reference for the peer's numbers.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

import common as w


class OtelHere(w.OtelImpl):
    """The raw OTel floor inside a peer's venv, on a private provider (never the global one)."""

    name = "otel-here"

    def __init__(self) -> None:
        super().__init__(global_provider=False)


# --- Chainlit ------------------------------------------------------------------------------------


class _NoSleepTime:
    """Stands in for the ``time`` module inside ``chainlit.step``: ``sleep`` does nothing."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        return None


class ChainlitImpl(w.Impl):
    """``cl.Step`` under ``async with`` in an HTTP Chainlit context (its emitter does nothing)."""

    mode = "async"
    packages = ("chainlit", "literalai")

    def __init__(self, without_sleep: bool) -> None:
        self._without_sleep = without_sleep
        self.name = "chainlit-no-sleep" if without_sleep else "chainlit"
        self.describe = (
            "chainlit.context.init_http_context() (HTTPSession, BaseChainlitEmitter: every emit "
            "is a no-op coroutine), no data layer, no OTel; `async with cl.Step(...)` with type, "
            "tags, metadata, input, output; (b) `await step.stream_token(token)`"
        )
        if without_sleep:
            self.describe += (
                "; Step.__init__'s time.sleep(0.001) replaced by a no-op, to show the rest"
            )
        else:
            self.describe += "; as shipped, including the 1 ms time.sleep in Step.__init__"

    def setup(self) -> None:
        import importlib

        import chainlit as cl

        self.cl = cl
        self.context_module = importlib.import_module("chainlit.context")
        self.step_module = importlib.import_module("chainlit.step")
        self.real_time = self.step_module.time

    @contextlib.contextmanager
    def _patched(self) -> Any:
        if self._without_sleep:
            self.step_module.time = _NoSleepTime()
        try:
            yield
        finally:
            self.step_module.time = self.real_time

    def _run(self, body: Callable[[], Any]) -> Any:
        async def in_context() -> Any:
            self.context_module.init_http_context()
            return await body()

        with self._patched():
            return w.run_async(in_context)

    def nested(self, n: int) -> int:
        Step = self.cl.Step

        async def body() -> int:
            t0 = perf_counter_ns()
            for _ in range(n):
                async with Step(name="parent", type="run"):
                    async with Step(
                        name="child", type="tool", tags=w.TAGS, metadata=w.METADATA
                    ) as step:
                        step.input = w.INPUT
                        step.output = w.OUTPUT
            return perf_counter_ns() - t0

        return int(self._run(body))

    def stream(self, n: int) -> int:
        Step, tokens = self.cl.Step, w.TOKENS

        async def body() -> int:
            t0 = perf_counter_ns()
            for _ in range(n):
                async with Step(name="llm", type="llm") as step:
                    for token in tokens:
                        await step.stream_token(token)
            return perf_counter_ns() - t0

        return int(self._run(body))

    def memory(self) -> None:
        Step = self.cl.Step

        async def body() -> None:
            async with Step(name="root", type="run"):
                for _ in range(self.memory_steps):
                    async with Step(
                        name="child", type="tool", tags=w.TAGS, metadata=w.METADATA
                    ) as step:
                        step.input = w.INPUT
                        step.output = w.OUTPUT

        self._run(body)


# --- Panel ---------------------------------------------------------------------------------------


class PanelImpl(w.Impl):
    """``pn.chat.ChatStep``: a UI component (a Card) with no tracing behind it."""

    name = "panel"
    packages = ("panel", "bokeh", "param")
    describe = (
        "pn.chat.ChatStep objects, no server, no OTel; nesting = the child ChatStep appended to "
        "the parent's objects; Panel has no type/tags/metadata/input, so those are omitted and "
        "the output is `stream(OUTPUT)`; (b) `step.stream(token)`; (c) over 1,000 steps, "
        "because each costs tens of ms here (10,000 would take many minutes)"
    )
    memory_steps = 1_000

    def setup(self) -> None:
        from panel.chat import ChatStep

        self.ChatStep = ChatStep

    def nested(self, n: int) -> int:
        ChatStep = self.ChatStep
        t0 = perf_counter_ns()
        for _ in range(n):
            with ChatStep(default_title="parent") as parent:
                child = ChatStep(default_title="child")
                parent.append(child)
                with child:
                    child.stream(w.OUTPUT)
        return perf_counter_ns() - t0

    def stream(self, n: int) -> int:
        ChatStep, tokens = self.ChatStep, w.TOKENS
        t0 = perf_counter_ns()
        for _ in range(n):
            with ChatStep(default_title="llm") as step:
                for token in tokens:
                    step.stream(token)
        return perf_counter_ns() - t0

    def memory(self) -> None:
        ChatStep = self.ChatStep
        with ChatStep(default_title="root") as root:
            for _ in range(self.memory_steps):
                child = ChatStep(default_title="child")
                root.append(child)
                with child:
                    child.stream(w.OUTPUT)


# --- Pydantic Logfire ----------------------------------------------------------------------------


class LogfireImpl(w.Impl):
    """``logfire.span`` with local export only."""

    name = "logfire"
    packages = ("logfire", "opentelemetry-sdk")
    describe = (
        "logfire.configure(send_to_logfire=False, console=False, "
        "additional_span_processors=[BatchSpanProcessor (SimpleSpanProcessor for (c)) -> no-op "
        "exporter]) (Logfire adds its own "
        "processors around it, e.g. pending spans); `with logfire.span(...)` with _tags, "
        "type/metadata as attributes, input/output via set_attribute; (b) Logfire has no token "
        "API: tokens are collected and the joined text set as one attribute at the end, as its "
        "OpenAI integration records a stream"
    )

    def setup(self) -> None:
        import logfire

        self.processor = w.span_processor()
        logfire.configure(
            send_to_logfire=False,
            console=False,
            additional_span_processors=[self.processor],
            inspect_arguments=False,
        )
        self.logfire = logfire

    def _child(self) -> None:
        with self.logfire.span(
            "child", _tags=w.TAGS, step_type="tool", metadata=w.METADATA
        ) as span:
            span.set_attribute("input", w.INPUT)
            span.set_attribute("output", w.OUTPUT)

    def nested(self, n: int) -> int:
        span, child = self.logfire.span, self._child
        t0 = perf_counter_ns()
        for _ in range(n):
            with span("parent", step_type="run"):
                child()
        return perf_counter_ns() - t0

    def stream(self, n: int) -> int:
        span, tokens = self.logfire.span, w.TOKENS
        t0 = perf_counter_ns()
        for _ in range(n):
            with span("llm", step_type="llm") as s:
                parts = []
                for token in tokens:
                    parts.append(token)
                s.set_attribute("output", "".join(parts))
        return perf_counter_ns() - t0

    def memory(self) -> None:
        with self.logfire.span("root", step_type="run"):
            for _ in range(self.memory_steps):
                self._child()
        self.flush()

    def flush(self) -> None:
        self.logfire.force_flush()


# --- MLflow --------------------------------------------------------------------------------------


class MlflowImpl(w.Impl):
    """``mlflow.start_span`` logging to a local SQLite tracking store."""

    name = "mlflow"
    packages = ("mlflow", "mlflow-skinny", "mlflow-tracing", "opentelemetry-sdk")
    describe = (
        "mlflow.set_tracking_uri('sqlite:///<tmp>/mlflow.db'), one experiment, "
        "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false (the store write is timed, not moved to a "
        "thread); "
        "`with mlflow.start_span(name, span_type=...)` with attributes (tags, metadata), "
        "set_inputs/set_outputs; each trace is written to the local store when its root ends "
        "(MLflow's own pipeline, included); (b) one span event per token "
        "(`mlflow.chunk.item.<i>`), as its OpenAI autolog records a stream"
    )

    def setup(self) -> None:
        import os

        import mlflow

        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
        mlflow.set_tracking_uri(f"sqlite:///{os.getcwd()}/mlflow.db")
        mlflow.set_experiment("steptrace-bench")
        from mlflow.entities import SpanEvent

        self.mlflow = mlflow
        self.SpanEvent = SpanEvent
        self.attributes = {"tags": w.TAGS, **w.METADATA}

    def _child(self) -> None:
        with self.mlflow.start_span("child", span_type="TOOL", attributes=self.attributes) as s:
            s.set_inputs(w.INPUT)
            s.set_outputs(w.OUTPUT)

    def nested(self, n: int) -> int:
        start, child = self.mlflow.start_span, self._child
        t0 = perf_counter_ns()
        for _ in range(n):
            with start("parent", span_type="CHAIN"):
                child()
        return perf_counter_ns() - t0

    def stream(self, n: int) -> int:
        start, tokens, SpanEvent = self.mlflow.start_span, w.TOKENS, self.SpanEvent
        t0 = perf_counter_ns()
        for _ in range(n):
            with start("llm", span_type="LLM") as span:
                for i, token in enumerate(tokens):
                    span.add_event(
                        SpanEvent(
                            f"mlflow.chunk.item.{i}", attributes={"mlflow.chunk.value": token}
                        )
                    )
        return perf_counter_ns() - t0

    def memory(self) -> None:
        with self.mlflow.start_span("root", span_type="CHAIN"):
            for _ in range(self.memory_steps):
                self._child()


# --- Langfuse ------------------------------------------------------------------------------------


class LangfuseImpl(w.Impl):
    """Langfuse observations, offline: its own pipeline, ending in a no-op exporter."""

    name = "langfuse"
    packages = ("langfuse", "opentelemetry-sdk")
    describe = (
        "Langfuse(public_key/secret_key dummies, base_url=http://127.0.0.1:9, "
        "span_exporter=no-op exporter): Langfuse's own TracerProvider and LangfuseSpanProcessor "
        "(a BatchSpanProcessor) ending in a discarding exporter, nothing leaves the process; "
        "start_as_current_observation(as_type='chain'/'tool', input, metadata) + update(output); "
        "tags via propagate_attributes (Langfuse tags are trace-level); (b) no token API: a "
        "generation with completion_start_time set on the first token and the joined output at "
        "the end, as its OpenAI integration records a stream; (c) with flush_at=1, so its batch "
        "processor exports each span as it ends"
    )

    def setup(self) -> None:
        import langfuse

        self.client = langfuse.Langfuse(
            public_key="pk-lf-bench",
            secret_key="sk-lf-bench",
            base_url="http://127.0.0.1:9",
            span_exporter=w.noop_exporter(),
            # For (c): export each span as it ends, so no batch backlog is measured.
            flush_at=1 if w.MEMORY_MODE else None,
        )
        self.propagate = langfuse.propagate_attributes

    def _child(self) -> None:
        with (
            self.propagate(tags=w.TAGS),
            self.client.start_as_current_observation(
                name="child", as_type="tool", input=w.INPUT, metadata=w.METADATA
            ) as observation,
        ):
            observation.update(output=w.OUTPUT)

    def nested(self, n: int) -> int:
        start, child = self.client.start_as_current_observation, self._child
        t0 = perf_counter_ns()
        for _ in range(n):
            with start(name="parent", as_type="chain"):
                child()
        return perf_counter_ns() - t0

    def stream(self, n: int) -> int:
        start, tokens = self.client.start_as_current_observation, w.TOKENS
        now = datetime.datetime.now
        t0 = perf_counter_ns()
        for _ in range(n):
            with start(name="llm", as_type="generation") as generation:
                parts: list[str] = []
                for token in tokens:
                    if not parts:
                        generation.update(completion_start_time=now())
                    parts.append(token)
                generation.update(output="".join(parts))
        return perf_counter_ns() - t0

    def memory(self) -> None:
        with self.client.start_as_current_observation(name="root", as_type="chain"):
            for _ in range(self.memory_steps):
                self._child()
        self.flush()

    def flush(self) -> None:
        self.client.flush()


PEER_SUITES: dict[str, Callable[[], list[w.Impl]]] = {
    "chainlit": lambda: [OtelHere(), ChainlitImpl(without_sleep=False), ChainlitImpl(True)],
    "panel": lambda: [OtelHere(), PanelImpl()],
    "logfire": lambda: [OtelHere(), LogfireImpl()],
    "mlflow": lambda: [OtelHere(), MlflowImpl()],
    "langfuse": lambda: [OtelHere(), LangfuseImpl()],
}
