"""steptrace steps as real Panel ``ChatStep`` cards in a real ``ChatFeed``.

No server here: the feed is outside any document, so the exporter applies events on
steptrace's dispatcher thread; ``steptrace.flush()`` waits until everything published so far
was applied. (The served path, with the document lock and next-tick callbacks, is covered by
the browser test.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import panel as pn
import pytest
import steptrace_panel
from bokeh.document import Document
from panel.chat import ChatFeed, ChatStep
from panel.io.state import set_curdoc
from panel.pane import Markdown

import steptrace


@pytest.fixture
def feed() -> Iterator[ChatFeed]:
    chat = pn.chat.ChatFeed()
    exporter = steptrace_panel.attach(chat)
    yield chat
    steptrace.flush()
    exporter.detach()


def cards(container: object) -> list[ChatStep]:
    """The ChatStep cards directly inside a layout (a feed's steps message, or a card)."""
    return [obj for obj in container.objects if isinstance(obj, ChatStep)]  # type: ignore[attr-defined]


def top_cards(feed: ChatFeed) -> list[ChatStep]:
    found: list[ChatStep] = []
    for message in feed.objects:
        found.extend(cards(message.object))
    return found


def texts(card: ChatStep) -> list[str]:
    return [str(obj.object) for obj in card.objects if isinstance(obj, Markdown)]


def card_named(feed: ChatFeed, title: str) -> ChatStep:
    stack = top_cards(feed)
    while stack:
        card = stack.pop()
        if card.title == title:
            return card
        stack.extend(cards(card))
    raise AssertionError(f"no card titled {title!r} in {[c.title for c in top_cards(feed)]}")


def test_a_run_with_nesting_titles_status_and_stream(feed: ChatFeed, spans) -> None:
    with steptrace.Step(
        name="plan", type="run", running_title="Planning...", success_title="Planned"
    ) as plan:
        steptrace.flush()
        assert top_cards(feed)[0].title == "Planning..."
        assert top_cards(feed)[0].status == "running"
        with steptrace.Step(name="search", type="tool") as search:
            search.input = {"query": "panel"}
            search.output = "3 documents"
        with steptrace.Step(name="answer", type="llm") as llm:
            llm.stream("The ")
            llm.stream("answer")
            steptrace.flush()
            live = card_named(feed, "answer")
            assert live.status == "running"
            assert texts(live) == ["The answer"]  # shown while streaming, not at the end
            llm.stream(" is 42.")
        plan.output = "planned"
    steptrace.flush()

    (outer,) = top_cards(feed)
    assert outer.title == "Planned"
    assert outer.status == "success"
    assert outer.collapsed is True  # collapsed_on_success, as Panel does
    assert [card.title for card in cards(outer)] == ["search", "answer"]
    search_card, answer_card = cards(outer)
    assert texts(search_card) == ['```json\n{"query": "panel"}\n```', "3 documents"]
    assert texts(answer_card) == ["The answer is 42."]
    assert all(card.status == "success" for card in cards(outer))
    assert "planned" in texts(outer)
    # The same steps went to OpenTelemetry.
    assert {span.name for span in spans.get_finished_spans()} >= {"plan", "search", "answer"}


def test_an_error_fails_the_card_keeps_the_stream_and_propagates(feed: ChatFeed) -> None:
    with pytest.raises(ValueError, match="boom"), steptrace.Step(name="fragile") as step:
        step.stream("partial output")
        raise ValueError("boom")
    steptrace.flush()
    card = card_named(feed, "Error: 'ValueError'")
    assert card.status == "failed"
    assert card.collapsed is False
    (text,) = texts(card)
    assert text.startswith("partial output")
    assert "boom" in text


def test_stream_replace_and_stream_title(feed: ChatFeed) -> None:
    with steptrace.Step(name="drafting") as step:
        step.stream("first draft")
        step.stream("final text", replace=True)
        step.stream_title("Writing", status="running")
        step.stream_title(" now", status="running")
        steptrace.flush()
        assert card_named(feed, "Writing now").status == "running"
        step.success_title = "Written"
    steptrace.flush()
    card = card_named(feed, "Written")
    assert texts(card) == ["final text"]


async def test_cancellation_is_recorded_not_swallowed_and_keeps_output(feed: ChatFeed) -> None:
    streamed = asyncio.Event()

    async def slow() -> None:
        async with steptrace.Step(name="slow", type="llm") as step:
            await step.stream_token("t0 ")
            await step.stream_token("t1 ")
            streamed.set()
            await asyncio.sleep(3600)
        raise AssertionError("the step swallowed the cancellation")

    task = asyncio.create_task(slow())
    await streamed.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    steptrace.flush()
    card = card_named(feed, "Error: 'CancelledError'")
    assert card.status == "failed"
    assert texts(card)[0].startswith("t0 t1 ")


def test_falsy_return_values_are_shown(feed: ChatFeed) -> None:
    @steptrace.step(name="zero")
    def zero() -> int:
        return 0

    @steptrace.step(name="no")
    def no() -> bool:
        return False

    @steptrace.step(name="nothing")
    def nothing() -> None:
        return None

    assert zero() == 0
    assert no() is False
    assert nothing() is None
    steptrace.flush()
    assert texts(card_named(feed, "zero"))[-1] == "0"
    assert texts(card_named(feed, "no"))[-1] == "False"
    assert [t for t in texts(card_named(feed, "nothing")) if not t.startswith("```")] == []


def test_steps_from_threads_and_tasks_nest_under_their_parent(feed: ChatFeed) -> None:
    def work(n: int) -> None:
        with steptrace.Step(name=f"thread-{n}", type="tool") as step:
            step.output = threading.current_thread().name

    async def task_step(n: int) -> None:
        async with steptrace.Step(name=f"task-{n}") as step:
            await asyncio.sleep(0)
            step.output = "async"

    async def gather() -> None:
        await asyncio.gather(task_step(1), task_step(2))

    with steptrace.Step(name="parent"):
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(steptrace.wrap_context(work), [1, 2]))
        asyncio.run(gather())
    steptrace.flush()
    parent = card_named(feed, "parent")
    assert sorted(card.title for card in cards(parent)) == [
        "task-1",
        "task-2",
        "thread-1",
        "thread-2",
    ]
    for n in (1, 2):
        assert texts(card_named(feed, f"thread-{n}"))[-1] != "MainThread"
        assert texts(card_named(feed, f"task-{n}")) == ["async"]


