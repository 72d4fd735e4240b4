"""The live channel: ``add_listener`` events, order, coalescing, isolation, foreign spans."""

from __future__ import annotations

import re
import threading
import time

import pytest
from opentelemetry import trace

import steptrace
from core.helpers import CHAINLIT_KEYS, STEPTRACE_KEYS


class Recorder:
    """A listener that keeps every event, with the time it arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict, float]] = []
        self.lock = threading.Lock()

    def __call__(self, event: str, payload: dict) -> None:
        with self.lock:
            self.events.append((event, dict(payload), time.monotonic()))

    def of(self, step_id: str) -> list[tuple[str, dict]]:
        return [(e, p) for e, p, _ in self.events if p.get("id") == step_id]

    def names(self) -> list[str]:
        return [e for e, _, _ in self.events]


@pytest.fixture
def recorder():
    rec = Recorder()
    steptrace.add_listener(rec)
    yield rec
    steptrace.remove_listener(rec)


def test_lifecycle_events_in_order_with_the_wire_dict(recorder):
    with steptrace.Step(name="parent", type="run") as parent:
        with steptrace.Step(name="child", type="llm") as child:
            child.stream_token("Hello")
            child.stream_token(", world")
    steptrace.flush()
    child_events = recorder.of(child.id)
    assert [e for e, _ in child_events] == [
        "new_message",
        "stream_start",
        "stream_token",
        "update_message",
    ]
    new = child_events[0][1]
    assert new["parentId"] == parent.id and new["end"] is None and new["status"] == "running"
    assert child_events[1][1]["output"] == "Hello" and child_events[1][1]["streaming"] is True
    assert child_events[2][1] == {
        "id": child.id,
        "threadId": None,
        "token": ", world",
        "isSequence": False,
        "isInput": False,
    }
    end = child_events[3][1]
    assert end["end"] is not None and end["streaming"] is False
    assert end["status"] == "success" and end["output"] == "Hello, world"
    assert re.fullmatch(r"[0-9a-f]{32}", end["traceId"])
    assert re.fullmatch(r"[0-9a-f]{16}", end["spanId"])
    # the parent's create precedes everything of its child
    order = [(e, p["id"]) for e, p, _ in recorder.events if "id" in p]
    assert order.index(("new_message", parent.id)) < order.index(("new_message", child.id))
    assert order[-1] == ("update_message", parent.id)


def test_wire_dict_has_the_contract_keys(recorder):
    with steptrace.Step(name="s", type="tool", tags=["t"], metadata={"k": 1}, icon="wrench"):
        pass
    steptrace.flush()
    payload = recorder.events[-1][1]
    missing = (CHAINLIT_KEYS | STEPTRACE_KEYS) - set(payload)
    assert not missing, missing
    assert payload["metadata"] == {"k": 1, "icon": "wrench"}


def test_a_5000_token_burst_arrives_complete_in_few_events(recorder):
    with steptrace.Step(name="burst") as step:
        for i in range(5000):
            step.stream_token(f"{i} ")
    steptrace.flush()
    events = recorder.of(step.id)
    token_events = [p for e, p in events if e == "stream_token"]
    assert len(events) <= 300
    text = events[1][1]["output"] + "".join(p["token"] for p in token_events)
    assert text == "".join(f"{i} " for i in range(5000)) == step.output


def test_tokens_arrive_while_the_stream_is_still_running(recorder):
    seen_before_end: list[str] = []
    with steptrace.Step(name="slow") as step:
        for i in range(10):
            step.stream_token(f"t{i}")
            time.sleep(0.03)
            with recorder.lock:
                seen_before_end = [
                    p.get("token") or p.get("output")
                    for e, p, _ in recorder.events
                    if p.get("id") == step.id and e in ("stream_start", "stream_token")
                ]
    # Every token but possibly the very last was delivered before the step ended.
    assert "".join(seen_before_end).startswith("".join(f"t{i}" for i in range(9)))


def test_a_failing_listener_breaks_neither_the_app_nor_other_listeners(recorder, caplog):
    def broken(event, payload):
        raise RuntimeError("listener bug")

    steptrace.add_listener(broken)
    try:
        with steptrace.Step(name="safe") as step:
            step.stream_token("x")
        steptrace.flush()
    finally:
        steptrace.remove_listener(broken)
    assert [e for e, _ in recorder.of(step.id)] == ["new_message", "stream_start", "update_message"]
    assert "listener bug" in caplog.text


def test_update_after_the_end_reaches_the_channel_only(recorder, spans):
    with steptrace.Step(name="s") as step:
        step.output = "first"
    step.output = "second"
    step.update()
    steptrace.flush()
    assert recorder.of(step.id)[-1][1]["output"] == "second"
    (span,) = spans.get_finished_spans()
    assert span.attributes["output.value"] == "first"


def test_remove_sends_delete(recorder):
    with steptrace.Step(name="s") as step:
        pass
    step.remove()
    steptrace.flush()
    assert recorder.of(step.id)[-1][0] == "delete_message"


def test_status_and_title_changes_are_pushed_live(recorder):
    with steptrace.Step(name="s", running_title="Working") as step:
        step.stream_title("Still ", status="running", replace=True)
        step.stream_title("working")
        step.status = "failed"
    steptrace.flush()
    updates = [p for e, p in recorder.of(step.id) if e == "update_message"]
    assert updates[-1]["status"] == "failed"


def test_foreign_spans_are_mirrored_as_steps(recorder):
    tracer = trace.get_tracer("some.other.library")
    with steptrace.Step(name="mine") as mine:
        with tracer.start_as_current_span("HTTP GET") as foreign:
            foreign.set_attribute("output.value", "200 OK")
            with steptrace.Step(name="nested-in-foreign") as nested:
                pass
    steptrace.flush()
    foreign_id = format(foreign.get_span_context().span_id, "016x")
    events = recorder.of(foreign_id)
    assert [e for e, _ in events] == ["new_message", "update_message"]
    assert events[0][1]["parentId"] == mine.id and events[0][1]["name"] == "HTTP GET"
    assert events[1][1]["end"] is not None and events[1][1]["output"] == "200 OK"
    assert nested.parent_id == foreign_id
    assert not any(p.get("foreign") for e, p in recorder.of(mine.id))


def test_listener_must_be_callable():
    with pytest.raises(TypeError):
        steptrace.add_listener("not callable")  # type: ignore[arg-type]


def test_a_client_librarys_own_llm_span_is_not_a_second_llm_step(recorder):
    tracer = trace.get_tracer("anthropic")
    with steptrace.Step(name="chat claude", type="llm") as llm:
        with llm.activate():
            with tracer.start_as_current_span(
                "anthropic.messages.create", attributes={"gen_ai.operation.name": "chat"}
            ):
                with tracer.start_as_current_span("POST /v1/messages") as http:
                    pass
    steptrace.flush()
    names = [p["name"] for e, p, _ in recorder.events if e == "new_message"]
    assert names == ["chat claude", "POST /v1/messages"]
    http_id = format(http.get_span_context().span_id, "016x")
    assert recorder.of(http_id)[0][1]["parentId"] == llm.id


def test_failed_step_carries_its_error_apart_from_the_output(recorder):
    with pytest.raises(ValueError), steptrace.Step(name="s") as step:
        step.stream_token("partial answer")
        raise ValueError("boom")
    steptrace.flush()
    end = recorder.of(step.id)[-1][1]
    assert end["isError"] is True and end["error"] == "ValueError: boom"
    assert end["output"].startswith("partial answer")


def test_a_huge_burst_coalesces_in_linear_time(recorder):
    with steptrace.Step(name="huge") as step:
        for _ in range(100_000):
            step.stream_token("ab")
    assert steptrace.flush(timeout=30)
    tokens = [p for e, p in recorder.of(step.id) if e in ("stream_start", "stream_token")]
    text = tokens[0]["output"] + "".join(p["token"] for p in tokens[1:])
    assert text == "ab" * 100_000
