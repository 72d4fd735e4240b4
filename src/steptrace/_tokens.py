"""Streamed tokens as ``step.token`` span events, coalesced to fit the span's event limit.

The SDK keeps at most ``SpanLimits.max_events`` events per span and drops the *oldest* when a
span has more, so one event per token would lose the start of any long answer. Tokens are
buffered and flushed as one event per time slice; the slice doubles as the budget is used up,
and once only the reserve is left everything else waits for the final flush. Applied in order,
the events always rebuild the streamed text exactly.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import Span

TOKEN_EVENT = "step.token"
ATTR_TEXT = "step.token.text"
ATTR_TARGET = "step.token.target"
ATTR_REPLACE = "step.token.replace"

#: Events kept free for the exception event (and one spare) when sizing the token budget.
_RESERVED_EVENTS = 2
#: First time slice; a stream's first events are fine-grained, later ones coarser.
_BASE_INTERVAL_NS = 50_000_000
#: How many time slices the budget is split into before each doubling.
_LEVELS = 8
#: Used when the span's limit cannot be read (the SDK's own default).
_DEFAULT_EVENT_LIMIT = 128


def event_limit(span: Span) -> int | None:
    """The event limit in force for ``span`` (``None`` when unlimited)."""
    limits = getattr(span, "_limits", None)
    if limits is None:
        return _DEFAULT_EVENT_LIMIT
    return getattr(limits, "max_events", _DEFAULT_EVENT_LIMIT)


class TokenEvents:
    """Buffers one step's tokens and writes them to its span as few, ordered events.

    Output and input are independent texts, so each has its own buffer; a flush writes at most
    one event per target, and order only matters within a target.
    """

    __slots__ = (
        "_budget",
        "_emitted",
        "_input",
        "_input_replace",
        "_interval_ns",
        "_last_flush_ns",
        "_level_size",
        "_output",
        "_output_replace",
        "_span",
    )

    def __init__(self, span: Span, now_ns: int) -> None:
        self._span = span
        limit = event_limit(span)
        # None means no limit: still coalesce, but never stop flushing.
        self._budget = max(1, limit - _RESERVED_EVENTS) if limit is not None else None
        self._level_size = max(1, (self._budget or 1024) // _LEVELS)
        self._output: list[str] = []
        self._input: list[str] = []
        self._output_replace = False
        self._input_replace = False
        self._emitted = 0
        self._interval_ns = _BASE_INTERVAL_NS
        self._last_flush_ns = now_ns

    def add(self, token: str, is_input: bool, replace: bool, now_ns: int) -> None:
        """Record one token; flushes when the current time slice is over."""
        if is_input:
            if replace:
                self._input.clear()  # overwritten anyway
                self._input_replace = True
            self._input.append(token)
        else:
            if replace:
                self._output.clear()
                self._output_replace = True
            self._output.append(token)
        if now_ns - self._last_flush_ns >= self._interval_ns:
            budget = self._budget
            # A flush may take two slots (one per target): keep two for the final flush.
            if budget is None or self._emitted + 2 < budget:
                self._last_flush_ns = now_ns
                self.flush()

    def flush(self) -> None:
        """Write what is buffered: one event per target that has tokens."""
        if self._output or self._output_replace:
            self._write(self._output, "output", self._output_replace)
            self._output_replace = False
        if self._input or self._input_replace:
            self._write(self._input, "input", self._input_replace)
            self._input_replace = False

    def _write(self, buffer: list[str], target: str, replace: bool) -> None:
        text = "".join(buffer)
        buffer.clear()
        self._span.add_event(
            TOKEN_EVENT,
            {ATTR_TEXT: text, ATTR_TARGET: target, ATTR_REPLACE: replace},
            time.time_ns(),
        )
        self._emitted += 1
        if self._emitted % self._level_size == 0:
            self._interval_ns *= 2
