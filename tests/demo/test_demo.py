"""``steptrace demo`` end to end: the real command in a subprocess, a real OTLP backend (Phoenix),
the real web chat channel and the real ``openai`` client against the local scripted server.

Each run is configured the way a user runs it: only environment variables (``OTEL_*``) and
command-line flags. No ``OPENAI_API_KEY``, so the demo starts its local scripted server.
"""

from __future__ import annotations

import json
import os
import pty
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from phoenix_server import free_port

from steptrace.testing.llm_servers import OpenAIServer, Reply

pytestmark = pytest.mark.integration

STEPTRACE = Path(sys.executable).parent / "steptrace"
QUESTION = "Should I pack an umbrella for Lisbon this weekend?"
LLM_STEP = "chat scripted-travel-model"
STEP_NAMES = ["travel_assistant", "search_docs", "get_weather", LLM_STEP]
TRACE_LINE = re.compile(r"^trace ([0-9a-f]{32})", re.MULTILINE)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")

try:
    import steptrace_web  # noqa: F401

    HAVE_WEB = True
except ImportError:
    HAVE_WEB = False


# -- helpers ----------------------------------------------------------------------------------


def demo_env(**extra: str) -> dict[str, str]:
    """The caller's environment without OTEL_*/OPENAI_* settings, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "OPENAI_")) and key != "STEPTRACE_WEB_TOKEN"
    }
    env.update(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", COLUMNS="120", LINES="40")
    env.update(extra)
    return env


def phoenix_env(phoenix: Any, project: str) -> dict[str, str]:
    return demo_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=phoenix.http_endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_RESOURCE_ATTRIBUTES=f"openinference.project.name={project}",
    )


def steptrace_command(*args: str) -> list[str]:
    assert STEPTRACE.exists(), f"the steptrace console script is missing: {STEPTRACE}"
    return [str(STEPTRACE), *args]


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys, whether Phoenix returns attributes flat or nested."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def rebuild_output(events: list[dict[str, Any]]) -> str:
    """Apply the span's ``step.token`` events in order, as a trace consumer would."""
    text = ""
    for event in events:
        if event["name"] != "step.token":
            continue
        attributes = flatten(event["attributes"])
        if attributes["step.token.target"] != "output":
            continue
        token = attributes["step.token.text"]
        text = token if attributes.get("step.token.replace") else text + token
    return text


