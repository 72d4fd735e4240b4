"""The demo's parts in process: the live tree fed by real steps, retrieval, the scripted model."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

import steptrace
from steptrace.demo import agent, scripted, weather
from steptrace.demo.app import SAMPLE_QUESTIONS
from steptrace.demo.knowledge import DocumentStore, find_city
from steptrace.demo.view import StepTree, format_seconds


def render(tree: StepTree, width: int = 100) -> str:
    console = Console(record=True, width=width, color_system=None, force_terminal=False)
    console.print(tree)
    return console.export_text()


@pytest.fixture
def tree():
    tree = StepTree()
    steptrace.add_listener(tree)
    yield tree
    steptrace.remove_listener(tree)


def test_tree_shows_nesting_status_titles_ttft_and_the_streamed_answer(tree, spans):
    with steptrace.Step(name="turn", type="run"):
        with steptrace.Step(name="lookup", type="tool") as lookup:
            lookup.success_title = "found 2 things"
        with steptrace.Step(name="chat model-x", type="llm") as llm:
            for token in ("Hel", "lo ", "there."):
                llm.stream_token(token)
        with (
            pytest.raises(ValueError),
            steptrace.Step(name="broken", type="tool"),
        ):
            raise ValueError("boom: the tool broke")
    assert steptrace.flush(5)

    lines = render(tree).splitlines()
    assert lines[0].startswith("✓ turn ")  # the failure was caught inside the run
    assert lines[1].startswith("├─ ✓ lookup ")
    assert "found 2 things" in lines[1]
    assert lines[2].startswith("├─ ✓ chat model-x ")
    assert "ttft" in lines[2]
    assert lines[3].startswith("└─ ✗ broken ")
    assert "boom: the tool broke" in lines[3]
    text = "\n".join(lines)
    assert "answer · chat model-x" in text
    assert "Hello there." in text
    assert "▌" not in text  # ended: no cursor


def test_tree_shows_running_steps_with_a_spinner_and_the_answer_so_far(tree, spans):
    with steptrace.Step(name="turn", type="run"):
        with steptrace.Step(name="chat model-x", type="llm") as llm:
            llm.stream_token("Partial ")
            llm.stream_token("answer")
            assert steptrace.flush(5)
            text = render(tree)
    first = text.splitlines()[0]
    assert first[0] in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏" and "turn" in first
    assert "streaming…" in text
    assert "Partial answer▌" in text


def test_reset_forgets_the_previous_turn_and_ignores_its_late_updates(tree, spans):
    step = steptrace.Step(name="old", type="tool")
    step.begin()
    assert steptrace.flush(5)
    tree.reset()
    step.finish()  # a late update for a step the view no longer has
    with steptrace.Step(name="new", type="tool"):
        pass
    assert steptrace.flush(5)
    assert tree.names() == ["new"]


def test_delete_removes_the_subtree(tree, spans):
    with steptrace.Step(name="root", type="run") as root:
        with steptrace.Step(name="child", type="tool"):
            pass
    root.remove()
    assert steptrace.flush(5)
    assert tree.names() == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0123, "12 ms"), (1.234, "1.23 s"), (12.34, "12.3 s"), (125, "2m 05s"), (None, "")],
)
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


# -- retrieval, the tool and the scripted model -----------------------------------------------


def test_search_ranks_the_matching_guides_first():
    store = DocumentStore()
    assert [d.id for d, _ in store.search("umbrella for Lisbon")][:2] == [
        "lisbon-spring",
        "lisbon-walking",
    ]
    assert store.search("carry-on liquids")[0][0].id == "carry-on"
    assert store.search("quantum chromodynamics") == []
    assert find_city("Is Oslo colder than Reykjavik?") == "Oslo"
    assert find_city("no city here") is None


@pytest.mark.parametrize("question", SAMPLE_QUESTIONS)
def test_scripted_answer_is_grounded_in_the_prompt(question):
    hits = DocumentStore().search(question)
    docs = [{"title": d.title, "text": d.text, "city": d.city} for d, _ in hits]
    city = find_city(question) or (docs[0]["city"] if docs else None)
    report = weather.forecast(city) if city else None
    messages = agent.build_messages(question, docs, report)

    parsed_question, parsed_docs, parsed_report = scripted.parse_prompt(messages[1]["content"])
    assert parsed_question == question
    assert [title for _, title, _ in parsed_docs] == [d["title"] for d in docs]
    assert parsed_report == report

    answer = scripted.compose_answer(parsed_question, parsed_docs, parsed_report)
    assert "[1]" in answer  # cites the best guide
    if city:
        assert city in answer
    tokens = scripted.tokenize(answer)
    assert "".join(tokens) == answer
    assert len(tokens) > 20
    assert max(len(t) for t in tokens) <= 10  # word pieces, not whole sentences


def test_scripted_reply_reads_the_request():
    messages = agent.build_messages(
        "Should I pack an umbrella for Lisbon?", [], weather.forecast("Lisbon")
    )
    request = scripted.RecordedRequest("POST", "/v1/chat/completions", {}, {"messages": messages})
    reply = scripted.reply_for(request)
    assert reply.answer().startswith("Yes, pack a compact umbrella.")
    assert reply.first_delay > 0 and reply.delay > 0


def test_weather_tool():
    report = weather.forecast("Lisbon", 2)
    assert report["city"] == "Lisbon" and len(report["days"]) == 2
    json.dumps(report)
    with pytest.raises(LookupError):
        weather.forecast("Atlantis")


# -- the turn in process, with the hand-made llm step (no openai auto-instrumentation) ---------


async def test_turn_with_a_manual_llm_step(spans):
    openai = pytest.importorskip("openai")
    from steptrace.instrumentation import OpenAIInstrumentor

    if OpenAIInstrumentor().is_instrumented_by_opentelemetry:
        pytest.skip("openai is instrumented in this process: the llm step would be doubled")
    server = scripted.start_server()
    try:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="x") as client:
            result = await agent.run_turn(
                "Do I need a rain jacket in Edinburgh?",
                client,
                scripted.MODEL,
                thread_id="t-1",
                manual_llm_step=True,
            )
    finally:
        server.close()
    assert result.error is None
    assert result.answer.startswith("Plan for rain in Edinburgh")
    assert result.output_tokens == len(scripted.tokenize(result.answer))
    by_name = {span.name: span for span in spans.get_finished_spans()}
    assert set(by_name) == {
        "travel_assistant",
        "search_docs",
        "get_weather",
        "chat " + scripted.MODEL,
    }
    root = by_name["travel_assistant"]
    assert format(root.context.trace_id, "032x") == result.trace_id
    for name in ("search_docs", "get_weather", "chat " + scripted.MODEL):
        assert by_name[name].parent.span_id == root.context.span_id
    llm = by_name["chat " + scripted.MODEL]
    assert llm.attributes["step.type"] == "llm"
    assert llm.attributes["output.value"] == result.answer
    assert llm.attributes["step.thread_id"] == "t-1"
    assert root.attributes["output.value"] == result.answer
