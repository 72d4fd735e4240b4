"""The server's picture of every step it has seen, so late joiners get a snapshot.

Events are applied in order; each step keeps its latest dict, its text built from streamed
tokens (its last ``max_chars`` characters), and its place in the tree. The store is bounded:
once more than ``max_ended`` steps have ended, or their text exceeds ``max_total_chars``, the
oldest ended steps that have no children left are forgotten first (a parent outlives its
children, so a snapshot never holds a child without its parent), and a hard cap on the total
number of steps protects against an app that never ends its steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from ._protocol import dumps

#: Keys the store manages itself instead of copying from event payloads.
_TEXT_KEYS = ("input", "output")


class _Text:
    """Text that grows by appended tokens; joined lazily so long streams stay linear.

    Only the last ``limit`` characters are kept: a snapshot of a huge output carries its tail
    behind an explicit marker saying how much was left out, never a silent hole. Clients that
    were connected while it streamed received every token live.
    """

    __slots__ = ("_dropped", "_joined", "_length", "_limit", "_parts")

    def __init__(self, limit: int):
        self._limit = limit
        self._parts: list[str] = []
        self._joined: str | None = ""
        self._length = 0
        self._dropped = 0

    def set(self, value: str) -> None:
        self._parts = [value] if value else []
        self._joined = value
        self._length = len(value)
        self._dropped = 0
        self._trim(self._limit)

    def append(self, token: str) -> None:
        self._parts.append(token)
        self._joined = None
        self._length += len(token)
        self._trim(self._limit + self._limit // 2)  # trim in batches, not on every token

    def _trim(self, threshold: int) -> None:
        if self._length <= threshold:
            return
        text = "".join(self._parts)
        cut = len(text) - self._limit
        self._dropped += cut
        text = text[cut:]
        self._parts = [text]
        self._joined = text
        self._length = len(text)

    def __len__(self) -> int:
        return self._length

    def __str__(self) -> str:
        self._trim(self._limit)
        if self._joined is None:
            self._joined = "".join(self._parts)
            self._parts = [self._joined] if self._joined else []
        if self._dropped:
            return f"[… {self._dropped:,} earlier characters not kept by the web channel …]\n" + (
                self._joined
            )
        return self._joined


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _parse_time(value: Any) -> float | None:
    """Seconds since the epoch from an ISO-8601 timestamp (``...Z`` allowed), else ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class StepState:
    """Everything known about one step."""

    __slots__ = (
        "_encoded",
        "children",
        "data",
        "ended",
        "first_token_at",
        "id",
        "input",
        "output",
        "parent_id",
        "thread",
    )

    def __init__(
        self, step_id: str, thread: str | None, parent_id: str | None, max_chars: int = 100_000
    ):
        self.id = step_id
        self.thread = thread
        self.parent_id = parent_id
        self.data: dict[str, Any] = {}
        self.input = _Text(max_chars)
        self.output = _Text(max_chars)
        self.children: dict[str, None] = {}
        self.ended = False
        self.first_token_at: float | None = None
        self._encoded: tuple[str | None, str] | None = None

    @property
    def text_chars(self) -> int:
        return len(self.input) + len(self.output)

    @property
    def type(self) -> str:
        value = self.data.get("type")
        return value if isinstance(value, str) else "undefined"

    def absorb(self, payload: dict[str, Any]) -> None:
        """Take a complete step dict as the new state."""
        self._encoded = None
        self.data = {k: v for k, v in payload.items() if k not in _TEXT_KEYS}
        self.input.set(_as_text(payload.get("input")))
        self.output.set(_as_text(payload.get("output")))
        self.ended = bool(payload.get("end"))

    def changed(self) -> None:
        """Forget the cached encoding (the text changed)."""
        self._encoded = None

    def note_token(self) -> None:
        self._encoded = None
        if self.first_token_at is None:
            self.first_token_at = time.time()

    def time_to_first_token(self) -> float | None:
        """Seconds from the step's start to its first token, when known."""
        given = self.data.get("timeToFirstToken")
        if isinstance(given, (int, float)) and not isinstance(given, bool):
            return float(given)
        if self.first_token_at is None:
            return None
        start = _parse_time(self.data.get("start")) or _parse_time(self.data.get("createdAt"))
        if start is None:
            return None
        return max(0.0, self.first_token_at - start)

    def encoded(self, parent_id: str | None) -> str:
        """``to_dict(parent_id)`` as JSON, cached until the step changes: repeated snapshots of
        finished steps cost a string join, not a re-encoding."""
        cached = self._encoded
        if cached is not None and cached[0] == parent_id:
            return cached[1]
        text = dumps(self.to_dict(parent_id))
        self._encoded = (parent_id, text)
        return text

    def to_dict(self, parent_id: str | None = None) -> dict[str, Any]:
        """The step dict to send, with ``parentId`` replaced by what the viewer may see."""
        out = dict(self.data)
        out["id"] = self.id
        out["threadId"] = self.thread
        out["parentId"] = parent_id
        out["input"] = str(self.input)
        out["output"] = str(self.output)
        ttft = self.time_to_first_token()
        if ttft is not None:
            out["timeToFirstToken"] = round(ttft, 4)
        return out


