"""What leaves the process: visibility modes (Chainlit's ``cot``) and thread isolation, checked
on the raw bytes every client receives."""

from __future__ import annotations

import pytest

from web.feedkit import open_feed, step, token

pytestmark = pytest.mark.integration

SECRET_RUN = "secret-planner-run"
SECRET_LLM_TEXT = "SECRET chain of thought"


def publish_agent_run(channel, thread: str | None = "t") -> None:
    """run -> tool -> llm (streaming secret text), plus messages before, inside and after."""
    channel.publish("new_message", step("u1", thread=thread, type="user_message", output="Hi"))
    channel.publish("new_message", step("run", thread=thread, type="run", name=SECRET_RUN))
    channel.publish("new_message", step("tool", parent="run", type="tool", name="search"))
    channel.publish("new_message", step("llm", parent="tool", type="llm", name="secret-llm"))
    channel.publish("stream_token", token("llm", SECRET_LLM_TEXT))
    channel.publish(
        "update_message",
        step("llm", parent="tool", type="llm", name="secret-llm", output=SECRET_LLM_TEXT, end=True),
    )
    channel.publish(
        "update_message",
        step("tool", parent="run", type="tool", name="search", output="3 results", end=True),
    )
    channel.publish(
        "new_message", step("a1", parent="run", type="assistant_message", output="Answer")
    )
    channel.publish(
        "update_message", step("run", thread=thread, type="run", name=SECRET_RUN, end=True)
    )
    channel.publish("new_message", step("marker", thread=thread, type="system_message"))


async def test_full_mode_sends_everything(channel):
    feed = await open_feed(channel)
    publish_agent_run(channel)
    state = await feed.until(lambda s: "marker" in s.steps)
    assert set(state.steps) == {"u1", "run", "tool", "llm", "a1", "marker"}
    assert state.steps["llm"]["parentId"] == "tool"


@pytest.mark.parametrize("joined", ["before", "after"])
async def test_tool_call_mode_sends_only_tools_and_messages(make_channel, joined):
    channel = make_channel(visibility="tool_call")
    if joined == "after":
        publish_agent_run(channel)
        channel.flush()
    feed = await open_feed(channel)
    if joined == "before":
        publish_agent_run(channel)
    state = await feed.until(lambda s: "marker" in s.steps)
    assert set(state.steps) == {"u1", "tool", "a1", "marker"}
    # Hidden parents are skipped: visible steps hang from their nearest visible ancestor.
    assert state.steps["tool"]["parentId"] is None
    assert state.steps["a1"]["parentId"] is None
    raw = state.text()
    for hidden in (SECRET_RUN, SECRET_LLM_TEXT, '"run"', '"llm"', "secret-llm"):
        assert hidden not in raw
    assert state.hello["visibility"] == "tool_call"
    assert not state.violations


@pytest.mark.parametrize("joined", ["before", "after"])
async def test_hidden_mode_sends_messages_only(make_channel, joined):
    channel = make_channel(visibility="hidden")
    if joined == "after":
        publish_agent_run(channel)
        channel.flush()
    feed = await open_feed(channel)
    if joined == "before":
        publish_agent_run(channel)
    state = await feed.until(lambda s: "marker" in s.steps)
    assert set(state.steps) == {"u1", "a1", "marker"}
    raw = state.text()
    for hidden in (SECRET_RUN, SECRET_LLM_TEXT, "search", "3 results", '"tool"', '"llm"'):
        assert hidden not in raw
    assert not any(f["event"] == "stream_token" for f in state.frames)


async def test_a_step_whose_type_changes_across_the_line_resyncs_viewers(make_channel):
    channel = make_channel(visibility="tool_call")
    feed = await open_feed(channel)
    channel.publish("new_message", step("x", type="undefined", name="was hidden"))
    channel.publish("new_message", step("child", parent="x", type="tool"))
    channel.publish("update_message", step("x", type="tool", name="now a tool"))
    state = await feed.until(lambda s: "x" in s.steps)
    assert state.snapshots == ["join", "resync"]
    assert state.steps["child"]["parentId"] == "x"  # re-parented under its now-visible parent
    channel.publish("update_message", step("x", type="undefined", name="hidden again"))
    channel.publish("new_message", step("marker", type="tool"))
    state = await feed.until(lambda s: "marker" in s.steps)
    assert set(state.steps) == {"child", "marker"} and state.steps["child"]["parentId"] is None
    assert "hidden again" not in state.text()


async def test_deleting_a_hidden_step_removes_its_visible_descendants(make_channel):
    channel = make_channel(visibility="hidden")
    feed = await open_feed(channel)
    channel.publish("new_message", step("run", type="run"))
    channel.publish("new_message", step("m", parent="run", type="assistant_message"))
    await feed.until(lambda s: "m" in s.steps)
    channel.publish("delete_message", {"id": "run"})
    channel.publish("new_message", step("marker", type="assistant_message"))
    state = await feed.until(lambda s: "marker" in s.steps)
    assert set(state.steps) == {"marker"}
    assert "run" not in {f["data"].get("id") for f in state.frames if f["event"] != "snapshot"}


def thread_events(channel) -> None:
    """Two conversations interleaved; children carry no threadId and inherit their root's."""
    for n in range(3):
        for thread in ("alpha", "bravo"):
            root = f"{thread}-root{n}"
            channel.publish("new_message", step(root, thread=thread, name=f"{thread} secret {n}"))
            channel.publish("new_message", step(f"{root}-child", parent=root))
            channel.publish("stream_token", token(f"{root}-child", f"{thread}-tokens "))
            channel.publish(
                "update_message",
                step(f"{root}-child", parent=root, end=True, output=f"{thread}-tokens "),
            )
    channel.publish("new_message", step("alpha-marker", thread="alpha"))
    channel.publish("new_message", step("bravo-marker", thread="bravo"))


async def test_a_client_subscribed_to_one_thread_never_receives_another(channel):
    channel.publish("new_message", step("bravo-early", thread="bravo", output="bravo, early"))
    channel.flush()
    one = await open_feed(channel, thread="alpha")
    two = await open_feed(channel, thread="bravo")
    everything = await open_feed(channel)
    thread_events(channel)
    s1 = await one.until(lambda s: "alpha-marker" in s.steps)
    s2 = await two.until(lambda s: "bravo-marker" in s.steps)
    all_ = await everything.until(lambda s: "alpha-marker" in s.steps and "bravo-marker" in s.steps)
    assert s1.steps and all(sid.startswith("alpha") for sid in s1.steps)
    assert s2.steps and all(sid.startswith("bravo") for sid in s2.steps)
    assert "bravo" not in s1.text() and "alpha" not in s2.text()
    assert all(step["threadId"] == "alpha" for step in s1.steps.values())
    assert len(all_.steps) == len(s1.steps) + len(s2.steps)
    late = await open_feed(channel, thread="alpha")
    assert set(late.state.steps) == set(s1.steps)
    assert "bravo" not in late.state.text()


async def test_a_channel_bound_to_one_thread_keeps_nothing_else(make_channel):
    channel = make_channel(thread_id="alpha")
    feed = await open_feed(channel, thread="bravo")  # asking for another thread changes nothing
    thread_events(channel)
    state = await feed.until(lambda s: "alpha-marker" in s.steps)
    assert state.hello["thread"] == "alpha"
    assert "bravo" not in state.text()
    channel.flush()
    assert all(s.thread == "alpha" for s in channel.hub.store)
