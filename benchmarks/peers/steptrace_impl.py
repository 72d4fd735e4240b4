"""steptrace's side of the workloads (project venv only)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from time import perf_counter_ns
from typing import Any

from common import INPUT, METADATA, OUTPUT, TAGS, TOKENS, Impl, OtelImpl, run_async


class SteptraceImpl(Impl):
    """steptrace on the global SDK provider (no ``configure()``), as an app that set up OTel."""

    name = "steptrace"
    describe = (
        "global SDK TracerProvider + BatchSpanProcessor (SimpleSpanProcessor for (c)) -> no-op "
        "exporter, the same pipeline as otel; steptrace.Step with type, tags, metadata, input, "
        "output; (b) stream_token"
    )
    packages = ("steptrace", "opentelemetry-sdk")

    def __init__(self, mode: str = "sync", listener: bool = False) -> None:
        self.mode = mode
        self._listener = listener
        if mode == "async":
            self.name += "-async"
        if listener:
            self.name += "+listener"
            self.describe += "; plus one no-op listener (the live chat mirror is active)"

    def setup(self) -> None:
        import steptrace

        self.st = steptrace
        self.otel = OtelImpl(global_provider=True)
        self.otel.setup()

    def _listening(self) -> contextlib.AbstractContextManager[None]:
        if not self._listener:
            return contextlib.nullcontext()
        return _listening(self.st)

    def nested(self, n: int) -> int:
        with self._listening():
            if self.mode == "async":
                return int(run_async(lambda: self._anested(n)))
            return self._nested(n)

    def _nested(self, n: int) -> int:
        Step, clock = self.st.Step, perf_counter_ns
        t0 = clock()
        for _ in range(n):
            with Step(name="parent", type="run"):
                with Step(name="child", type="tool", tags=TAGS, metadata=METADATA) as step:
                    step.input = INPUT
                    step.output = OUTPUT
        return clock() - t0

    async def _anested(self, n: int) -> int:
        Step, clock = self.st.Step, perf_counter_ns
        t0 = clock()
        for _ in range(n):
            async with Step(name="parent", type="run"):
                async with Step(name="child", type="tool", tags=TAGS, metadata=METADATA) as step:
                    step.input = INPUT
                    step.output = OUTPUT
        return clock() - t0

    def stream(self, n: int) -> int:
        with self._listening():
            if self.mode == "async":
                return int(run_async(lambda: self._astream(n)))
            return self._stream(n)

    def _stream(self, n: int) -> int:
        Step, clock, tokens = self.st.Step, perf_counter_ns, TOKENS
        t0 = clock()
        for _ in range(n):
            with Step(name="llm", type="llm") as step:
                for token in tokens:
                    step.stream_token(token)
        return clock() - t0

    async def _astream(self, n: int) -> int:
        Step, clock, tokens = self.st.Step, perf_counter_ns, TOKENS
        t0 = clock()
        for _ in range(n):
            async with Step(name="llm", type="llm") as step:
                for token in tokens:
                    await step.stream_token(token)
        return clock() - t0

    def memory(self) -> None:
        with self._listening():
            if self.mode == "async":
                run_async(self._amemory)
            else:
                Step = self.st.Step
                with Step(name="root", type="run"):
                    for _ in range(self.memory_steps):
                        with Step(name="child", type="tool", tags=TAGS, metadata=METADATA) as s:
                            s.input = INPUT
                            s.output = OUTPUT
            self.flush()

    async def _amemory(self) -> None:
        Step = self.st.Step
        async with Step(name="root", type="run"):
            for _ in range(self.memory_steps):
                async with Step(name="child", type="tool", tags=TAGS, metadata=METADATA) as s:
                    s.input = INPUT
                    s.output = OUTPUT

    def flush(self) -> None:
        self.st.flush()
        self.otel.flush()


@contextlib.contextmanager
def _listening(steptrace: Any) -> Iterator[None]:
    def listener(event: str, payload: dict[str, Any]) -> None:
        return None

    steptrace.add_listener(listener)
    try:
        yield
    finally:
        steptrace.flush()
        steptrace.remove_listener(listener)
