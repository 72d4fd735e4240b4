"""The channel fed by the real steptrace core: Steps, streamed tokens, failures, foreign spans,
and ``steptrace.configure(web=...)``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from opentelemetry import trace

import steptrace
from web.feedkit import open_feed

pytestmark = pytest.mark.integration


@pytest.fixture
def live_channel(make_channel):
    return make_channel(listen=True)


def output_of(state, step_id):
    return state.steps.get(step_id, {}).get("output", "")


async def test_a_nested_streaming_run_arrives_live_and_in_order(live_channel):
    feed = await open_feed(live_channel)
    halfway = threading.Event()
    resume = threading.Event()
    ids: dict[str, str] = {}

    def app() -> None:
        with steptrace.Step(name="agent", type="run", thread_id="conv-1") as run:
            ids["run"] = run.id
            with steptrace.Step(
                name="gpt", type="llm", running_title="Thinking…", success_title="Answered"
            ) as llm:
                ids["llm"] = llm.id
                for word in ["Paris ", "is ", "the ", "capital"]:
                    llm.stream_token(word)
                halfway.set()
                resume.wait(30)
                for word in [" of ", "France."]:
                    llm.stream_token(word)

    worker = threading.Thread(target=app)
    worker.start()
    assert await asyncio.to_thread(halfway.wait, 30)
    state = await feed.until(lambda s: output_of(s, ids["llm"]) == "Paris is the capital")
    llm = state.steps[ids["llm"]]
    assert llm["end"] is None and llm["status"] == "running" and llm["title"] == "Thinking…"
    assert llm["parentId"] == ids["run"] and llm["threadId"] == "conv-1"
    resume.set()
    state = await feed.until(lambda s: s.steps.get(ids["run"], {}).get("end"))
    worker.join(10)
    llm = state.steps[ids["llm"]]
    assert llm["output"] == "Paris is the capital of France."
    assert llm["status"] == "success" and llm["title"] == "Answered"
    assert llm["streaming"] is False and llm["end"]
    assert isinstance(llm["timeToFirstToken"], (int, float))
    assert len(llm["traceId"]) == 32 and len(llm["spanId"]) == 16
    assert not state.violations
    order = [f["data"]["id"] for f in state.frames if f["event"] in ("new_message", "stream_start")]
    assert order.index(ids["run"]) < order.index(ids["llm"])


async def test_a_failed_step_carries_its_error(live_channel):
    feed = await open_feed(live_channel)

    def app() -> None:
        with steptrace.Step(name="lookup", type="tool", context_exception="summary") as tool:
            tool.stream_token("partial result")
            raise ValueError("upstream returned 503")

    await asyncio.to_thread(app)
    state = await feed.until(lambda s: any(x.get("status") == "failed" for x in s.steps.values()))
    (failed,) = [x for x in state.steps.values() if x.get("status") == "failed"]
    assert failed["isError"] is True
    assert failed["title"] == "Error: 'ValueError'"
    assert "partial result" in failed["output"] and "upstream returned 503" in failed["output"]


async def test_foreign_spans_appear_as_steps(live_channel):
    feed = await open_feed(live_channel)
    tracer = trace.get_tracer("some.http.client")

    def app() -> None:
        with steptrace.Step(name="fetch", type="tool"):
            with tracer.start_as_current_span("HTTP GET /weather") as span:
                span.set_attribute("output.value", "200 OK")

    await asyncio.to_thread(app)
    state = await feed.until(
        lambda s: any(
            x.get("name") == "HTTP GET /weather" and x.get("end") for x in s.steps.values()
        )
    )
    (foreign,) = [x for x in state.steps.values() if x["name"] == "HTTP GET /weather"]
    (mine,) = [x for x in state.steps.values() if x["name"] == "fetch"]
    assert foreign["parentId"] == mine["id"]
    assert foreign["output"] == "200 OK" and foreign["status"] == "success"


def test_stopping_the_channel_detaches_it_from_steptrace(make_channel):
    from steptrace._live import BUS

    channel = make_channel(listen=True)
    assert channel.inlet in BUS.listeners
    channel.stop()
    assert channel.inlet not in BUS.listeners
    with steptrace.Step(name="after stop"):
        pass  # nothing to deliver to, nothing raised


def test_configure_web_starts_the_channel(tmp_path):
    """``steptrace.configure(web=...)`` calls ``steptrace_web.serve(**options)``."""
    script = textwrap.dedent(
        """
        import asyncio, json, sys
        import steptrace
        from websockets.asyncio.client import connect

        steptrace.configure(web={"visibility": "tool_call"})
        channel = steptrace.web_channel()
        with steptrace.Step(name="visible tool", type="tool"):
            pass
        with steptrace.Step(name="hidden llm", type="llm"):
            pass
        channel.flush()

        async def main():
            async with connect(f"ws://127.0.0.1:{channel.port}/ws", proxy=None) as ws:
                await ws.recv()
                snapshot = json.loads(await ws.recv())["data"]
            print(json.dumps({"url": channel.url, "names": [s["name"] for s in snapshot["steps"]]}))

        asyncio.run(main())
        steptrace.shutdown()
        """
    )
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["url"].startswith("http://127.0.0.1:")
    assert report["names"] == ["visible tool"]
