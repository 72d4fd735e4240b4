"""The Step contract: constructor parameters and their span attributes, validation, the Panel
surface (status, titles, stream, stream_title, serialize) and the Chainlit surface (send, update,
remove, stream_token, to_dict), checked against DESIGN.md and the peers' documented behaviour."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest
from opentelemetry.trace import StatusCode

import steptrace
from core.helpers import CHAINLIT_KEYS, STEPTRACE_KEYS, attrs, finished
from steptrace import Step

# -- helpers ----------------------------------------------------------------------------------


# -- constructor parameters → span attributes -------------------------------------------------


#: DESIGN.md's constructor signature: (name, default, keyword-only).
CONTRACT_SIGNATURE = [
    ("name", None, False),
    ("type", "undefined", False),
    ("id", None, True),
    ("parent_id", None, True),
    ("elements", None, True),
    ("metadata", None, True),
    ("tags", None, True),
    ("language", None, True),
    ("show_input", "json", True),
    ("default_open", False, True),
    ("auto_collapse", False, True),
    ("icon", None, True),
    ("thread_id", None, True),
    ("status", "pending", True),
    ("default_title", "", True),
    ("pending_title", None, True),
    ("running_title", None, True),
    ("success_title", None, True),
    ("failed_title", None, True),
    ("collapsed_on_success", True, True),
    ("context_exception", "raise", True),
]


def test_constructor_signature_matches_the_contract():
    parameters = inspect.signature(Step).parameters
    for name, default, keyword_only in CONTRACT_SIGNATURE:
        assert name in parameters, name
        parameter = parameters[name]
        assert parameter.default == default, name
        expected_kind = (
            inspect.Parameter.KEYWORD_ONLY
            if keyword_only
            else inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        assert parameter.kind == expected_kind, name
    positional = [
        n for n, p in parameters.items() if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    assert positional == ["name", "type"]


def test_defaults_are_visible_on_a_new_step():
    step = Step()
    assert (step.name, step.type, step.status) == ("", "undefined", "pending")
    assert step.show_input == "json" and step.default_open is False
    assert step.auto_collapse is False and step.collapsed_on_success is True
    assert step.context_exception == "raise" and step.default_title == ""
    assert step.metadata == {} and step.tags is None and step.elements == []
    assert step.parent_id is None and step.thread_id is None
    assert step.input == "" and step.output == ""


def test_name_is_the_span_name(spans):
    with Step(name="retrieve documents"):
        pass
    assert [s.name for s in spans.get_finished_spans()] == ["retrieve documents"]


def test_name_is_the_first_positional_parameter_and_type_the_second(spans):
    with Step("positional", "tool") as step:
        pass
    assert step.name == "positional" and step.type == "tool"
    assert attrs(spans, "positional")["step.type"] == "tool"


def test_id_is_a_uuid_string_unless_given(spans):
    with Step(name="a") as a:
        pass
    with Step(name="b") as b:
        pass
    with Step(name="c", id="my-own-id") as c:
        pass
    a_id = attrs(spans, "a")["step.id"]
    assert str(uuid.UUID(a_id)) == a_id == a.id
    assert attrs(spans, "b")["step.id"] == b.id != a_id
    assert attrs(spans, "c")["step.id"] == "my-own-id" == c.id


def test_id_is_stable_before_and_after_the_step_runs(spans):
    step = Step(name="stable")
    before = step.id
    with step:
        pass
    assert step.id == before == attrs(spans, "stable")["step.id"]


KINDS = [
    ("llm", "LLM"),
    ("tool", "TOOL"),
    ("retrieval", "RETRIEVER"),
    ("embedding", "EMBEDDING"),
    ("rerank", "RERANKER"),
    ("run", "CHAIN"),
    ("undefined", "CHAIN"),
]


@pytest.mark.parametrize(("step_type", "kind"), KINDS)
def test_type_and_openinference_kind(spans, step_type, kind):
    with Step(name="typed", type=step_type):
        pass
    a = attrs(spans, "typed")
    assert a["step.type"] == step_type
    assert a["openinference.span.kind"] == kind


@pytest.mark.parametrize(
    "step_type", ["my_custom_agent", "user_message", "assistant_message", "system_message"]
)
def test_custom_and_message_types_are_accepted_as_chains(spans, step_type):
    with Step(name="custom", type=step_type) as step:
        pass
    assert step.type == step_type
    a = attrs(spans, "custom")
    assert a["step.type"] == step_type
    assert a["openinference.span.kind"] == "CHAIN"


def test_default_type_is_undefined(spans):
    with Step(name="plain") as step:
        pass
    assert step.type == "undefined"
    assert attrs(spans, "plain")["step.type"] == "undefined"


def test_type_changed_in_the_body_is_what_the_span_reports(spans):
    with Step(name="retyped") as step:
        step.type = "tool"
    a = attrs(spans, "retyped")
    assert a["step.type"] == "tool" and a["openinference.span.kind"] == "TOOL"


def test_tags_attribute(spans):
    with Step(name="tagged", tags=["rag", "v2"]):
        pass
    assert list(attrs(spans, "tagged")["step.tags"]) == ["rag", "v2"]


def test_tags_set_in_the_body(spans):
    with Step(name="late tags") as step:
        step.tags = ["late"]
    assert list(attrs(spans, "late tags")["step.tags"]) == ["late"]


def test_metadata_primitives_and_homogeneous_lists_as_is(spans):
    metadata = {
        "s": "text",
        "b": True,
        "i": 42,
        "f": 1.5,
        "strs": ["a", "b"],
        "ints": [1, 2, 3],
        "floats": [0.5, 2.5],
        "bools": [True, False],
    }
    with Step(name="meta", metadata=metadata):
        pass
    a = attrs(spans, "meta")
    assert a["step.metadata.s"] == "text"
    assert a["step.metadata.b"] is True
    assert a["step.metadata.i"] == 42 and type(a["step.metadata.i"]) is int
    assert a["step.metadata.f"] == 1.5
    assert list(a["step.metadata.strs"]) == ["a", "b"]
    assert list(a["step.metadata.ints"]) == [1, 2, 3]
    assert list(a["step.metadata.floats"]) == [0.5, 2.5]
    assert list(a["step.metadata.bools"]) == [True, False]


def test_metadata_other_values_json_encoded(spans):
    metadata = {
        "mixed": [1, "a"],
        "nested": {"k": [1, 2], "s": "v"},
        "none": None,
        "empty": [],
    }
    with Step(name="meta json", metadata=metadata):
        pass
    a = attrs(spans, "meta json")
    for key, value in metadata.items():
        encoded = a[f"step.metadata.{key}"]
        assert isinstance(encoded, str), key
        assert json.loads(encoded) == value, key


def test_metadata_added_in_the_body_is_recorded(spans):
    with Step(name="meta late", metadata={"a": 1}) as step:
        step.metadata["b"] = "two"
    a = attrs(spans, "meta late")
    assert a["step.metadata.a"] == 1 and a["step.metadata.b"] == "two"


def test_string_input_and_output_are_text(spans):
    with Step(name="text io") as step:
        step.input = "What is OTel?"
        step.output = "A standard."
    a = attrs(spans, "text io")
    assert a["input.value"] == "What is OTel?"
    assert a["input.mime_type"] == "text/plain"
    assert a["output.value"] == "A standard."
    assert a["output.mime_type"] == "text/plain"


@pytest.mark.parametrize(
    "value", [{"query": "otel", "k": 3}, [1, "two", {"three": 3}], {"nested": {"list": []}}]
)
def test_dict_and_list_input_and_output_are_json(spans, value):
    with Step(name="json io") as step:
        step.input = value
        step.output = value
    a = attrs(spans, "json io")
    assert json.loads(a["input.value"]) == value
    assert a["input.mime_type"] == "application/json"
    assert json.loads(a["output.value"]) == value
    assert a["output.mime_type"] == "application/json"


def test_status_attribute_and_unset_span_status_on_success(spans):
    with Step(name="ok") as step:
        pass
    span = finished(spans, "ok")
    assert step.status == "success"
    assert span.attributes["step.status"] == "success"
    assert span.status.status_code == StatusCode.UNSET


def test_failure_sets_error_status_with_description_and_exception_event(spans):
    with pytest.raises(ValueError, match="bad input"):
        with Step(name="fails") as step:
            raise ValueError("bad input")
    span = finished(spans, "fails")
    assert step.status == "failed"
    assert span.attributes["step.status"] == "failed"
    assert span.status.status_code == StatusCode.ERROR
    assert "ValueError" in span.status.description
    assert "bad input" in span.status.description
    exception_events = [e for e in span.events if e.name == "exception"]
    assert len(exception_events) == 1
    event = exception_events[0].attributes
    assert event["exception.type"] == "ValueError"
    assert event["exception.message"] == "bad input"
    assert "Traceback (most recent call last)" in event["exception.stacktrace"]
    assert 'raise ValueError("bad input")' in event["exception.stacktrace"]


def test_optional_attributes_when_set(spans):
    with Step(
        name="all set",
        thread_id="thread-1",
        language="python",
        show_input="python",
        default_open=True,
        icon="search",
    ):
        pass
    a = attrs(spans, "all set")
    assert a["step.thread_id"] == "thread-1"
    assert a["step.language"] == "python"
    assert a["step.show_input"] == "python"
    assert a["step.default_open"] is True
    assert a["step.icon"] == "search"


def test_show_input_bool(spans):
    with Step(name="show", show_input=True):
        pass
    assert attrs(spans, "show")["step.show_input"] is True


def test_optional_attributes_absent_when_not_set(spans):
    with Step(name="none set"):
        pass
    a = attrs(spans, "none set")
    for key in ("step.thread_id", "step.language", "step.default_open", "step.icon"):
        assert key not in a, key


def test_language_and_thread_id_set_in_the_body(spans):
    with Step(name="late lang") as step:
        step.language = "json"
        step.thread_id = "t-9"
    a = attrs(spans, "late lang")
    assert a["step.language"] == "json" and a["step.thread_id"] == "t-9"


def test_explicit_parent_id_wins_over_the_current_context(spans, events):
    with Step(name="A") as a:
        with Step(name="B"):
            with Step(name="C", parent_id=a.id) as c:
                pass
    span_a, span_c = finished(spans, "A"), finished(spans, "C")
    assert span_c.parent.span_id == span_a.context.span_id
    assert c.parent_id == a.id
    assert events.of(c.id)[0][1]["parentId"] == a.id


def test_nesting_follows_the_context(spans, events):
    with Step(name="outer") as outer:
        with Step(name="inner") as inner:
            pass
    span_outer, span_inner = finished(spans, "outer"), finished(spans, "inner")
    assert span_inner.parent.span_id == span_outer.context.span_id
    assert span_inner.context.trace_id == span_outer.context.trace_id
    assert inner.parent_id == outer.id
    assert events.of(inner.id)[0][1]["parentId"] == outer.id


def test_elements_and_auto_collapse_are_kept(events):
    element = object()
    with Step(name="elements", elements=[element], auto_collapse=True) as step:
        pass
    assert step.elements == [element]
    assert step.auto_collapse is True
    assert step.to_dict()["autoCollapse"] is True
    assert events.of(step.id)[-1][1]["autoCollapse"] is True


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, 3, b"llm", ["llm"]])
def test_non_string_type_raises_type_error_naming_it(bad):
    with pytest.raises(TypeError, match=r"\btype\b"):
        Step(name="x", type=bad)
    step = Step(name="x")
    with pytest.raises(TypeError, match=r"\btype\b"):
        step.type = bad
    assert step.type == "undefined"


@pytest.mark.parametrize("bad", [3, b"name", ["name"], 1.5])
def test_non_string_name_raises_type_error_naming_it(bad):
    with pytest.raises(TypeError, match=r"\bname\b"):
        Step(name=bad)
    step = Step(name="kept")
    with pytest.raises(TypeError, match=r"\bname\b"):
        step.name = bad
    assert step.name == "kept"


@pytest.mark.parametrize("bad", ["done", "completed", "SUCCESS", ""])
def test_unknown_status_raises_value_error_in_constructor_and_setter(bad):
    with pytest.raises(ValueError, match="status"):
        Step(status=bad)
    step = Step()
    with pytest.raises(ValueError, match="status"):
        step.status = bad
    assert step.status == "pending"


@pytest.mark.parametrize("good", ["pending", "running", "success", "failed"])
def test_the_four_statuses_are_accepted(good):
    assert Step(status=good).status == good
    step = Step()
    step.status = good
    assert step.status == good


@pytest.mark.parametrize("bad", ["traceback", "quiet", "RAISE"])
def test_unknown_context_exception_raises_value_error(bad):
    with pytest.raises(ValueError, match="context_exception"):
        Step(context_exception=bad)
    step = Step()
    with pytest.raises(ValueError, match="context_exception"):
        step.context_exception = bad
    assert step.context_exception == "raise"


@pytest.mark.parametrize("bad", ["rag", {"rag"}, 3])
def test_tags_must_be_a_list(bad):
    with pytest.raises(TypeError, match="tags"):
        Step(tags=bad)


def test_tag_items_must_be_strings():
    with pytest.raises(TypeError, match="tags"):
        Step(tags=["ok", 3])
    step = Step()
    with pytest.raises(TypeError, match="tags"):
        step.tags = ["ok", None]


@pytest.mark.parametrize("bad", [["k", "v"], "k=v", 3])
def test_metadata_must_be_a_dict(bad):
    with pytest.raises(TypeError, match="metadata"):
        Step(metadata=bad)
    step = Step()
    with pytest.raises(TypeError, match="metadata"):
        step.metadata = bad


@pytest.mark.parametrize("flag", ["default_open", "auto_collapse", "collapsed_on_success"])
@pytest.mark.parametrize("bad", ["yes", 1, 0, None])
def test_flags_must_be_bools(flag, bad):
    with pytest.raises(TypeError, match=flag):
        Step(**{flag: bad})


@pytest.mark.parametrize("legacy", ["root", "disable_feedback"])
def test_legacy_chainlit_arguments_are_accepted_with_a_deprecation_warning(spans, legacy):
    with pytest.warns(DeprecationWarning, match=legacy):
        step = Step(name="legacy", **{legacy: True})
    with step:
        pass
    assert step.status == "success"
    assert legacy not in " ".join(attrs(spans, "legacy"))


def test_construction_starts_nothing(spans, events):
    step = Step(name="constructed only")
    steptrace.flush()
    assert step.status == "pending"
    assert spans.get_finished_spans() == ()
    assert events.of(step.id) == []


def test_construction_and_use_need_no_event_loop(spans):
    outcome: dict = {}

    def in_a_thread() -> None:
        try:
            asyncio.get_running_loop()
            outcome["loop"] = True
        except RuntimeError:
            outcome["loop"] = False
        try:
            with Step(name="threaded") as step:
                step.stream_token("x")
                step.send()
                step.update()
            outcome["status"] = step.status
        except BaseException as exc:  # pragma: no cover - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert outcome == {"loop": False, "status": "success"}
    assert attrs(spans, "threaded")["output.value"] == "x"


def test_construction_and_use_need_no_configured_sdk():
    # The global provider can be set only once per process: a fresh interpreter has none.
    script = textwrap.dedent(
        """
        import asyncio, json
        from opentelemetry import trace
        import steptrace
        assert not hasattr(trace.get_tracer_provider(), "add_span_processor")
        async def main():
            async with steptrace.Step(name="a", type="llm", metadata={"k": 1}) as step:
                await step.stream_token("he")
                step.stream_token("llo")
            return step
        step = asyncio.run(main())
        with steptrace.Step(name="b") as other:
            other.output = {"x": 1}
        d = step.to_dict()
        print(json.dumps([step.status, step.output, d["traceId"], d["spanId"], other.status]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        "success",
        "hello",
        None,
        None,
        "success",
    ]


# -- Panel: statuses, titles, stream, stream_title, serialize ---------------------------------


def test_status_pending_then_running_on_enter_then_success(spans, events):
    step = Step(name="lifecycle")
    assert step.status == "pending"
    with step:
        assert step.status == "running"
    assert step.status == "success"
    received = events.of(step.id)
    assert received[0][0] == "new_message" and received[0][1]["status"] == "running"
    assert received[-1][0] == "update_message" and received[-1][1]["status"] == "success"
    assert attrs(spans, "lifecycle")["step.status"] == "success"


async def test_status_lifecycle_async(spans):
    step = Step(name="async lifecycle")
    async with step:
        assert step.status == "running"
    assert step.status == "success"
    assert attrs(spans, "async lifecycle")["step.status"] == "success"


def test_status_success_set_in_the_body_is_kept(spans):
    with Step(name="early success") as step:
        step.status = "success"
        assert step.status == "success"
    assert step.status == "success"
    assert attrs(spans, "early success")["step.status"] == "success"


def test_status_failed_set_in_the_body_is_kept(spans):
    with Step(name="explicit failure") as step:
        step.stream("it did not work")
        step.status = "failed"
    assert step.status == "failed"
    assert step.is_error is True
    assert step.output == "it did not work"
    assert attrs(spans, "explicit failure")["step.status"] == "failed"


def test_status_failed_set_in_the_body_gives_an_error_span(spans):
    with Step(name="explicit failure span") as step:
        step.status = "failed"
    span = finished(spans, "explicit failure span")
    assert step.status == "failed"
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description


def test_status_pending_set_in_the_body_ends_as_success():
    # Panel (#7742): exit only promotes pending/running, and a body-set pending becomes success.
    with Step(name="pending again") as step:
        step.status = "pending"
    assert step.status == "success"


TITLES = {
    "default_title": "Default",
    "pending_title": "Waiting",
    "running_title": "Working",
    "success_title": "Done",
    "failed_title": "Broken",
}


@pytest.mark.parametrize(
    ("status", "expected"),
    [("pending", "Waiting"), ("running", "Working"), ("success", "Done"), ("failed", "Broken")],
)
def test_title_for_each_status_with_all_titles(status, expected):
    step = Step(**TITLES)
    step.status = status
    assert step.title == expected
    assert step.to_dict()["title"] == expected


@pytest.mark.parametrize("status", ["pending", "running", "success", "failed"])
def test_title_falls_back_to_default_title(status):
    step = Step(default_title="Default")
    step.status = status
    assert step.title == "Default"


def test_default_title_defaults_to_empty():
    assert Step().title == ""
    assert Step().default_title == ""


def test_titles_follow_the_status_through_a_run():
    step = Step(**TITLES)
    assert step.title == "Waiting"
    with step:
        assert step.title == "Working"
    assert step.title == "Done"


def test_empty_title_counts_as_set():
    step = Step(default_title="Default", running_title="")
    step.status = "running"
    assert step.title == ""


def test_titles_are_mutable():
    step = Step(default_title="Default")
    step.running_title = "Now running"
    step.status = "running"
    assert step.title == "Now running"
    step.running_title = None
    assert step.title == "Default"


def test_failure_without_failed_title_names_the_error():
    step = Step(default_title="Default", running_title="Working", success_title="Done")
    with pytest.raises(KeyError):
        with step:
            raise KeyError("missing")
    assert step.status == "failed"
    assert step.title == "Error: 'KeyError'"
    assert step.output == "'missing'"


def test_failure_with_failed_title_uses_it_and_adds_no_error_text():
    step = Step(failed_title="Could not fetch")
    with pytest.raises(RuntimeError):
        with step:
            step.stream("fetching")
            raise RuntimeError("timeout")
    assert step.title == "Could not fetch"
    assert step.output == "fetching"


def test_collapsed_on_success_default_and_override(events):
    with Step(name="collapses") as collapses:
        pass
    with Step(name="stays open", collapsed_on_success=False) as stays:
        pass
    assert collapses.collapsed_on_success is True
    assert stays.collapsed_on_success is False
    assert events.of(collapses.id)[-1][1]["collapsedOnSuccess"] is True
    assert events.of(stays.id)[-1][1]["collapsedOnSuccess"] is False


def test_stream_appends_to_the_output(spans):
    with Step(name="streamed") as step:
        step.stream("Just thinking...")
        step.stream(" about it!")
        assert step.output == "Just thinking... about it!"
    a = attrs(spans, "streamed")
    assert a["output.value"] == "Just thinking... about it!"
    assert a["output.mime_type"] == "text/plain"


def test_stream_replace_overwrites_the_output(spans):
    with Step(name="replaced") as step:
        step.stream("first draft")
        step.stream("final", replace=True)
        assert step.output == "final"
        step.stream(" answer")
    assert step.output == "final answer"
    assert attrs(spans, "replaced")["output.value"] == "final answer"


def test_stream_none_is_ignored():
    with Step() as step:
        step.stream("a")
        step.stream(None)
    assert step.output == "a"


def test_stream_after_an_assigned_output_appends():
    with Step() as step:
        step.output = "Hello"
        step.stream(", world")
    assert step.output == "Hello, world"


def test_stream_title_appends_to_the_running_title_by_default():
    step = Step()
    step.status = "running"
    for char in "Title!":
        step.stream_title(char)
    assert step.running_title == "Title!"
    assert step.title == "Title!"
    assert step.status == "running"


@pytest.mark.parametrize("status", ["pending", "running", "success", "failed"])
def test_stream_title_targets_the_given_status(status):
    step = Step(default_title="Default")
    step.stream_title("Hel", status=status)
    step.stream_title("lo", status=status)
    assert getattr(step, f"{status}_title") == "Hello"
    assert step.status == "pending"  # stream_title never changes the status
    step.status = status
    assert step.title == "Hello"


def test_stream_title_replace():
    step = Step(pending_title="Thinking")
    step.stream_title(" hard", status="pending")
    assert step.title == "Thinking hard"
    step.stream_title("Nevermind!", status="pending", replace=True)
    assert step.pending_title == "Nevermind!"
    assert step.title == "Nevermind!"


def test_stream_title_default():
    step = Step()
    step.stream_title("Fallback", status="default")
    assert step.default_title == "Fallback"
    assert step.title == "Fallback"


def test_stream_title_rejects_an_unknown_status():
    with pytest.raises(ValueError, match="status"):
        Step().stream_title("x", status="done")


def test_stream_title_reaches_the_listener(events):
    with Step(name="titled") as step:
        step.stream_title("Searching")
        steptrace.flush()
        assert events.of(step.id)[-1][1]["title"] == "Searching"


def test_serialize_and_str_give_the_output_text():
    with Step() as step:
        step.stream("one")
        step.stream(" two")
    assert step.serialize() == "one two"
    assert str(step) == "one two"


def test_serialize_structured_output_is_json():
    with Step() as step:
        step.output = {"answer": 42}
    assert json.loads(step.serialize()) == {"answer": 42}
    assert json.loads(str(step)) == {"answer": 42}


# -- Chainlit: send / update / remove / stream_token / to_dict --------------------------------


def test_send_update_remove_plainly_called_from_sync_code(spans, events):
    with Step(name="sync chainlit") as step:
        sent = step.send()
        step.output = "v1"
        updated = step.update()
    removed = step.remove()
    assert bool(updated) is True and bool(removed) is True

    async def await_later(awaitable):
        return await awaitable

    # plain calls return already-completed awaitables: awaiting them later gives the results
    assert asyncio.run(await_later(sent)) is step
    assert asyncio.run(await_later(updated)) is True
    names = events.names_of(step.id)
    assert names[0] == "new_message"
    assert names[-1] == "delete_message"
    assert "update_message" in names
    assert events.of(step.id)[-1][1]["id"] == step.id
    assert attrs(spans, "sync chainlit")["output.value"] == "v1"


async def test_send_update_remove_awaited_from_async_code(spans, events):
    async with Step(name="async chainlit") as step:
        assert await step.send() is step
        step.output = "v1"
        assert await step.update() is True
    assert await step.remove() is True
    names = events.names_of(step.id)
    assert names[0] == "new_message" and names[-1] == "delete_message"
    assert attrs(spans, "async chainlit")["output.value"] == "v1"


def test_send_shows_a_step_that_was_not_entered(events):
    step = Step(name="sent only")
    step.send()
    try:
        received = events.of(step.id)
        assert [e for e, _ in received] == ["new_message"]
        assert received[0][1]["status"] == "running"
        assert received[0][1]["end"] is None
    finally:
        step.finish()


def test_stream_token_plainly_called(spans, events):
    with Step(name="tokens") as step:
        step.stream_token("Hel")
        step.stream_token("lo")
    assert step.output == "Hello"
    assert attrs(spans, "tokens")["output.value"] == "Hello"
    names = events.names_of(step.id)
    assert names[:2] == ["new_message", "stream_start"]
    assert names[-1] == "update_message"


async def test_stream_token_awaited(spans, events):
    async with Step(name="awaited tokens") as step:
        assert await step.stream_token("Hel") is None
        await step.stream_token("lo")
    assert step.output == "Hello"
    assert attrs(spans, "awaited tokens")["output.value"] == "Hello"
    assert events.names_of(step.id)[1] == "stream_start"


def test_stream_token_is_sequence_replaces(spans):
    with Step(name="sequence") as step:
        step.stream_token("draft")
        step.stream_token("final", is_sequence=True)
    assert step.output == "final"
    assert attrs(spans, "sequence")["output.value"] == "final"


def test_stream_token_is_input_targets_the_input(spans):
    with Step(name="input tokens") as step:
        step.stream_token("que", is_input=True)
        step.stream_token("stion", is_input=True)
        step.stream_token("answer")
    assert step.input == "question" and step.output == "answer"
    a = attrs(spans, "input tokens")
    assert a["input.value"] == "question" and a["output.value"] == "answer"


def test_stream_token_ignores_empty_tokens(events):
    with Step(name="empty tokens") as step:
        step.stream_token("")
    assert step.output == ""
    assert "stream_start" not in events.names_of(step.id)


def test_to_dict_keys_and_values(spans):
    with Step(name="parent") as parent:
        with Step(
            name="wire",
            type="tool",
            metadata={"k": "v"},
            tags=["t"],
            language="python",
            show_input=True,
            default_open=True,
            auto_collapse=True,
            thread_id="thread-7",
            running_title="Running wire",
        ) as step:
            step.input = "in"
            step.output = {"out": 1}
            during = step.to_dict()
    after = step.to_dict()
    span = finished(spans, "wire")

    assert set(after) >= CHAINLIT_KEYS | STEPTRACE_KEYS
    assert during["id"] == step.id and during["name"] == "wire" and during["type"] == "tool"
    assert during["threadId"] == "thread-7" and during["parentId"] == parent.id
    assert during["input"] == "in" and json.loads(during["output"]) == {"out": 1}
    assert during["isError"] is False and during["streaming"] is False
    assert during["metadata"]["k"] == "v" and during["tags"] == ["t"]
    assert during["language"] == "python" and during["showInput"] is True
    assert during["defaultOpen"] is True and during["autoCollapse"] is True
    assert during["status"] == "running" and during["title"] == "Running wire"
    assert during["end"] is None and isinstance(during["start"], str)
    assert isinstance(during["createdAt"], str)
    assert after["status"] == "success" and isinstance(after["end"], str)
    assert re.fullmatch(r"[0-9a-f]{32}", after["traceId"])
    assert re.fullmatch(r"[0-9a-f]{16}", after["spanId"])
    assert after["traceId"] == format(span.context.trace_id, "032x")
    assert after["spanId"] == format(span.context.span_id, "016x")


def test_to_dict_reports_failures():
    with Step(name="wire failure", context_exception="summary") as step:
        raise RuntimeError("nope")
    d = step.to_dict()
    assert d["isError"] is True and d["status"] == "failed"
    assert d["output"] == "nope" and d["title"] == "Error: 'RuntimeError'"


def test_end_event_has_end_set_and_streaming_false(events):
    with Step(name="end event") as step:
        step.stream_token("tok")
    final_event, final = events.of(step.id)[-1]
    assert final_event == "update_message"
    assert isinstance(final["end"], str) and final["streaming"] is False
    assert final["output"] == "tok" and final["status"] == "success"


def test_update_after_the_end_reaches_the_chat_only(spans, events):
    with Step(name="updated later") as step:
        step.input = "question"
        step.output = "first answer"
    steptrace.flush()
    exported_before = spans.get_finished_spans()
    step.output = "corrected answer"
    step.update()
    final_event, final = events.of(step.id)[-1]
    assert final_event == "update_message"
    assert final["output"] == "corrected answer"
    assert spans.get_finished_spans() == exported_before
    assert attrs(spans, "updated later")["output.value"] == "first answer"


async def test_update_after_the_end_awaited(spans, events):
    async with Step(name="awaited later") as step:
        step.output = "v1"
    steptrace.flush()
    step.output = "v2"
    assert await step.update() is True
    assert events.of(step.id)[-1][1]["output"] == "v2"
    assert attrs(spans, "awaited later")["output.value"] == "v1"


def test_remove_sends_delete_message(events):
    with Step(name="removed") as step:
        pass
    steptrace.flush()
    step.remove()
    final_event, final = events.of(step.id)[-1]
    assert final_event == "delete_message" and final["id"] == step.id


def chat_view(received: list[tuple[str, dict]]) -> str:
    """The output a Chainlit client shows after applying ``received`` in order."""
    output = ""
    for event, payload in received:
        if event in ("new_message", "update_message", "stream_start"):
            output = payload["output"]
        elif event == "stream_token" and not payload["isInput"]:
            output = payload["token"] if payload["isSequence"] else output + payload["token"]
    return output


def test_tokens_after_the_end_reach_the_chat_only(spans, events):
    with Step(name="late tokens") as step:
        step.stream_token("before")
    steptrace.flush()
    step.stream_token(" after")
    assert step.output == "before after"
    assert chat_view(events.of(step.id)) == "before after"
    span = finished(spans, "late tokens")
    assert span.attributes["output.value"] == "before"
    assert len(spans.get_finished_spans()) == 1


def test_update_of_a_step_never_sent_does_not_precede_its_create(events):
    step = Step(name="never sent")
    step.output = "x"
    step.update()
    received = events.of(step.id)
    if received:
        assert received[0][0] == "new_message", received