class StepStore:
    """Steps by id, in first-seen order, with their tree and a bound on what is kept."""

    def __init__(
        self,
        max_ended: int = 1000,
        max_steps: int = 10000,
        max_chars: int = 100_000,
        max_total_chars: int = 20_000_000,
    ):
        if max_ended < 0 or min(max_steps, max_chars, max_total_chars) < 1:
            raise ValueError("store bounds must be positive (max_ended non-negative)")
        self.max_ended = max_ended
        self.max_steps = max_steps
        self.max_chars = max_chars
        self.max_total_chars = max_total_chars
        self.text_chars = 0
        self._steps: dict[str, StepState] = {}
        self._ended: dict[str, None] = {}
        self._waiting: dict[str, set[str]] = {}  # unknown parent id -> its known children
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._steps)

    def __contains__(self, step_id: object) -> bool:
        return step_id in self._steps

    def get(self, step_id: str | None) -> StepState | None:
        return self._steps.get(step_id) if step_id is not None else None

    def __iter__(self) -> Iterator[StepState]:
        return iter(list(self._steps.values()))

    def thread_of(self, payload: dict[str, Any]) -> str | None:
        """The thread a step belongs to: its own ``threadId``, else its known parent's."""
        known = self._steps.get(payload.get("id"))  # type: ignore[arg-type]
        if known is not None:
            return known.thread
        thread = payload.get("threadId")
        if isinstance(thread, str) and thread:
            return thread
        parent = self.get(payload.get("parentId"))
        return parent.thread if parent is not None else None

    def upsert(self, payload: dict[str, Any]) -> tuple[StepState, bool]:
        """Apply a full step dict; return the state and whether the step is new."""
        step_id = payload["id"]
        state = self._steps.get(step_id)
        created = state is None
        if state is None:
            parent_id = payload.get("parentId")
            parent_id = parent_id if isinstance(parent_id, str) and parent_id else None
            state = StepState(step_id, self.thread_of(payload), parent_id, self.max_chars)
            self._steps[step_id] = state
            parent = self.get(parent_id)
            if parent is not None:
                parent.children[step_id] = None
            elif parent_id is not None:
                self._waiting.setdefault(parent_id, set()).add(step_id)
            for child_id in sorted(self._waiting.pop(step_id, ())):
                if child_id in self._steps:  # seen before its parent: adopt it now
                    state.children[child_id] = None
        before = state.text_chars
        state.absorb(payload)
        self.text_chars += state.text_chars - before
        if state.ended:
            self._ended.pop(step_id, None)
            self._ended[step_id] = None
        else:
            self._ended.pop(step_id, None)
        self._enforce_bounds()
        return state, created

    def token(
        self, step_id: str, token: str, is_sequence: bool, is_input: bool
    ) -> StepState | None:
        """Apply a streamed token; ``None`` when the step is unknown (nothing to apply to)."""
        state = self._steps.get(step_id)
        if state is None:
            return None
        state.changed()
        text = state.input if is_input else state.output
        before = len(text)
        if is_sequence:
            text.set(token)
        else:
            text.append(token)
        self.text_chars += len(text) - before
        if self.text_chars > self.max_total_chars:
            self._enforce_bounds()
        if not is_input:
            state.note_token()
        return state

    def delete(self, step_id: str) -> list[StepState]:
        """Remove a step and its subtree; return what was removed, parents first."""
        state = self._steps.get(step_id)
        if state is None:
            return []
        removed: list[StepState] = []
        stack = [state]
        while stack:
            current = stack.pop()
            removed.append(current)
            stack.extend(
                child for cid in reversed(current.children) if (child := self._steps.get(cid))
            )
        for item in removed:
            self._forget(item)
        return removed

    def _forget(self, state: StepState) -> None:
        if self._steps.pop(state.id, None) is not None:
            self.text_chars -= state.text_chars
        self._ended.pop(state.id, None)
        parent = self.get(state.parent_id)
        if parent is not None:
            parent.children.pop(state.id, None)
        elif state.parent_id in self._waiting:
            waiting = self._waiting[state.parent_id]
            waiting.discard(state.id)
            if not waiting:
                del self._waiting[state.parent_id]

    def _enforce_bounds(self) -> None:
        while len(self._ended) > self.max_ended and self._evict_from(self._ended):
            pass
        while len(self._steps) > self.max_steps and self._evict_from(self._steps):
            pass
        while self.text_chars > self.max_total_chars and self._evict_from(self._ended):
            pass

    def _evict_from(self, candidates: dict[str, Any]) -> bool:
        """Forget the oldest candidate that has no children left; ``False`` if none can go."""
        for step_id in candidates:
            state = self._steps.get(step_id)
            if state is None:
                candidates.pop(step_id, None)
                return True
            if not state.children:
                self._forget(state)
                self.evicted += 1
                return True
        return False

    def ancestors(self, state: StepState) -> Iterator[StepState]:
        """The known ancestors of a step, nearest first."""
        seen = {state.id}
        parent = self.get(state.parent_id)
        while parent is not None and parent.id not in seen:
            seen.add(parent.id)
            yield parent
            parent = self.get(parent.parent_id)

    def in_tree_order(self, include: Callable[[StepState], bool]) -> list[StepState]:
        """The included steps, each after its (included) ancestors, otherwise first-seen order."""
        ordered: list[StepState] = []
        placed: set[str] = set()
        for state in self._steps.values():
            if state.id in placed or not include(state):
                continue
            chain = [state]
            chain.extend(a for a in self.ancestors(state) if a.id not in placed and include(a))
            for item in reversed(chain):
                if item.id not in placed:
                    placed.add(item.id)
                    ordered.append(item)
        return ordered
