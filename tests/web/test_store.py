"""The snapshot store: tree order, thread routing, token text, subtree deletion, bounds."""

from __future__ import annotations

from steptrace_web._store import StepStore

from web.feedkit import step


def ids(states):
    return [s.id for s in states]


def test_tree_order_puts_parents_first_even_when_first_seen_late():
    store = StepStore()
    # A listener added mid-run sees a child's update before its parent's.
    store.upsert(step("child", parent="root"))
    store.upsert(step("root"))
    store.upsert(step("other"))
    order = ids(store.in_tree_order(lambda s: True))
    assert order.index("root") < order.index("child")
    assert set(order) == {"root", "child", "other"}
    assert list(store.get("root").children) == ["child"]  # adopted once the parent showed up
    assert ids(store.delete("root")) == ["root", "child"]


def test_children_without_thread_inherit_their_parents_thread():
    store = StepStore()
    store.upsert(step("root", thread="t1"))
    child, _ = store.upsert(step("child", parent="root"))
    assert child.thread == "t1"
    grandchild, _ = store.upsert(step("grandchild", parent="child", thread=None))
    assert grandchild.thread == "t1"


def test_tokens_append_replace_and_target_input():
    store = StepStore()
    store.upsert(step("s", output="Hel"))
    store.token("s", "lo", False, False)
    store.token("s", " world", False, False)
    store.token("s", "question", True, True)
    state = store.get("s")
    assert str(state.output) == "Hello world"
    assert str(state.input) == "question"
    store.token("s", "new", True, False)
    assert str(state.output) == "new"
    assert store.token("unknown", "x", False, False) is None


def test_delete_removes_the_whole_subtree_parents_first():
    store = StepStore()
    store.upsert(step("a"))
    store.upsert(step("b", parent="a"))
    store.upsert(step("c", parent="b"))
    store.upsert(step("d"))
    removed = ids(store.delete("a"))
    assert removed == ["a", "b", "c"]
    assert ids(store) == ["d"]


def test_ended_steps_beyond_the_limit_are_dropped_oldest_first_never_orphaning():
    store = StepStore(max_ended=3)
    store.upsert(step("run"))  # still running: never evicted by the ended limit
    for i in range(6):
        store.upsert(step(f"s{i}", parent="run"))
        store.upsert(step(f"s{i}", parent="run", end=True))
    assert ids(store) == ["run", "s3", "s4", "s5"]
    assert store.evicted == 3
    # An ended parent is only dropped after its children are gone.
    store = StepStore(max_ended=1)
    store.upsert(step("p"))
    store.upsert(step("c", parent="p"))
    store.upsert(step("p", end=True))  # parent ended first, child still running
    store.upsert(step("x", end=True))
    assert ids(store) == ["p", "c"]  # x went: p was older but still has a child
    store.upsert(step("c", parent="p", end=True))
    assert ids(store) == ["p"]  # now the oldest ended leaf is c


def test_hard_cap_bounds_steps_that_never_end():
    store = StepStore(max_ended=10, max_steps=50)
    for i in range(500):
        store.upsert(step(f"leak{i}"))
    assert len(store) == 50
    assert "leak499" in store and "leak0" not in store


def test_time_to_first_token_prefers_the_value_the_step_reports():
    store = StepStore()
    state, _ = store.upsert(step("s", timeToFirstToken=0.25))
    assert state.to_dict()["timeToFirstToken"] == 0.25
    state, _ = store.upsert(step("t", start="2000-01-01T00:00:00Z"))
    assert "timeToFirstToken" not in state.to_dict()
    store.token("t", "x", False, False)
    assert state.to_dict()["timeToFirstToken"] > 0


def test_huge_texts_keep_their_tail_behind_an_explicit_marker():
    store = StepStore(max_chars=1000)
    store.upsert(step("s"))
    for i in range(500):
        store.token("s", f"{i:04d},", False, False)  # 2,500 characters in all
    text = store.get("s").to_dict()["output"]
    marker, kept = text.split("\n", 1)
    assert marker == "[… 1,500 earlier characters not kept by the web channel …]"
    assert kept == "".join(f"{i:04d}," for i in range(300, 500))
    store.token("s", "fresh", True, False)  # a replacing token starts over
    assert store.get("s").to_dict()["output"] == "fresh"


def test_the_total_text_kept_is_bounded_too():
    store = StepStore(max_chars=1000, max_total_chars=5000)
    for i in range(20):
        store.upsert(step(f"s{i}", output="x" * 900, end=True))
    assert store.text_chars <= 5000
    assert ids(store) == [f"s{i}" for i in range(15, 20)]  # the newest ones
    store.upsert(step("live"))
    for _ in range(10):
        store.token("live", "y" * 500, False, False)
    assert store.text_chars <= 5000 and "live" in store
    assert store.text_chars == sum(s.text_chars for s in store)
