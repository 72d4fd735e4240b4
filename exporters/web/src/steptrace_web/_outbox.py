"""A client's bounded, coalescing send buffer.

The hub puts frames in; the client's sender takes them out as fast as its socket allows. While a
client is slow, later tokens of a step merge into its pending token frame and later updates
replace its pending update, so a slow client receives fewer, larger frames rather than falling
behind. If the buffer still exceeds its bounds, it is emptied and marked for resynchronisation:
the sender then sends one fresh snapshot instead of the lost frames, so the client never keeps a
state with holes in it, and the app and the other clients never wait for it. A client that keeps
overflowing gets its snapshots spaced out (exponential back-off), so a client that is merely slow
cannot make the server rebuild and resend the whole state back to back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from ._protocol import NEW, UPDATE, AnyFrame, Frame, TokenFrame

#: Returned by :meth:`Outbox.next_batch` when the client must be sent a snapshot.
RESYNC = object()

#: Resyncs closer together than this count as back to back and double the wait before the next.
RESYNC_CALM_S = 5.0
RESYNC_MAX_WAIT_S = 5.0


class _Slot:
    """A place in the queue; holds a frame that may be swapped for a merged one."""

    __slots__ = ("frame", "owned")

    def __init__(self, frame: AnyFrame):
        self.frame = frame
        self.owned = False


class Outbox:
    """Frames waiting to go to one client (used only on the server's event loop)."""

    def __init__(self, max_frames: int = 5000, max_bytes: int = 8_000_000):
        if max_frames < 1 or max_bytes < 1:
            raise ValueError("outbox bounds must be positive")
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.resyncs = 0
        self.resync_needed = False
        self.closed = False
        self._slots: deque[_Slot] = deque()
        self._latest: dict[str, _Slot] = {}
        self._bytes = 0
        self._ready = asyncio.Event()
        self._last_resync = float("-inf")
        self._resync_wait = 0.0

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    def put(self, frame: AnyFrame) -> None:
        """Queue a frame, merging it into this step's pending frame when that is equivalent."""
        if self.closed or self.resync_needed:
            return  # a resync snapshot (taken later) will include this change
        step_id = frame.step_id
        slot = self._latest.get(step_id) if step_id is not None else None
        if slot is not None and self._merge(slot, frame):
            self._enforce_bounds()
            return
        slot = _Slot(frame)
        self._slots.append(slot)
        self._bytes += frame.size
        if step_id is not None:
            self._latest[step_id] = slot
        self._enforce_bounds()
        self._ready.set()

    def _merge(self, slot: _Slot, frame: AnyFrame) -> bool:
        pending = slot.frame
        if isinstance(frame, TokenFrame):
            if not isinstance(pending, TokenFrame) or pending.is_input != frame.is_input:
                return False
            if not slot.owned:
                pending = slot.frame = pending.copy()
                slot.owned = True
            self._bytes += pending.merge("".join(frame.parts), frame.is_sequence)
            return True
        if frame.event == UPDATE and pending.event in (NEW, UPDATE):
            # A step dict is complete: the newer one supersedes the pending one, and a pending
            # create keeps its event name so the client still creates the step first.
            merged = frame if pending.event == UPDATE else Frame(NEW, frame.data, frame.step_id)
            self._bytes += merged.size - pending.size
            slot.frame = merged
            slot.owned = False
            return True
        return False

    def _enforce_bounds(self) -> None:
        if len(self._slots) > self.max_frames or self._bytes > self.max_bytes:
            self.request_resync()

    def request_resync(self) -> None:
        """Drop everything pending; the client will be sent a fresh snapshot instead."""
        self._slots.clear()
        self._latest.clear()
        self._bytes = 0
        if not self.closed:
            self.resync_needed = True
            self.resyncs += 1
        self._ready.set()

    def close(self, last: AnyFrame | None = None) -> None:
        """Stop accepting frames; the sender finishes what is queued (then ``last``) and ends.
        A pending resync is dropped: there is no point rebuilding the state of a leaver."""
        if self.closed:
            return
        self.resync_needed = False
        if last is not None:
            self._slots.append(_Slot(last))
        self.closed = True
        self._ready.set()

    async def next_batch(self) -> list[AnyFrame] | object | None:
        """Everything queued (in order), :data:`RESYNC`, or ``None`` once closed and empty."""
        while True:
            if self.resync_needed and not self.closed:
                await self._resync_backoff()
            if self.resync_needed:
                self.resync_needed = False
                return RESYNC
            if self._slots:
                batch = [slot.frame for slot in self._slots]
                self._slots.clear()
                self._latest.clear()
                self._bytes = 0
                return batch
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()

    async def _resync_backoff(self) -> None:
        """Wait before a resync that follows closely on the previous one (doubling each time)."""
        now = time.monotonic()
        if now - self._last_resync > RESYNC_CALM_S:
            self._resync_wait = 0.0
        else:
            self._resync_wait = min(max(self._resync_wait * 2, 0.1), RESYNC_MAX_WAIT_S)
        deadline = self._last_resync + self._resync_wait
        while not self.closed and (remaining := deadline - time.monotonic()) > 0:
            self._ready.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready.wait(), remaining)
        self._last_resync = time.monotonic()
