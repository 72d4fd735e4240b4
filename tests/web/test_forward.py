"""The standalone ``steptrace-web`` command and apps forwarding their steps to it."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import steptrace_web

import steptrace
from web.feedkit import Feed, FeedState, free_port, step, token

pytestmark = pytest.mark.integration

TOKEN = "forward-token-7d2e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def output_of(state: FeedState, step_id: str) -> str:
    return state.steps.get(step_id, {}).get("output", "")


@contextlib.contextmanager
def standalone(port: int = 0, *extra: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``steptrace-web`` in its own process; yield its base URL once it is listening."""
    process = subprocess.Popen(
        [sys.executable, "-m", "steptrace_web.cli", "--port", str(port), "--token", TOKEN, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()
    try:
        first = lines.get(timeout=60)
        match = re.search(r"serving (http://127\.0\.0\.1:\d+/)", first)
        assert match, first
        yield match.group(1), process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def watch(base_url: str) -> Feed:
    from websockets.asyncio.client import connect

    ws_url = base_url.replace("http://", "ws://") + "ws"
    ws = await connect(ws_url, proxy=None, additional_headers=AUTH, max_size=None)
    feed = Feed(ws)
    await feed.until(lambda s: s.snapshots)
    return feed


async def test_forwarded_events_reach_browsers_of_the_standalone_server():
    with standalone() as (url, process):
        feed = await watch(url)
        forwarder = steptrace_web.forward(url, token=TOKEN, listen=False)
        try:
            forwarder("new_message", step("run", thread="t", type="run"))
            forwarder("new_message", step("llm", parent="run", type="llm"))
            for word in ["forwarded ", "tokens"]:
                forwarder("stream_token", token("llm", word))
            state = await feed.until(
                lambda s: s.steps.get("llm", {}).get("output") == "forwarded tokens"
            )
            assert state.steps["llm"]["parentId"] == "run" and state.steps["llm"]["threadId"] == "t"
            assert not state.violations
        finally:
            forwarder.stop()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0


async def test_a_server_restart_costs_a_resync_not_a_hole():
    port = free_port()
    forwarder = steptrace_web.forward(
        f"http://127.0.0.1:{port}/",
        token=TOKEN,
        listen=False,
        retry_delay=0.05,
        max_retry_delay=0.2,
    )
    try:
        with standalone(port) as (url, _):
            forwarder("new_message", step("a", type="llm"))
            forwarder("stream_token", token("a", "before "))
            feed = await watch(url)
            await feed.until(lambda s: s.steps.get("a", {}).get("output") == "before ")
        # The server is gone: the app keeps streaming and the forwarder never blocks it.
        forwarder("stream_token", token("a", "during "))
        forwarder("new_message", step("b", parent="a"))
        forwarder("delete_message", {"id": "b"})
        forwarder("new_message", step("c", parent="a"))
        with standalone(port) as (url, _):
            forwarder("stream_token", token("a", "after"))
            feed = await watch(url)
            state = await feed.until(
                lambda s: output_of(s, "a").endswith("after") and "c" in s.steps
            )
            assert output_of(state, "a") == "before during after"
            assert set(state.steps) == {"a", "c"}
            assert state.steps["c"]["parentId"] == "a"
    finally:
        forwarder.stop()


async def test_real_steps_are_forwarded_by_the_listener():
    with standalone() as (url, _):
        feed = await watch(url)
        forwarder = steptrace_web.forward(url, token=TOKEN)
        try:

            def app() -> None:
                with steptrace.Step(name="remote run", type="run", thread_id="remote") as run:
                    with steptrace.Step(name="remote llm", type="llm") as llm:
                        for piece in ["over ", "the ", "wire"]:
                            llm.stream_token(piece)
                return run.id

            run_id = await asyncio.to_thread(app)

            def llm_of(state: FeedState) -> dict:
                return next((x for x in state.steps.values() if x["name"] == "remote llm"), {})

            state = await feed.until(lambda s: llm_of(s).get("end") and run_id in s.steps)
            assert llm_of(state)["output"] == "over the wire"
            assert llm_of(state)["parentId"] == run_id
        finally:
            forwarder.stop()


async def test_a_wrong_token_never_delivers_and_never_disturbs_the_app():
    with standalone() as (url, _):
        feed = await watch(url)
        forwarder = steptrace_web.forward(url, token="not-the-token", listen=False)
        try:
            for i in range(100):
                forwarder("new_message", step(f"x{i}"))
            assert not forwarder.connected.wait(1.0)
        finally:
            forwarder.stop()
        assert isinstance(feed.state, FeedState) and set(feed.state.steps) == set()


async def test_a_state_larger_than_a_message_may_be_is_synced_in_several():
    port = free_port()
    forwarder = steptrace_web.forward(f"http://127.0.0.1:{port}/", token=TOKEN, listen=False)
    try:
        # 18 MB of state: more than the 16 MiB a server accepts in one WebSocket message.
        bodies = {f"big{i}": f"{i:03d}" * 30_000 for i in range(200)}
        for sid, body in bodies.items():  # queued while no server runs: sent as one sync
            forwarder("new_message", step(sid, output=body))
        with standalone(port) as (url, _):
            feed = await watch(url)
            state = await feed.until(lambda s: len(s.steps) == len(bodies), timeout=60)
            assert {sid: s["output"] for sid, s in state.steps.items()} == bodies
            assert len(state.frames) >= 2 + len(bodies)
    finally:
        forwarder.stop()
