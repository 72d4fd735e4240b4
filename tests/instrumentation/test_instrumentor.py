"""Instrumentor plumbing: instrument/uninstrument, idempotence, suppression, entry points."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import openai
import pytest
import wrapt
from anthropic.resources.messages.messages import AsyncMessages, Messages
from openai.resources.chat.completions.completions import AsyncCompletions, Completions
from openai.resources.responses.responses import AsyncResponses, Responses
from opentelemetry.instrumentation.utils import suppress_instrumentation

import steptrace
from steptrace.instrumentation import AnthropicInstrumentor, OpenAIInstrumentor
from steptrace.testing import OpenAIServer, Reply

from .helpers import MESSAGES, llm_spans

OPENAI_METHODS = [
    (Completions, "create"),
    (AsyncCompletions, "create"),
    (Completions, "parse"),
    (Responses, "create"),
    (AsyncResponses, "create"),
    (Completions, "stream"),
    (AsyncResponses, "stream"),
]
ANTHROPIC_METHODS = [
    (Messages, "create"),
    (AsyncMessages, "create"),
    (Messages, "stream"),
    (AsyncMessages, "stream"),
]


def wrapped(cls: type, name: str) -> bool:
    return isinstance(cls.__dict__[name], wrapt.FunctionWrapper)  # wrapt 1.x and 2.x


def test_instrument_wraps_and_uninstrument_restores_the_originals() -> None:
    steptrace.uninstrument()
    try:
        originals = {(c, n): c.__dict__[n] for c, n in OPENAI_METHODS + ANTHROPIC_METHODS}
        assert not any(wrapped(c, n) for c, n in originals)
        steptrace.instrument()
        steptrace.instrument()  # idempotent: wrapped once
        for cls, name in originals:
            assert wrapped(cls, name)
            assert not isinstance(cls.__dict__[name].__wrapped__, wrapt.ObjectProxy)
        steptrace.uninstrument()
        steptrace.uninstrument()
        for (cls, name), original in originals.items():
            assert cls.__dict__[name] is original
    finally:
        steptrace.instrument()


def test_instrument_one_library() -> None:
    steptrace.uninstrument()
    try:
        steptrace.instrument("openai")
        assert OpenAIInstrumentor().is_instrumented_by_opentelemetry
        assert not AnthropicInstrumentor().is_instrumented_by_opentelemetry
        assert all(wrapped(c, n) for c, n in OPENAI_METHODS)
        assert not any(wrapped(c, n) for c, n in ANTHROPIC_METHODS)
        steptrace.uninstrument("openai")
        assert not any(wrapped(c, n) for c, n in OPENAI_METHODS)
    finally:
        steptrace.instrument()


def test_unknown_library_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'cohere'"):
        steptrace.instrument("openai", "cohere")
    with pytest.raises(ValueError, match="'nope'"):
        steptrace.uninstrument("nope")
    with pytest.raises(TypeError):
        steptrace.instrument(3)  # type: ignore[arg-type]


def test_threading_name_carries_the_context_into_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    steptrace.instrument("threading")
    try:
        with steptrace.Step(name="parent") as parent, ThreadPoolExecutor(1) as pool:
            assert pool.submit(steptrace.current_step).result() is parent
    finally:
        steptrace.uninstrument("threading")
    with steptrace.Step(name="parent") as parent, ThreadPoolExecutor(1) as pool:
        assert pool.submit(steptrace.current_step).result() is None


@pytest.mark.integration
def test_uninstrumented_calls_make_no_steps(spans) -> None:
    with OpenAIServer(Reply(text="plain")) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        steptrace.uninstrument("openai")
        try:
            answer = client.chat.completions.create(model="m", messages=MESSAGES)
        finally:
            steptrace.instrument("openai")
        assert answer.choices[0].message.content == "plain"
        assert llm_spans(spans) == []
        client.chat.completions.create(model="m", messages=MESSAGES)
        client.close()
    assert len(llm_spans(spans)) == 1


@pytest.mark.integration
def test_suppression_key_skips_instrumentation(spans) -> None:
    with OpenAIServer(Reply(text="quiet")) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        with suppress_instrumentation():
            answer = client.chat.completions.create(model="m", messages=MESSAGES)
            stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            assert type(stream) is openai.Stream  # not proxied
            list(stream)
        client.close()
    assert answer.choices[0].message.content == "quiet"
    assert llm_spans(spans) == []


def test_entry_points_name_the_instrumentors() -> None:
    found = {ep.name: ep for ep in entry_points(group="opentelemetry_instrumentor")}
    assert found["steptrace_openai"].load() is OpenAIInstrumentor
    assert found["steptrace_anthropic"].load() is AnthropicInstrumentor
    assert OpenAIInstrumentor().instrumentation_dependencies()
    assert AnthropicInstrumentor().instrumentation_dependencies()


def test_instrumentor_modules_do_not_import_the_client_libraries() -> None:
    code = textwrap.dedent(
        """
        import sys
        import steptrace.instrumentation.openai, steptrace.instrumentation.anthropic
        import steptrace
        print("openai" in sys.modules, "anthropic" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.integration
def test_opentelemetry_instrument_picks_the_instrumentors_up(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            import anthropic, openai

            oai = openai.OpenAI(base_url=os.environ["OPENAI_URL"], api_key="k", max_retries=0)
            print(oai.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            ).choices[0].message.content)
            claude = anthropic.Anthropic(
                base_url=os.environ["ANTHROPIC_URL"], api_key="k", max_retries=0
            )
            with claude.messages.stream(
                model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            ) as stream:
                print(stream.get_final_text())
            """
        )
    )
    from steptrace.testing import AnthropicServer

    bin_dir = Path(sys.executable).parent
    with (
        OpenAIServer(Reply(text="from openai")) as oai_srv,
        AnthropicServer(Reply(text="from anthropic")) as claude_srv,
    ):
        env = {
            **os.environ,
            "OPENAI_URL": oai_srv.base_url,
            "ANTHROPIC_URL": claude_srv.base_url,
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "instrumented-app",
            "ANTHROPIC_OPEN_TELEMETRY": "false",
        }
        out = subprocess.run(
            [str(bin_dir / "opentelemetry-instrument"), sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
        )
    assert out.returncode == 0, out.stderr
    assert "from openai" in out.stdout and "from anthropic" in out.stdout
    assert '"name": "chat gpt-4o-mini"' in out.stdout
    assert '"name": "chat claude-test"' in out.stdout
    assert out.stdout.count('"step.type": "llm"') == 2
    assert '"gen_ai.provider.name": "anthropic"' in out.stdout
    assert '"step.stream.completed": true' in out.stdout
