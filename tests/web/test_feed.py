"""The live feed over real sockets: snapshot then live events, ordering, coalescing, late joins,
and a stalled client resynchronised from a snapshot while the others keep up."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import socket
import threading

import httpx
import pytest
from websockets.asyncio.client import connect

from web.feedkit import Feed, FeedState, feed_url, open_feed, step, token

pytestmark = pytest.mark.integration


def output_of(state: FeedState, step_id: str) -> str:
    return state.steps.get(step_id, {}).get("output", "")


async def test_join_gets_hello_then_snapshot_then_live_events(channel):
    channel.publish("new_message", step("root", thread="t", type="run"))
    channel.publish("new_message", step("llm", parent="root", type="llm"))
    channel.publish("stream_token", token("llm", "Hello"))
    channel.flush()
    feed = await open_feed(channel)
    first, second = feed.state.frames[:2]
    assert first["event"] == "hello" and first["data"]["visibility"] == "full"
    assert second["event"] == "snapshot" and second["data"]["reason"] == "join"
    assert [s["id"] for s in second["data"]["steps"]] == ["root", "llm"]
    assert feed.state.steps["llm"]["output"] == "Hello"  # streamed so far, in the snapshot
    assert feed.state.steps["llm"]["threadId"] == "t"  # inherited from its parent

    channel.publish("stream_token", token("llm", ", world"))
    channel.publish(
        "update_message", step("llm", parent="root", type="llm", output="Hello, world", end=True)
    )
    await feed.until(lambda s: s.steps.get("llm", {}).get("end"))
    assert feed.state.steps["llm"]["output"] == "Hello, world"
    assert [f["event"] for f in feed.state.frames[2:]] == ["stream_token", "update_message"]
    assert not feed.state.violations


async def test_tokens_arrive_while_the_step_is_still_streaming(channel):
    feed = await open_feed(channel)
    channel.publish("new_message", step("llm", type="llm"))
    for word in ["The", "quick", "brown", "fox"]:
        channel.publish("stream_token", token("llm", word + " "))
    # Nothing has ended the step: the client must already hold the first words.
    state = await feed.until(
        lambda s: s.steps.get("llm", {}).get("output", "").startswith("The quick")
    )
    assert state.steps["llm"].get("end") is None
    channel.publish("stream_token", token("llm", "jumps"))
    await feed.until(lambda s: output_of(s, "llm").endswith("jumps"))


async def test_a_fast_stream_is_coalesced_into_few_frames_and_rebuilds_exactly(channel):
    feed = await open_feed(channel)
    channel.publish("new_message", step("llm", type="llm"))
    pieces = [f"t{i} " for i in range(5000)]

    def stream() -> None:
        for piece in pieces:
            channel.publish("stream_token", token("llm", piece))
        channel.publish("update_message", step("llm", type="llm", output="".join(pieces), end=True))

    await asyncio.to_thread(stream)
    state = await feed.until(lambda s: s.steps.get("llm", {}).get("end"))
    token_frames = state.events("stream_token")
    assert "".join(t["token"] for t in token_frames) == "".join(pieces)
    assert 1 <= len(token_frames) < 500, len(token_frames)


async def test_late_joiners_mid_stream_converge_on_the_same_text(channel):
    early = await open_feed(channel)
    channel.publish("new_message", step("llm", type="llm"))
    for i in range(300):
        channel.publish("stream_token", token("llm", f"{i},"))
    channel.flush()
    late = await open_feed(channel)  # joins mid-stream: snapshot with the text so far
    assert late.state.steps["llm"]["output"].startswith("0,1,2,")
    for i in range(300, 600):
        channel.publish("stream_token", token("llm", f"{i},"))
    channel.publish("stream_token", token("llm", "END"))
    expected = "".join(f"{i}," for i in range(600)) + "END"
    for feed in (early, late):
        await feed.until(lambda s: output_of(s, "llm").endswith("END"))
        assert feed.state.steps["llm"]["output"] == expected
        assert not feed.state.violations


def scenario(seed: int) -> list[tuple[str, dict]]:
    """A random but well-formed run: nested steps, interleaved tokens, updates and deletes."""
    rng = random.Random(seed)
    events: list[tuple[str, dict]] = []
    parents: dict[str, str | None] = {}  # every live step (open or ended) -> its parent
    open_steps: list[str] = []
    counter = 0
    for _ in range(400):
        roll = rng.random()
        if roll < 0.25 or not open_steps:
            counter += 1
            sid = f"s{seed}-{counter}"
            parent = rng.choice(open_steps) if open_steps and rng.random() < 0.7 else None
            thread = None if parent else rng.choice(["a", "b"])
            events.append(("new_message", step(sid, parent=parent, thread=thread)))
            parents[sid] = parent
            open_steps.append(sid)
        elif roll < 0.75:
            sid = rng.choice(open_steps)
            events.append(("stream_token", token(sid, rng.choice(["x", "yy", " z", "\n"]))))
        elif roll < 0.9:
            sid = open_steps.pop(rng.randrange(len(open_steps)))
            end = step(sid, parent=parents[sid], output=f"done {sid}", end=True)
            events.append(("update_message", end))
        else:
            sid = rng.choice(open_steps)
            events.append(("delete_message", {"id": sid}))
            doomed = {sid}
            for other, parent in parents.items():  # insertion order: parents before children
                if parent in doomed:
                    doomed.add(other)
            parents = {k: v for k, v in parents.items() if k not in doomed}
            open_steps = [s for s in open_steps if s not in doomed]
    return events


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_order_holds_per_connection_for_clients_joining_at_any_point(channel, seed):
    events = scenario(seed)
    reference = FeedState()
    feeds = [await open_feed(channel)]
    for index, (event, payload) in enumerate(events):
        channel.publish(event, payload)
        if index in (50, 200, 350):
            channel.flush()
            feeds.append(await open_feed(channel))
    channel.publish("new_message", step("marker"))
    for event, payload in [*events, ("new_message", step("marker"))]:
        data = dict(payload)
        if event == "stream_token":
            data.setdefault("isSequence", False)
            data.setdefault("isInput", False)
        reference.apply({"event": event, "data": data})
    assert not reference.violations  # the scenario itself is well formed
    for feed in feeds:
        await feed.until(lambda s: "marker" in s.steps)
        assert not feed.state.violations, feed.state.violations[:3]
        got = {
            sid: (s.get("parentId"), s["output"], s.get("end"))
            for sid, s in feed.state.steps.items()
        }
        want = {
            sid: (s.get("parentId"), s["output"], s.get("end"))
            for sid, s in reference.steps.items()
        }
        assert got == want


async def test_an_update_for_a_step_never_created_arrives_as_a_create(channel):
    """A listener added mid-run sees updates of steps it never saw created."""
    feed = await open_feed(channel)
    channel.publish("update_message", step("old", output="finished", end=True))
    channel.publish("stream_token", token("ghost", "no dict, nothing to show"))
    channel.publish("new_message", step("orphan", parent="never-seen"))
    await feed.until(lambda s: "orphan" in s.steps)
    assert [f["event"] for f in feed.state.frames[2:]] == ["new_message", "new_message"]
    assert "ghost" not in feed.state.text()
    # The unknown parent is not named: the child hangs from the root instead of being dropped.
    assert feed.state.steps["orphan"]["parentId"] is None
    assert not feed.state.violations


async def test_delete_removes_a_subtree_on_every_client(channel):
    feed = await open_feed(channel)
    channel.publish("new_message", step("a"))
    channel.publish("new_message", step("b", parent="a"))
    channel.publish("new_message", step("c"))
    channel.publish("delete_message", step("a"))
    await feed.until(lambda s: "c" in s.steps and "a" not in s.steps)
    assert set(feed.state.steps) == {"c"}
    late = await open_feed(channel)
    assert set(late.state.steps) == {"c"}


def stalled_socket(port: int) -> socket.socket:
    """A TCP connection with a tiny receive buffer, so a client that stops reading backs up fast."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_a_stalled_client_is_resynchronised_and_never_slows_the_others(make_channel):
    # No token linger here: the fast client waits for each step, and pacing is not under test.
    channel = make_channel(client_buffer_frames=40, client_buffer_bytes=300_000, token_interval=0)
    stalled_ws = await connect(
        feed_url(channel),
        sock=stalled_socket(channel.port),
        max_queue=1,
        max_size=None,
        proxy=None,
    )
    fast = await open_feed(channel)
    rng = random.Random(7)
    # The fast client reads every step before the next is published: it is never behind, and it
    # keeps getting everything while the stalled client reads nothing at all. Bodies are random
    # so per-message compression cannot shrink them below the socket buffers.
    for i in range(250):
        body = base64.b64encode(rng.randbytes(24_000)).decode()
        channel.publish("new_message", step(f"s{i}", output=body))
        channel.publish("stream_token", token(f"s{i}", "+tail"))
        channel.publish("update_message", step(f"s{i}", output=body + "+tail", end=True))
        if i % 10 == 0:
            channel.publish("delete_message", {"id": f"s{i}"})
        await fast.until(lambda s, i=i: f"s{i}" in s.steps or i % 10 == 0)
    channel.publish("new_message", step("marker", end=True))
    await fast.until(lambda s: "marker" in s.steps)
    assert fast.state.snapshots == ["join"], "the fast client was never resynchronised"
    assert not fast.state.violations

    stalled = Feed(stalled_ws)
    await stalled.until(lambda s: "marker" in s.steps, timeout=60)
    assert "resync" in stalled.state.snapshots, "the stalled client was not resynchronised"
    assert stalled.state.steps == fast.state.steps  # no holes after the snapshot
    late = await open_feed(channel)
    assert late.state.steps == fast.state.steps
    await stalled_ws.close()


async def test_server_sent_events_fallback_streams_the_same_frames(channel):
    channel.publish("new_message", step("root", thread="t"))
    channel.flush()
    url = f"http://127.0.0.1:{channel.port}/events?thread=t"
    state = FeedState()
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        async with client.stream("GET", url) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            published = False
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                state.apply(json.loads(line[6:]))
                if state.snapshots and not published:
                    assert set(state.steps) == {"root"}
                    channel.publish("new_message", step("child", parent="root"))
                    channel.publish("stream_token", token("child", "over SSE"))
                    published = True
                if state.steps.get("child", {}).get("output") == "over SSE":
                    break
    assert [f["event"] for f in state.frames[:2]] == ["hello", "snapshot"]
    assert state.hello["transport"] == "sse"
    assert not state.violations


def test_publishing_never_waits_for_clients(channel):
    """The listener side is a hand-off: even with no loop progress it returns at once."""
    done = threading.Event()

    def flood() -> None:
        for i in range(20_000):
            channel.publish("stream_token", token("nobody", str(i)))
        done.set()

    thread = threading.Thread(target=flood)
    thread.start()
    thread.join(30)
    assert done.is_set()
    assert channel.flush()
