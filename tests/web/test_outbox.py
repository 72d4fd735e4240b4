"""A client's outbox: tokens and updates coalesce while it is slow; overflow means resync."""

from __future__ import annotations

import asyncio

import pytest
from steptrace_web._outbox import RESYNC, Outbox
from steptrace_web._protocol import NEW, UPDATE, Frame, TokenFrame


def tok(step_id: str, text: str, *, sequence: bool = False, is_input: bool = False) -> TokenFrame:
    return TokenFrame(step_id, None, text, sequence, is_input)


async def test_tokens_of_a_step_merge_into_one_pending_frame():
    box = Outbox()
    shared = tok("s", "a")
    box.put(Frame(NEW, {"id": "s"}, "s"))
    box.put(shared)
    for piece in "bcdef":
        box.put(tok("s", piece))
    box.put(tok("s", "IN", is_input=True))  # another target: not merged into the output frame
    batch = await box.next_batch()
    assert [f.event for f in batch] == [NEW, "stream_token", "stream_token"]
    assert batch[1].data["token"] == "abcdef"
    assert batch[2].data == {
        "id": "s",
        "threadId": None,
        "token": "IN",
        "isSequence": False,
        "isInput": True,
    }
    assert shared.data["token"] == "a"  # the frame shared with other clients is untouched


async def test_a_sequence_token_replaces_what_is_pending():
    box = Outbox()
    box.put(tok("s", "draft"))
    box.put(tok("s", "final", sequence=True))
    box.put(tok("s", "!"))
    (frame,) = await box.next_batch()
    assert frame.data["token"] == "final!" and frame.data["isSequence"] is True


async def test_merges_never_cross_another_event_of_the_same_step():
    box = Outbox()
    box.put(tok("s", "a"))
    box.put(Frame(UPDATE, {"id": "s", "output": "a"}, "s"))
    box.put(tok("s", "b"))
    box.put(tok("t", "other step"))
    box.put(tok("s", "c"))
    batch = await box.next_batch()
    assert [(f.event, f.data.get("token")) for f in batch] == [
        ("stream_token", "a"),
        (UPDATE, None),
        ("stream_token", "bc"),
        ("stream_token", "other step"),
    ]


async def test_a_newer_update_supersedes_a_pending_create_or_update():
    box = Outbox()
    box.put(Frame(NEW, {"id": "s", "v": 1}, "s"))
    box.put(Frame(UPDATE, {"id": "s", "v": 2}, "s"))
    box.put(Frame(UPDATE, {"id": "s", "v": 3}, "s"))
    (frame,) = await box.next_batch()
    assert frame.event == NEW and frame.data == {"id": "s", "v": 3}


async def test_overflow_drops_everything_and_asks_for_a_snapshot():
    box = Outbox(max_frames=10, max_bytes=10_000)
    for i in range(11):
        box.put(Frame(UPDATE, {"id": f"s{i}"}, f"s{i}"))
    assert box.resync_needed and len(box) == 0 and box.resyncs == 1
    box.put(Frame(UPDATE, {"id": "later"}, "later"))  # covered by the coming snapshot
    assert await box.next_batch() is RESYNC
    assert len(box) == 0
    box.put(Frame(UPDATE, {"id": "after"}, "after"))
    (frame,) = await box.next_batch()
    assert frame.data == {"id": "after"}


async def test_byte_bound_counts_merged_tokens():
    box = Outbox(max_frames=1000, max_bytes=5_000)
    box.put(tok("s", "x"))
    for _ in range(100):
        box.put(tok("s", "y" * 100))  # one frame, growing
        if box.resync_needed:
            break
    assert box.resync_needed and box.resyncs == 1


async def test_next_batch_waits_and_close_ends_it():
    box = Outbox()
    waiter = asyncio.ensure_future(box.next_batch())
    await asyncio.sleep(0)
    assert not waiter.done()
    box.put(Frame(UPDATE, {"id": "s"}, "s"))
    assert len(await waiter) == 1
    box.put(Frame(UPDATE, {"id": "t"}, "t"))
    box.close()
    assert len(await box.next_batch()) == 1  # what was queued still goes out
    assert await box.next_batch() is None
    box.put(Frame(UPDATE, {"id": "u"}, "u"))
    assert await box.next_batch() is None


def test_bounds_must_be_positive():
    with pytest.raises(ValueError):
        Outbox(max_frames=0)


async def test_back_to_back_resyncs_are_spaced_out():
    box = Outbox(max_frames=1)
    box.put(Frame(UPDATE, {"id": "a"}, "a"))
    box.put(Frame(UPDATE, {"id": "b"}, "b"))
    assert await box.next_batch() is RESYNC  # the first one is immediate
    box.put(Frame(UPDATE, {"id": "c"}, "c"))
    box.put(Frame(UPDATE, {"id": "d"}, "d"))
    waiter = asyncio.ensure_future(box.next_batch())
    await asyncio.sleep(0.02)
    assert not waiter.done()  # the second waits (0.1 s, then doubling)
    assert await waiter is RESYNC
    box.put(Frame(UPDATE, {"id": "e"}, "e"))
    box.put(Frame(UPDATE, {"id": "f"}, "f"))
    box.close()
    assert await box.next_batch() is None  # closing cuts the wait short
