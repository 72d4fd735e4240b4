"""Nesting: asyncio tasks, threads, generators, explicit parents, current_step()."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import steptrace


def tree(spans):
    """{name: parent name} from finished spans."""
    by_id = {s.context.span_id: s for s in spans}
    return {
        s.name: (by_id[s.parent.span_id].name if s.parent and s.parent.span_id in by_id else None)
        for s in spans
    }


async def test_two_hundred_concurrent_tasks_build_the_exact_tree(spans):
    async def worker(i: int) -> None:
        async with steptrace.Step(name=f"task-{i}", type="run"):
            await asyncio.sleep(0.001 * (i % 7))
            async with steptrace.Step(name=f"task-{i}/tool", type="tool"):
                await asyncio.sleep(0.001 * (i % 3))
                async with steptrace.Step(name=f"task-{i}/tool/llm", type="llm") as llm:
                    await llm.stream_token(str(i))
            async with steptrace.Step(name=f"task-{i}/after"):
                await asyncio.sleep(0)

    async with steptrace.Step(name="root"):
        await asyncio.gather(*(worker(i) for i in range(200)))

    finished = spans.get_finished_spans()
    assert len(finished) == 1 + 200 * 4
    expected = {"root": None}
    for i in range(200):
        expected[f"task-{i}"] = "root"
        expected[f"task-{i}/tool"] = f"task-{i}"
        expected[f"task-{i}/tool/llm"] = f"task-{i}/tool"
        expected[f"task-{i}/after"] = f"task-{i}"
    assert tree(finished) == expected
    assert len({s.context.trace_id for s in finished}) == 1


async def test_task_created_in_a_step_keeps_its_parent_after_the_step_closed(spans):
    started = asyncio.Event()

    async def late_child() -> None:
        await started.wait()
        async with steptrace.Step(name="late"):
            pass

    async with steptrace.Step(name="parent") as parent:
        task = asyncio.create_task(late_child())
    started.set()
    await task
    late = next(s for s in spans.get_finished_spans() if s.name == "late")
    assert late.parent.span_id == parent.span.get_span_context().span_id
    # In Chainlit this step would become a root (its step stack is mutated in place).


async def test_current_step_follows_the_context():
    assert steptrace.current_step() is None
    async with steptrace.Step(name="outer") as outer:
        assert steptrace.current_step() is outer
        async with steptrace.Step(name="inner") as inner:
            assert steptrace.current_step() is inner

        async def in_task():
            return steptrace.current_step()

        assert await asyncio.create_task(in_task()) is outer
        assert steptrace.current_step() is outer
    assert steptrace.current_step() is None


def test_explicit_parent_id_wins_over_the_context(spans):
    with steptrace.Step(name="a") as a, steptrace.Step(name="b"):
        with steptrace.Step(name="c", parent_id=a.id) as c:
            assert c.parent_id == a.id
    assert tree(spans.get_finished_spans())["c"] == "a"


def test_parent_id_is_the_enclosing_step_id(spans):
    with steptrace.Step(name="a") as a, steptrace.Step(name="b") as b:
        assert b.parent_id == a.id
        assert a.parent_id is None


def test_wrap_context_carries_the_step_into_a_thread(spans):
    with steptrace.Step(name="submit"), ThreadPoolExecutor(2) as pool:

        def work(n):
            with steptrace.Step(name=f"work-{n}"):
                return steptrace.current_step().name

        names = list(pool.map(steptrace.wrap_context(work), [1, 2, 3]))
    assert names == ["work-1", "work-2", "work-3"]
    parents = tree(spans.get_finished_spans())
    assert parents["work-1"] == parents["work-2"] == parents["work-3"] == "submit"


def test_instrument_threads_makes_executors_and_threads_carry_the_step(spans):
    steptrace.instrument_threads()
    try:
        with steptrace.Step(name="parent"):
            with ThreadPoolExecutor(2) as pool:

                def pooled():
                    with steptrace.Step(name="pooled"):
                        pass

                pool.submit(pooled).result()

            def in_thread():
                with steptrace.Step(name="threaded"):
                    pass

            thread = threading.Thread(target=in_thread)
            thread.start()
            thread.join()
    finally:
        steptrace.uninstrument_threads()
    parents = tree(spans.get_finished_spans())
    assert parents["pooled"] == "parent" and parents["threaded"] == "parent"


async def test_run_in_executor_with_instrumented_threads(spans):
    steptrace.instrument_threads()
    try:
        loop = asyncio.get_running_loop()
        async with steptrace.Step(name="async-parent"):

            def blocking():
                with steptrace.Step(name="blocking"):
                    return 1

            assert await loop.run_in_executor(None, blocking) == 1
            assert await asyncio.to_thread(blocking) == 1
    finally:
        steptrace.uninstrument_threads()
    finished = spans.get_finished_spans()
    parent = next(s for s in finished if s.name == "async-parent")
    blocking = [s for s in finished if s.name == "blocking"]
    assert len(blocking) == 2
    assert all(s.parent.span_id == parent.context.span_id for s in blocking)


def test_generators_with_steps_never_fail_to_detach(spans, caplog):
    caplog.set_level(logging.ERROR)

    def gen():
        with steptrace.Step(name="in-gen"):
            yield 1
            yield 2

    @steptrace.step
    def decorated(n):
        for i in range(n):
            with steptrace.Step(name=f"inner-{i}"):
                yield i

    g = gen()
    next(g)
    del g  # closed by the garbage collector, possibly elsewhere

    d = decorated(3)
    assert next(d) == 0
    d.close()  # closed early

    async def agen():
        async with steptrace.Step(name="in-agen"):
            yield 1
            yield 2

    async def consume():
        async for _item in agen():
            break

    asyncio.run(consume())
    import gc

    gc.collect()
    assert "Failed to detach context" not in caplog.text
    names = {s.name for s in spans.get_finished_spans()}
    assert {"in-gen", "decorated", "inner-0", "in-agen"} <= names


def test_decorated_generator_does_not_leak_its_step_into_the_caller(spans):
    @steptrace.step
    def numbers():
        yield 1
        yield 2

    with steptrace.Step(name="caller") as caller:
        it = numbers()
        next(it)
        assert steptrace.current_step() is caller  # suspended generator: not current
        with steptrace.Step(name="sibling"):
            pass
        list(it)
    parents = tree(spans.get_finished_spans())
    assert parents["sibling"] == "caller" and parents["numbers"] == "caller"


def test_thread_id_is_inherited_and_provided():
    steptrace.set_thread_id_provider(lambda: "thread-from-provider")
    try:
        with steptrace.Step(name="top") as top, steptrace.Step(name="child") as child:
            pass
        with steptrace.Step(name="explicit", thread_id="mine") as explicit:
            with steptrace.Step(name="explicit-child") as explicit_child:
                pass
    finally:
        steptrace.set_thread_id_provider(None)
    assert top.thread_id == child.thread_id == "thread-from-provider"
    assert explicit.thread_id == explicit_child.thread_id == "mine"
    with pytest.raises(TypeError):
        steptrace.set_thread_id_provider("nope")  # type: ignore[arg-type]


def test_instrumented_threads_carry_other_context_variables_too(spans):
    """A chat framework's own context (a session) reaches worker threads with the step."""
    import contextvars

    session = contextvars.ContextVar("session", default=None)
    seen = {}
    steptrace.instrument_threads()
    try:
        session.set("user-1")
        with steptrace.Step(name="handler"):

            def work(label):
                seen[label] = (session.get(), steptrace.current_step().name)

            with ThreadPoolExecutor(1) as pool:
                pool.submit(work, "pool").result()

            class Worker(threading.Thread):
                def run(self):  # subclasses overriding run() are covered too
                    work("subclass")

            worker = Worker()
            worker.start()
            worker.join()
            timer = threading.Timer(0, work, args=("timer",))
            timer.start()
            timer.join()
    finally:
        steptrace.uninstrument_threads()
    assert seen == {
        "pool": ("user-1", "handler"),
        "subclass": ("user-1", "handler"),
        "timer": ("user-1", "handler"),
    }


def test_several_thread_id_providers_coexist():
    """Two chat exporters in one process: each answers only for its own sessions."""
    chainlit_like = lambda: None  # noqa: E731 - not in one of its sessions
    panel_like = lambda: "panel-session"  # noqa: E731
    steptrace.add_thread_id_provider(chainlit_like)
    steptrace.add_thread_id_provider(panel_like)
    try:
        with steptrace.Step(name="top") as top:
            pass
        steptrace.remove_thread_id_provider(panel_like)
        with steptrace.Step(name="none") as none:
            pass
    finally:
        steptrace.remove_thread_id_provider(chainlit_like)
        steptrace.remove_thread_id_provider(panel_like)
    assert top.thread_id == "panel-session" and none.thread_id is None