def printed_answer(stdout: str) -> str:
    """The answer panel's text, unwrapped (the lines between its ╭ and ╰ borders)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("╭─ answer"))
    body = []
    for line in lines[start + 1 :]:
        if line.startswith("╰"):
            break
        body.append(line.strip().strip("│").strip())
    return " ".join(body)


def squash(text: str) -> str:
    return " ".join(text.split())


def assert_tree_printed(stdout: str) -> None:
    for name in STEP_NAMES:
        assert re.search(rf"✓ {re.escape(name)}\b", stdout), f"no ✓ {name} in:\n{stdout}"
    assert re.search(r"├─ ✓ search_docs", stdout), stdout
    assert re.search(rf"└─ ✓ {re.escape(LLM_STEP)} +llm .*ttft \d+ ms", stdout), stdout
    assert "✗" not in stdout


def check_trace(phoenix: Any, project: str, trace_id: str, answer: str) -> None:
    """The turn as Phoenix stored it: one tree, typed steps, GenAI attributes, token events."""
    spans = phoenix.spans(project, trace_id, count=4)
    assert sorted(span["name"] for span in spans) == sorted(STEP_NAMES)
    by_name = {span["name"]: span for span in spans}
    attrs = {name: flatten(span["attributes"]) for name, span in by_name.items()}

    root = by_name["travel_assistant"]
    assert root["parent_id"] is None
    for child in ("search_docs", "get_weather", LLM_STEP):
        assert by_name[child]["parent_id"] == root["context"]["span_id"], child
    expected = {
        "travel_assistant": ("run", "CHAIN"),
        "search_docs": ("retrieval", "RETRIEVER"),
        "get_weather": ("tool", "TOOL"),
        LLM_STEP: ("llm", "LLM"),
    }
    for name, (step_type, kind) in expected.items():
        assert attrs[name]["step.type"] == step_type, name
        assert by_name[name]["span_kind"] == kind, name
        assert attrs[name]["step.status"] == "success", name
        assert by_name[name]["status_code"] != "ERROR", name

    assert attrs["travel_assistant"]["input.value"] == QUESTION
    assert attrs["travel_assistant"]["output.value"] == answer
    docs = json.loads(attrs["search_docs"]["output.value"])
    assert [doc["id"] for doc in docs][:1] == ["lisbon-spring"]
    assert attrs["search_docs"]["retrieval.documents.0.document.id"] == "lisbon-spring"
    assert json.loads(attrs["get_weather"]["input.value"])["city"] == "Lisbon"
    assert json.loads(attrs["get_weather"]["output.value"])["city"] == "Lisbon"

    llm = attrs[LLM_STEP]
    assert llm["gen_ai.operation.name"] == "chat"
    assert llm["gen_ai.provider.name"] == "openai"
    assert llm["gen_ai.request.model"] == "scripted-travel-model"
    assert llm["gen_ai.response.model"] == "scripted-travel-model"
    assert llm["gen_ai.usage.input_tokens"] > 0
    assert llm["gen_ai.usage.output_tokens"] > 10
    assert list(llm["gen_ai.response.finish_reasons"]) == ["stop"]
    assert llm["gen_ai.response.time_to_first_chunk"] > 0
    assert llm["step.time_to_first_token_s"] > 0
    assert llm["output.value"] == answer
    token_events = [e for e in by_name[LLM_STEP]["events"] if e["name"] == "step.token"]
    assert token_events, "the llm step has no step.token events"
    assert rebuild_output(by_name[LLM_STEP]["events"]) == answer


class Lines:
    """A subprocess's stdout, read line by line on a thread, waited on with a timeout."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                match = re.search(pattern, line)
                if match:
                    return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{pattern!r} not printed in {timeout} s:\n{self.text}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"exited before printing {pattern!r}:\n{self.text}")
            self.lines.append(line)

    def rest(self, timeout: float) -> str:
        self._thread.join(timeout)
        while not self._queue.empty():
            line = self._queue.get()
            if line is not None:
                self.lines.append(line)
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.lines)