def test_each_session_document_gets_only_its_own_steps() -> None:
    documents = [Document(), Document()]
    feeds: list[ChatFeed] = []
    exporters = []
    for document in documents:
        with set_curdoc(document):
            chat = pn.chat.ChatFeed()
            feeds.append(chat)
            exporters.append(steptrace_panel.attach(chat))
    try:

        def session_code(index: int) -> None:
            with set_curdoc(documents[index]), steptrace.Step(name=f"session-{index}") as step:
                with steptrace.Step(name=f"child-{index}"):
                    pass
                step.output = f"for session {index}"

        threads = [threading.Thread(target=session_code, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with steptrace.Step(name="outside any session"):
            pass
        steptrace.flush()
        for index, chat in enumerate(feeds):
            (card,) = top_cards(chat)
            assert card.title == f"session-{index}"
            assert [child.title for child in cards(card)] == [f"child-{index}"]
            assert texts(card)[-1] == f"for session {index}"
    finally:
        for exporter in exporters:
            exporter.detach()


def test_explicit_thread_id_sends_a_step_to_that_feed(feed: ChatFeed) -> None:
    other = pn.chat.ChatFeed()
    exporter = steptrace_panel.attach(other)
    try:
        with steptrace.Step(name="routed", thread_id=exporter.thread_id):
            pass
        steptrace.flush()
        assert [card.title for card in top_cards(other)] == ["routed"]
        assert "routed" not in [card.title for card in top_cards(feed)]
    finally:
        exporter.detach()


def test_remove_deletes_the_card_and_its_children(feed: ChatFeed) -> None:
    with steptrace.Step(name="keep"):
        pass
    with steptrace.Step(name="drop") as dropped, steptrace.Step(name="drop-child"):
        pass
    steptrace.flush()
    assert [card.title for card in top_cards(feed)] == ["keep", "drop"]
    dropped.remove()
    steptrace.flush()
    assert [card.title for card in top_cards(feed)] == ["keep"]


def test_badges_and_collapse_setting_reach_the_card(feed: ChatFeed) -> None:
    badges = {"running": "R", "success": "S"}
    with steptrace.Step(name="badged", default_badges=badges, collapsed_on_success=False):
        pass
    steptrace.flush()
    card = card_named(feed, "badged")
    assert card.default_badges == badges
    assert card.status == "success"
    assert card.collapsed is False


def test_detach_stops_mirroring(feed: ChatFeed) -> None:
    other = pn.chat.ChatFeed()
    exporter = steptrace_panel.attach(other)
    with steptrace.Step(name="before"):
        pass
    steptrace.flush()
    exporter.detach()
    with steptrace.Step(name="after", thread_id=exporter.thread_id):
        pass
    steptrace.flush()
    assert [card.title for card in top_cards(other)] == ["before"]


def test_attach_rejects_what_is_not_a_feed() -> None:
    with pytest.raises(TypeError, match="ChatFeed"):
        steptrace_panel.attach(pn.Column())  # type: ignore[arg-type]
