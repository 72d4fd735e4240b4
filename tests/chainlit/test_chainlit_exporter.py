"""steptrace steps in a real Chainlit app, as a real Socket.IO user receives them.

The server is ``chainlit run tests/chainlit/app.py --headless`` (see ``app.py`` for what each
message does); the users are python-socketio clients speaking Chainlit's client protocol, and
``ClientTree`` applies the events as Chainlit's React client does.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from chainlit_harness import ChainlitServer, ChainlitUser

pytestmark = pytest.mark.integration

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
PLAN_STEPS = ("plan", "sync-inner", "lookup", "executor-tool", "answer", "count")


async def connected(server: ChainlitServer) -> ChainlitUser:
    user = ChainlitUser(server)
    await user.connect()
    return user


@pytest.fixture
async def user(chainlit_server: ChainlitServer) -> AsyncIterator[ChainlitUser]:
    client = await connected(chainlit_server)
    yield client
    await client.close()


def thread_id_of(user: ChainlitUser) -> str:
    for event, data in user.events:
        if event == "first_interaction":
            return str(data["thread_id"])
    raise AssertionError(f"no first_interaction event: {user.events}")


def plan_finished(user: ChainlitUser, who: str) -> bool:
    """The ``plan <who>`` run is over and every step of it has ended, top-level lookup too."""
    if f"done {who}" not in user.assistant_messages():
        return False
    if not all(user.ended(name) for name in PLAN_STEPS):
        return False
    return sum(1 for node in user.tree.by_name("lookup") if node.get("end")) == 2


def first_index(user: ChainlitUser, step_id: str) -> int:
    for index, (_, data) in enumerate(user.events):
        if isinstance(data, dict) and data.get("id") == step_id:
            return index
    raise AssertionError(f"no event for {step_id}")


def streamed_text(user: ChainlitUser, step_id: str) -> tuple[str, int]:
    """The output rebuilt from ``stream_start`` + ``stream_token`` alone, and the token count."""
    text, tokens = "", 0
    for event, data in user.events:
        if not isinstance(data, dict) or data.get("id") != step_id:
            continue
        if event == "stream_start":
            text = data["output"]
        elif event == "stream_token":
            tokens += 1
            text = data["token"] if data["isSequence"] else text + data["token"]
    return text, tokens


async def test_steps_nest_stream_and_end_like_chainlit_steps(user: ChainlitUser) -> None:
    message_id = await user.send("plan alice")
    await user.wait_for(lambda: plan_finished(user, "alice"), "the plan run to finish")
    tree = user.tree

    # Nothing was silently dropped by the client (unknown parent, update before create).
    assert tree.dropped == []

    # Nesting: top-level steps sit under Chainlit's own on_message run, like cl.Step would.
    run = tree.one("on_message")
    assert run["parentId"] == message_id
    plan = tree.one("plan")
    assert tree.path(plan["id"]) == ["User", "on_message", "plan"]
    for child in ("sync-inner", "executor-tool", "answer"):
        assert tree.path(tree.one(child)["id"]) == ["User", "on_message", "plan", child]
    lookups = {node["output"]: node for node in tree.by_name("lookup")}
    # Sync steps in worker threads: cl.make_async nested in the plan, and at top level.
    assert tree.path(lookups["found alice in True"]["id"]) == [
        "User",
        "on_message",
        "plan",
        "lookup",
    ]
    assert tree.path(lookups["found alice-top in True"]["id"]) == ["User", "on_message", "lookup"]
    assert tree.path(tree.one("count")["id"]) == ["User", "on_message", "count"]
    # The client lists the run's children in the order they happened: steps that started
    # before the reply message come before it, as cl.Step's would.
    listed = [tree.nodes[child]["name"] for child in tree.children[run["id"]]]
    assert listed == ["plan", "count", "lookup", "steptrace test"]

    # Order: every step is created before any of its updates, tokens or children.
    for node in tree.nodes.values():
        if node.get("type") in ("user_message", "assistant_message", "run") and node is not plan:
            continue
        events = user.step_events(node["id"])
        assert events[0] in ("new_message", "stream_start"), (node["name"], events)
        parent_id = node.get("parentId")
        if parent_id in {n["id"] for n in tree.by_name("plan")}:
            assert first_index(user, parent_id) < first_index(user, node["id"])

    # Streaming: tokens arrive live, as Chainlit stream events, and rebuild the text exactly.
    answer = tree.one("answer")
    answer_events = user.step_events(answer["id"])
    assert "stream_start" in answer_events
    assert "stream_token" in answer_events
    assert answer_events.index("stream_token") < len(answer_events) - 1  # before the end update
    text, tokens = streamed_text(user, answer["id"])
    assert text == "The answer is 42."
    assert tokens >= 1
    assert answer["output"] == "The answer is 42."

    # Final state, like a cl.Step's closing update_message.
    for name in PLAN_STEPS:
        node = user.ended(name)
        assert node is not None
        assert node["end"] and node["start"] and node["createdAt"]
        assert node["streaming"] is False
        assert node["isError"] is False
        assert node["status"] == "success"
        assert node["threadId"] == thread_id_of(user)
        assert HEX32.match(node["traceId"]) and HEX16.match(node["spanId"])
    assert plan["input"] == "alice"
    assert plan["output"] == "planned for alice"
    assert tree.one("sync-inner")["output"] == "sync for alice"
    assert tree.one("executor-tool")["output"] == "tool ran for alice"
    assert tree.one("executor-tool")["input"] == "alice"
    # A falsy return value is recorded (Chainlit's own @step drops it).
    assert tree.one("count")["output"] == "0"
    # One trace for the whole plan subtree.
    plan_trace = plan["traceId"]
    for child in ("sync-inner", "executor-tool", "answer"):
        assert tree.one(child)["traceId"] == plan_trace


async def test_two_concurrent_users_each_see_only_their_own_steps(
    chainlit_server: ChainlitServer,
) -> None:
    alice, bob = await asyncio.gather(connected(chainlit_server), connected(chainlit_server))
    try:
        await asyncio.gather(alice.send("plan alice"), bob.send("plan bob"))
        await asyncio.gather(
            alice.wait_for(lambda: plan_finished(alice, "alice"), "alice's plan"),
            bob.wait_for(lambda: plan_finished(bob, "bob"), "bob's plan"),
        )
        alice_thread, bob_thread = thread_id_of(alice), thread_id_of(bob)
        assert alice_thread != bob_thread

        def step_dicts(user: ChainlitUser) -> list[dict[str, Any]]:
            return [
                data
                for event, data in user.events
                if event in ("new_message", "update_message", "stream_start")
            ]

        for user, thread, who, other in (
            (alice, alice_thread, "alice", "bob"),
            (bob, bob_thread, "bob", "alice"),
        ):
            assert user.tree.dropped == []
            assert {data["threadId"] for data in step_dicts(user)} == {thread}
            assert user.tree.one("plan")["input"] == who
            assert user.tree.one("plan")["output"] == f"planned for {who}"
            everything = repr(user.events)
            assert f"planned for {other}" not in everything
            assert f"found {other}" not in everything
        alice_ids = {data["id"] for data in step_dicts(alice)}
        bob_ids = {data["id"] for data in step_dicts(bob)}
        assert not alice_ids & bob_ids
    finally:
        await asyncio.gather(alice.close(), bob.close())


async def test_an_error_keeps_the_streamed_output_and_propagates(user: ChainlitUser) -> None:
    await user.send("fail")
    # Chainlit's on_message run records the error only if the exception propagated out of the
    # steptrace step into Chainlit's own step.
    run = await user.wait_for(
        lambda: (runs := user.tree.by_name("on_message")) and runs[0].get("end") and runs[0],
        "the on_message run's end",
    )
    assert run["isError"] is True
    assert run["output"] == "boom"
    fragile = await user.wait_for(lambda: user.ended("fragile"), "the failed step's end")
    assert fragile["isError"] is True
    assert fragile["status"] == "failed"
    assert fragile["output"].startswith("partial output")  # not wiped, as cl.Step would
    assert "boom" in fragile["output"]
    assert user.tree.dropped == []


async def test_stop_cancels_the_step_keeps_its_output_and_is_not_swallowed(
    user: ChainlitUser,
) -> None:
    await user.send("slow")
    await user.wait_for(
        lambda: (slow := user.tree.by_name("slow")) and "t2 " in slow[0].get("output", ""),
        "three streamed tokens",
    )
    stop_index = len(user.events)
    await user.stop()
    slow = await user.wait_for(lambda: user.ended("slow"), "the cancelled step's end")
    await user.wait_for(
        lambda: any(event == "task_end" for event, _ in user.events[stop_index:]),
        "the end of the cancelled task",
    )
    assert slow["isError"] is True
    assert slow["status"] == "failed"
    assert slow["output"].startswith("t0 t1 t2 ")  # Chainlit's cl.Step would leave ""
    # Had the step swallowed CancelledError, the handler would have gone on to send this
    # before Chainlit's task_end.
    assert "after slow" not in user.assistant_messages()
    assert "Task manually stopped." in user.assistant_messages()


async def test_hidden_chain_of_thought_sends_stubs_only(
    chainlit_server_hidden_cot: ChainlitServer,
) -> None:
    user = await connected(chainlit_server_hidden_cot)
    try:
        await user.send("plan carol")
        await user.wait_for(
            lambda: (
                "done carol" in user.assistant_messages()
                and len(user.tree.by_name("lookup")) == 2
                and user.tree.by_name("count")
                and user.step_events(user.tree.one("plan")["id"])[-1:] == ["update_message"]
                and user.tree.one("on_message").get("end")
            ),
            "carol's plan",
        )
        tree = user.tree
        assert tree.dropped == []
        for name in PLAN_STEPS:
            node = tree.one(name) if name != "lookup" else tree.by_name(name)[0]
            assert node["input"] == "" and node["output"] == "", node
            assert "end" not in node and "status" not in node  # a stub, like Chainlit's
        assert tree.path(tree.one("answer")["id"]) == ["User", "on_message", "plan", "answer"]
        assert not [event for event, _ in user.events if event == "stream_token"]
        assert not [event for event, _ in user.events if event == "stream_start"]
        # Messages and Chainlit's own run are shown in full.
        assert tree.one("on_message")["input"] == "plan carol"
    finally:
        await user.close()


async def test_tool_call_chain_of_thought_sends_everything_for_the_client_to_filter(
    chainlit_server_tool_call_cot: ChainlitServer,
) -> None:
    user = await connected(chainlit_server_tool_call_cot)
    try:
        await user.send("plan dave")
        await user.wait_for(lambda: plan_finished(user, "dave"), "dave's plan")
        assert user.tree.dropped == []
        assert user.tree.one("plan")["output"] == "planned for dave"
        assert user.tree.one("answer")["output"] == "The answer is 42."
        assert "stream_token" in user.step_events(user.tree.one("answer")["id"])
    finally:
        await user.close()


async def test_remove_deletes_the_step_and_its_children(user: ChainlitUser) -> None:
    await user.send("remove")
    await user.wait_for(lambda: user.ended("kept"), "the step after the removal")
    assert user.tree.dropped == []
    assert user.tree.by_name("temporary") == []
    assert user.tree.by_name("temporary-child") == []
    removed = [data["name"] for event, data in user.events if event == "delete_message"]
    assert removed == ["temporary"]


async def test_llm_auto_instrumentation_steps_stream_into_the_session(user: ChainlitUser) -> None:
    await user.send("llm")
    await user.wait_for(
        lambda: any(text.startswith("llm done") for text in user.assistant_messages()),
        "the handler's reply",
    )
    llm_steps = await user.wait_for(
        lambda: (
            len(
                ended := [
                    n for n in user.tree.nodes.values() if n.get("type") == "llm" and n.get("end")
                ]
            )
            == 2
            and ended
        ),
        "both llm steps to end",
    )
    assert user.tree.dropped == []
    by_output = {node["output"]: node for node in llm_steps}
    assert set(by_output) == {"Hello from the fake model.", "sync reply"}
    for node in llm_steps:
        assert node["name"] == "chat fake-model"
        assert node["status"] == "success"
        assert user.tree.path(node["id"]) == ["User", "on_message", "chat fake-model"]
    streamed = by_output["Hello from the fake model."]
    events = user.step_events(streamed["id"])
    assert "stream_start" in events  # tokens went out live, as the client read them
    text, _ = streamed_text(user, streamed["id"])
    assert text == "Hello from the fake model."
    assert [t for t in user.assistant_messages() if t.startswith("llm done")] == [
        "llm done: Hello from the fake model. / sync reply"
    ]


async def test_top_level_step_in_run_in_executor_reaches_its_session(user: ChainlitUser) -> None:
    await user.send("executor")
    done = await user.wait_for(
        lambda: [text for text in user.assistant_messages() if text.startswith("executor done")],
        "the handler's report",
    )
    assert done == [f"executor done in thread {thread_id_of(user)}"]
    step = await user.wait_for(lambda: user.ended("executor-top"), "the executor step")
    assert user.tree.path(step["id"]) == ["User", "on_message", "executor-top"]