def sse_snapshot(url: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The steps of the web channel's ``snapshot`` frame (``GET /events``)."""
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream("GET", url.rstrip("/") + "/events") as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            frame = json.loads(line.removeprefix("data: "))
            if frame["event"] == "snapshot":
                return frame["data"]["steps"]
    raise AssertionError("no snapshot frame")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[Any]]]:
    """Processes a test starts; any still running at the end are killed."""
    started: list[subprocess.Popen[Any]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


# -- the demo, once, exporting to Phoenix ------------------------------------------------------


def test_demo_once_prints_the_tree_and_exports_the_turn(phoenix):
    project = f"steptrace-demo-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        steptrace_command("demo", "--once", "--no-web"),
        env=phoenix_env(phoenix, project),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    out = result.stdout
    assert "using a local scripted OpenAI-compatible server (set OPENAI_API_KEY to use OpenAI)" in (
        squash(out)
    )
    assert f"OTLP http/protobuf → {phoenix.http_endpoint}" in out
    assert "web" in out and "off (--no-web)" in out
    assert f"❯ {QUESTION}" in out
    assert_tree_printed(out)

    answer = printed_answer(out)
    assert answer.startswith("Yes, pack a compact umbrella."), answer
    assert "[1]" in answer and "Lisbon" in answer  # grounded in the retrieved guides

    match = TRACE_LINE.search(out)
    assert match, out
    trace_id = match[1]
    tokens = re.search(r"tokens (\d+) in, (\d+) out", out)
    assert tokens, out

    spans = phoenix.spans(project, trace_id, count=4)
    llm = flatten(next(s for s in spans if s["name"] == LLM_STEP)["attributes"])
    full_answer = llm["output.value"]
    assert squash(full_answer) == squash(answer)  # what the terminal showed is what was traced
    assert llm["gen_ai.usage.output_tokens"] == int(tokens[2])
    check_trace(phoenix, project, trace_id, full_answer)


def test_question_and_turns_options(phoenix):
    project = f"steptrace-demo-{uuid.uuid4().hex[:8]}"
    question = "What should I wear in Oslo this week?"
    result = subprocess.run(
        steptrace_command("demo", "--once", "--no-web", "--turns", "2", "--question", question),
        env=phoenix_env(phoenix, project),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"❯ {question}" in out
    trace_ids = TRACE_LINE.findall(out)
    assert len(trace_ids) == 2 and trace_ids[0] != trace_ids[1], out
    assert "done · 2 turn(s)" in out
    spans = phoenix.spans(project, trace_ids[0], count=4)
    root = next(s for s in spans if s["name"] == "travel_assistant")
    assert flatten(root["attributes"])["input.value"] == question
    weather = next(s for s in spans if s["name"] == "get_weather")
    assert json.loads(flatten(weather["attributes"])["output.value"])["city"] == "Oslo"
    phoenix.spans(project, trace_ids[1], count=4)  # the second turn is its own trace


def test_an_unreachable_collector_is_one_line_and_a_prompt_exit():
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = subprocess.run(
        steptrace_command("demo", "--once", "--no-web"),
        env=demo_env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    out = squash(result.stdout)
    assert_tree_printed(result.stdout)
    assert f"traces: export to {endpoint} failing: connection refused" in out
    assert out.count("failing: connection refused") == 1
    assert "trace export had errors (see above)" in out
    assert "Transient error" not in result.stdout + result.stderr  # no exporter log spam
    assert "Traceback" not in result.stderr
    assert elapsed < 30


# -- with OPENAI_API_KEY: the OpenAI client as configured (here OPENAI_BASE_URL: a local server) --


def run_with_openai_settings(server: OpenAIServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        steptrace_command("demo", "--once", "--no-web"),
        env=demo_env(
            OPENAI_API_KEY="sk-test-key",
            OPENAI_BASE_URL=server.base_url,
            OPENAI_MODEL="gpt-test-mini",
        ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def test_with_an_api_key_it_talks_to_the_configured_openai_endpoint():
    answer = "Yes: rain is likely on the first day [1], so take a compact umbrella."
    with OpenAIServer(Reply(text=answer, delay=0.01)) as server:
        base_url = server.base_url
        result = run_with_openai_settings(server)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"OpenAI at {base_url}, model gpt-test-mini" in squash(out)
    assert "scripted" not in out
    assert re.search(r"└─ ✓ chat gpt-test-mini +llm", out), out
    assert squash(printed_answer(out)) == answer

    (request,) = server.requests
    assert request.headers["authorization"] == "Bearer sk-test-key"
    body = request.body
    assert body["model"] == "gpt-test-mini"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    prompt = body["messages"][-1]["content"]
    assert f"Question: {QUESTION}" in prompt
    assert "[1] Lisbon in spring:" in prompt  # the retrieved guides
    assert '"city": "Lisbon"' in prompt  # the tool's forecast


def test_a_failing_llm_call_is_shown_not_raised():
    with OpenAIServer(Reply(status=401, error_message="Incorrect API key provided")) as server:
        result = run_with_openai_settings(server)
    assert result.returncode == 1
    out = result.stdout
    assert re.search(r"^✗ travel_assistant .*Incorrect API key provided", out, re.MULTILINE), out
    assert re.search(r"└─ ✗ chat gpt-test-mini", out), out
    assert "├─ ✓ search_docs" in out and "├─ ✓ get_weather" in out
    assert "✗ the turn failed: AuthenticationError" in out
    assert TRACE_LINE.search(out)
    assert "Traceback" not in result.stderr + out


# -- the web chat ------------------------------------------------------------------------------


@pytest.mark.skipif(not HAVE_WEB, reason="steptrace-web is not installed")
def test_demo_serves_the_turn_in_the_web_chat(phoenix, processes):
    project = f"steptrace-demo-{uuid.uuid4().hex[:8]}"
    port = free_port()
    process = subprocess.Popen(
        steptrace_command("demo", "--port", str(port)),
        env=phoenix_env(phoenix, project),
        stdin=subprocess.DEVNULL,  # not a terminal: one turn, then serve until Ctrl-C
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    processes.append(process)
    out = Lines(process.stdout)
    url = f"http://127.0.0.1:{port}/"
    out.wait_for(re.escape(url) + r" +every step, live", timeout=60)
    out.wait_for(r"Serving the web chat at " + re.escape(url) + " until Ctrl-C", timeout=60)
    trace_id = TRACE_LINE.search(out.text)[1]  # type: ignore[index]

    page = httpx.get(url, timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "steptrace" in page.text
    health = httpx.get(url + "healthz", timeout=10).json()
    assert health["steps"] >= 4

    steps = {step["name"]: step for step in sse_snapshot(url)}
    assert set(STEP_NAMES) <= set(steps)
    root = steps["travel_assistant"]
    assert root["status"] == "success" and root["parentId"] is None
    assert root["traceId"] == trace_id
    assert root["input"] == QUESTION
    for name in ("search_docs", "get_weather", LLM_STEP):
        assert steps[name]["parentId"] == root["id"], name
        assert steps[name]["status"] == "success", name
    assert steps[LLM_STEP]["output"] == root["output"]
    assert squash(root["output"]) == squash(printed_answer(out.text))
    assert steps[LLM_STEP]["timeToFirstToken"] > 0
    assert steps["get_weather"]["title"].startswith("Lisbon: ")

    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    rest = out.rest(10)
    assert "done · 1 turn(s) · traces exported" in rest
    assert "Traceback" not in process.stderr.read()  # type: ignore[union-attr]
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "healthz", timeout=2)  # the channel is stopped
    check_trace(phoenix, project, trace_id, root["output"])


@pytest.mark.skipif(not HAVE_WEB, reason="steptrace-web is not installed")
def test_binding_beyond_loopback_needs_a_token():
    result = subprocess.run(
        steptrace_command("demo", "--once", "--host", "0.0.0.0", "--port", "0"),
        env=demo_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert result.returncode == 2
    assert "--token" in result.stderr and "STEPTRACE_WEB_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "❯" not in result.stdout  # no turn ran


# -- in a terminal: Enter runs another turn; SIGTERM (docker stop) exits cleanly ---------------


def test_interactive_turns_in_a_terminal(processes):
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        steptrace_command("demo", "--no-web"),
        env=demo_env(TERM="xterm-256color"),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        close_fds=True,
    )
    processes.append(process)
    os.close(terminal)
    screen = ""

    def read_until(text: str, count: int, timeout: float = 60.0) -> None:
        nonlocal screen
        deadline = time.monotonic() + timeout
        while ANSI.sub("", screen).count(text) < count:
            assert time.monotonic() < deadline, f"{text!r} x{count} not shown:\n{screen}"
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    screen += os.read(controller, 65536).decode("utf-8", "replace")
                except OSError:  # the process closed the terminal
                    break

    try:
        read_until("question ›", 1)
        assert "⠋" in screen or "⠙" in screen or "⠹" in screen  # a spinner was drawn live
        os.write(controller, b"\r")  # Enter: the next sample question
        read_until("question ›", 2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        read_until("done · 2 turn(s)", 1, timeout=10)
    finally:
        os.close(controller)
    text = ANSI.sub("", screen)
    assert f"❯ {QUESTION}" in text
    assert "❯ What should I wear in Oslo this week?" in text
    assert "set OTEL_EXPORTER_OTLP_ENDPOINT to export traces" in squash(text)
    assert len(set(TRACE_LINE.findall(text))) == 2
    assert "Traceback" not in text


# -- without the demo extra --------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["rich", "openai"])
def test_missing_demo_extra_is_a_message_not_a_traceback(missing):
    code = (
        "import sys\n"
        f"sys.modules[{missing!r}] = None  # as if it were not installed\n"
        "from steptrace.cli import main\n"
        "sys.exit(main(['demo', '--once', '--no-web']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "pip install 'steptrace[demo]'" in result.stderr
    assert missing in result.stderr
    assert "Traceback" not in result.stderr


def test_without_the_web_channel_it_says_how_to_install_it_and_runs_on():
    code = (
        "import sys\n"
        "sys.modules['steptrace_web'] = None  # as if steptrace-web were not installed\n"
        "from steptrace.cli import main\n"
        "sys.exit(main(['demo', '--once']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=demo_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not installed: pip install steptrace-web" in squash(result.stdout)
    assert_tree_printed(result.stdout)
    assert "Traceback" not in result.stderr


def test_version_command():
    result = subprocess.run(
        steptrace_command("version"), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert re.fullmatch(r"steptrace \d+\.\d+\.\d+\S*\n", result.stdout)
