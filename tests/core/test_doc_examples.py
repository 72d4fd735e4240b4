"""The peers' documentation examples, run against ``steptrace.Step``.

Chainlit's five ``cl.Step`` examples (send, stream the output, nest, update, remove) run with
``async with`` as documented, with a local async token source instead of OpenAI. Panel's
``ChatStep`` examples (basics, status and titles, the context manager, failure, stream_title)
run with plain ``with``. Each asserts the spans, titles and outputs the example should produce.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from opentelemetry.trace import StatusCode

import steptrace
from core.helpers import finished
from steptrace import Step


def rebuild(span_events, target: str = "output") -> str:
    """Apply the ``step.token`` events of a span in order (the contract's rebuild rule)."""
    text = ""
    for event in span_events:
        if event.name != "step.token" or event.attributes["step.token.target"] != target:
            continue
        if event.attributes["step.token.replace"]:
            text = event.attributes["step.token.text"]
        else:
            text += event.attributes["step.token.text"]
    return text


# -- Chainlit ---------------------------------------------------------------------------------


async def test_chainlit_send_a_step(spans, events):
    async with Step(name="Test") as step:
        # Step is sent as soon as the context manager is entered
        step.input = "hello"
        step.output = "world"
    # Step is updated when the context manager is exited

    span = finished(spans, "Test")
    assert span.parent is None
    assert span.attributes["input.value"] == "hello"
    assert span.attributes["output.value"] == "world"
    assert span.attributes["step.status"] == "success"
    assert span.status.status_code == StatusCode.UNSET

    received = events.of(step.id)
    assert [e for e, _ in received] == ["new_message", "update_message"]
    sent, updated = received[0][1], received[1][1]
    assert sent["name"] == "Test" and sent["end"] is None and sent["output"] == ""
    assert updated["input"] == "hello" and updated["output"] == "world"
    assert isinstance(updated["end"], str) and updated["streaming"] is False


async def fake_llm_stream(content: str) -> AsyncIterator[str]:
    """A local stand-in for ``client.chat.completions.create(..., stream=True)``."""
    for word in ("Open", "Telemetry", " is", " a", " standard", "."):
        await asyncio.sleep(0)
        yield word


async def test_chainlit_stream_the_output(spans, events):
    message_content = "What is OpenTelemetry?"

    async with Step(name="gpt4", type="llm") as step:
        step.input = message_content
        async for delta in fake_llm_stream(message_content):
            if delta:
                # Stream the output of the step
                await step.stream_token(delta)

    expected = "OpenTelemetry is a standard."
    assert step.output == expected
    span = finished(spans, "gpt4")
    a = span.attributes
    assert a["step.type"] == "llm" and a["openinference.span.kind"] == "LLM"
    assert a["input.value"] == message_content
    assert a["output.value"] == expected
    assert a["step.time_to_first_token_s"] >= 0
    assert rebuild(span.events) == expected
    token_events = [e for e in span.events if e.name == "step.token"]
    assert 1 <= len(token_events) <= 6

    received = events.of(step.id)
    names = [e for e, _ in received]
    assert names[0] == "new_message" and names[1] == "stream_start"
    assert names[-1] == "update_message"
    streamed = received[1][1]["output"] + "".join(
        p["token"] for e, p in received if e == "stream_token"
    )
    assert streamed == expected
    assert received[-1][1]["output"] == expected and received[-1][1]["streaming"] is False


async def test_chainlit_nest_steps(spans, events):
    async with Step(name="Parent step") as parent_step:
        parent_step.input = "Parent step input"

        async with Step(name="Child step") as child_step:
            child_step.input = "Child step input"
            child_step.output = "Child step output"

        parent_step.output = "Parent step output"

    parent, child = finished(spans, "Parent step"), finished(spans, "Child step")
    assert parent.parent is None
    assert child.parent.span_id == parent.context.span_id
    assert child.context.trace_id == parent.context.trace_id
    assert child.attributes["input.value"] == "Child step input"
    assert child.attributes["output.value"] == "Child step output"
    assert parent.attributes["input.value"] == "Parent step input"
    assert parent.attributes["output.value"] == "Parent step output"
    assert child.end_time <= parent.end_time

    assert events.of(child_step.id)[0][1]["parentId"] == parent_step.id
    # the parent is created before its child on the chat channel
    steptrace.flush()
    creates = [
        p["id"]
        for e, p in events.events
        if e == "new_message" and p["id"] in (parent_step.id, child_step.id)
    ]
    assert creates == [parent_step.id, child_step.id]


async def test_chainlit_update_a_step(spans, events):
    async with Step(name="Parent step") as step:
        step.input = "Parent step input"
        step.output = "Parent step output"

    await asyncio.sleep(0)  # cl.sleep(2) in the docs
    steptrace.flush()

    step.output = "Parent step output updated"
    await step.update()

    final_event, final = events.of(step.id)[-1]
    assert final_event == "update_message"
    assert final["output"] == "Parent step output updated"
    assert final["input"] == "Parent step input"
    # the span had already ended: it keeps what the step produced
    span = finished(spans, "Parent step")
    assert span.attributes["output.value"] == "Parent step output"


async def test_chainlit_remove_a_step(spans, events):
    async with Step(name="Parent step") as step:
        step.input = "Parent step input"
        step.output = "Parent step output"

    await asyncio.sleep(0)  # cl.sleep(2) in the docs

    await step.remove()

    received = events.of(step.id)
    assert [e for e, _ in received] == ["new_message", "update_message", "delete_message"]
    assert received[-1][1]["id"] == step.id
    # removing from the chat does not unmake the trace
    assert finished(spans, "Parent step").attributes["output.value"] == "Parent step output"


# -- Panel ------------------------------------------------------------------------------------


def test_panel_basics_stream_replace_serialize(spans):
    with Step() as chat_step:
        chat_step.stream("Just thinking...")
        assert chat_step.output == "Just thinking..."

        chat_step.stream(" about `ChatStep`!")
        assert chat_step.output == "Just thinking... about `ChatStep`!"

        chat_step.stream("`ChatStep` can do a lot of things!", replace=True)
        assert chat_step.output == "`ChatStep` can do a lot of things!"

    assert chat_step.serialize() == "`ChatStep` can do a lot of things!"
    assert str(chat_step) == "`ChatStep` can do a lot of things!"
    span = spans.get_finished_spans()[-1]
    assert span.attributes["output.value"] == "`ChatStep` can do a lot of things!"
    assert rebuild(span.events) == "`ChatStep` can do a lot of things!"


def test_panel_basics_without_arguments():
    chat_step = Step()
    assert chat_step.status == "pending"
    assert chat_step.title == ""
    assert chat_step.context_exception == "raise"
    assert chat_step.collapsed_on_success is True


def test_panel_status_running_title(events):
    chat_step = Step(status="running", running_title="Processing this step...")
    chat_step.stream("Pretending to do something.")
    assert chat_step.status == "running"
    assert chat_step.title == "Processing this step..."

    chat_step.status = "success"
    # no success_title nor default_title: the title falls back to default_title ("")
    assert chat_step.title == ""
    assert chat_step.output == "Pretending to do something."
    last_event, last = events.of(chat_step.id)[-1]
    assert last_event == "update_message" and last["status"] == "success"
    chat_step.finish()


def test_panel_status_success_title(spans, events):
    chat_step = Step(
        status="running",
        running_title="Processing this step...",
        success_title="Pretend job done!",
    )
    chat_step.stream("Pretending to do something.")
    assert chat_step.title == "Processing this step..."
    chat_step.status = "success"
    assert chat_step.title == "Pretend job done!"

    last = events.of(chat_step.id)[-1][1]
    assert last["status"] == "success" and last["title"] == "Pretend job done!"
    assert last["output"] == "Pretending to do something."
    chat_step.finish()
    span = spans.get_finished_spans()[-1]
    assert span.attributes["step.status"] == "success"
    assert span.attributes["output.value"] == "Pretending to do something."


def test_panel_context_manager(spans, events):
    chat_step = Step(running_title="Processing this step...", success_title="Pretend job done!")
    assert chat_step.status == "pending"
    with chat_step:
        # Upon entry, the status is changed from the default pending to running
        assert chat_step.status == "running"
        assert chat_step.title == "Processing this step..."
        chat_step.stream("Pretending to do something.")
    # exiting changes the status from running to success
    assert chat_step.status == "success"
    assert chat_step.title == "Pretend job done!"

    span = spans.get_finished_spans()[-1]
    assert span.attributes["step.status"] == "success"
    assert span.attributes["output.value"] == "Pretending to do something."
    assert span.status.status_code == StatusCode.UNSET

    received = events.of(chat_step.id)
    assert received[0][1]["title"] == "Processing this step..."
    assert received[-1][1]["title"] == "Pretend job done!"
    assert received[-1][1]["collapsedOnSuccess"] is True


def test_panel_failure(spans, events):
    chat_step = Step(running_title="Processing this step...", success_title="Pretend job done!")
    caught = None
    try:
        with chat_step:
            chat_step.stream("Breaking something")
            raise RuntimeError("Just demoing!")
    except RuntimeError as e:
        caught = e

    assert str(caught) == "Just demoing!"
    assert chat_step.status == "failed"
    # the error is named on the title, the message goes into the body after the streamed text
    assert chat_step.title == "Error: 'RuntimeError'"
    assert chat_step.output == "Breaking something\nJust demoing!"

    span = spans.get_finished_spans()[-1]
    assert span.attributes["step.status"] == "failed"
    assert span.attributes["output.value"] == "Breaking something\nJust demoing!"
    assert span.status.status_code == StatusCode.ERROR
    assert "Just demoing!" in span.status.description
    exceptions = [e for e in span.events if e.name == "exception"]
    assert len(exceptions) == 1
    assert exceptions[0].attributes["exception.type"] == "RuntimeError"
    assert exceptions[0].attributes["exception.message"] == "Just demoing!"
    # the streamed text comes before the exception among the span's events
    names = [e.name for e in span.events]
    assert names.index("step.token") < names.index("exception")

    last = events.of(chat_step.id)[-1][1]
    assert last["status"] == "failed" and last["isError"] is True
    assert last["title"] == "Error: 'RuntimeError'"


def test_panel_stream_title_while_running():
    chat_step = Step()
    chat_step.status = "running"
    for char in "It's streaming a title!":
        chat_step.stream_title(char)
    assert chat_step.title == "It's streaming a title!"
    assert chat_step.running_title == "It's streaming a title!"


def test_panel_stream_title_in_a_with_block(spans, events):
    with Step(name="titled") as chat_step:
        for char in "It's streaming a title!":
            chat_step.stream_title(char)
        assert chat_step.title == "It's streaming a title!"
        steptrace.flush()
        assert events.of(chat_step.id)[-1][1]["title"] == "It's streaming a title!"
    assert chat_step.running_title == "It's streaming a title!"
    assert chat_step.status == "success"
    assert finished(spans, "titled").attributes["step.status"] == "success"


def test_panel_stream_title_pending_and_replace():
    chat_step = Step()
    for char in "I'm deciding on a title... how about this one?":
        chat_step.stream_title(char, status="pending")
    assert chat_step.status == "pending"
    assert chat_step.title == "I'm deciding on a title... how about this one?"

    chat_step.stream_title("Nevermind!", replace=True, status="pending")
    assert chat_step.pending_title == "Nevermind!"
    assert chat_step.title == "Nevermind!"

    # the pending title only shows while pending
    with chat_step:
        assert chat_step.title == ""
    assert chat_step.title == ""
