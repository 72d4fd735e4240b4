"""The live-event bus behind ``steptrace.add_listener``.

Steps publish Chainlit-protocol events (``new_message``, ``update_message``, ``delete_message``,
``stream_start``, ``stream_token``) from whatever thread they run in. Publishing is an append to a
deque: the app never waits for a listener. One dispatcher thread delivers the events to every
listener in publication order, coalescing on the way: consecutive tokens of the same step become
one ``stream_token`` and back-to-back updates of the same step collapse to the latest, so a burst
of thousands of tokens arrives as a handful of events. A listener that raises is logged and
skipped; it never reaches the app or the other listeners.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("steptrace")

Listener = Callable[[str, dict[str, Any]], None]

NEW = "new_message"
UPDATE = "update_message"
DELETE = "delete_message"
STREAM_START = "stream_start"
STREAM_TOKEN = "stream_token"

#: After delivering tokens, wait this long so the next batch of a fast stream coalesces.
TOKEN_WINDOW_S = 0.02
#: Failures of one listener logged in full before going quiet (then every 1000th).
_LOGGED_FAILURES = 3


class _Flush:
    """A marker in the queue; set once everything published before it was delivered."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class LiveBus:
    """Ordered, coalescing, non-blocking fan-out of step events to listeners."""

    def __init__(self) -> None:
        self.listeners: tuple[Listener, ...] = ()
        self._queue: deque[tuple[str, Any]] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failures: dict[int, int] = {}

    # -- subscription -------------------------------------------------------------------------

    def add(self, listener: Listener) -> None:
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {type(listener).__name__}")
        with self._lock:
            if listener not in self.listeners:
                self.listeners = (*self.listeners, listener)
            self._ensure_thread()

    def remove(self, listener: Listener) -> None:
        with self._lock:
            self.listeners = tuple(fn for fn in self.listeners if fn != listener)

    # -- publishing (hot path: any thread) ----------------------------------------------------

    def publish(self, event: str, payload: dict[str, Any]) -> None:
        self._queue.append((event, payload))
        if not self._wake.is_set():
            self._wake.set()

    def publish_token(
        self, step_id: str, thread_id: str | None, token: str, is_sequence: bool, is_input: bool
    ) -> None:
        self._queue.append((STREAM_TOKEN, (step_id, thread_id, token, is_sequence, is_input)))
        if not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything published so far has been delivered."""
        thread = self._thread
        if thread is None or not thread.is_alive() or threading.current_thread() is thread:
            return not self._queue
        marker = _Flush()
        self._queue.append(("", marker))
        self._wake.set()
        return marker.done.wait(timeout)

    # -- dispatching --------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="steptrace-live-bus", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            batch = []
            queue = self._queue
            while queue:
                batch.append(queue.popleft())
            # Delivered in a call of its own so the payloads are dropped when it returns, not
            # when the next batch arrives: an idle bus must not hold on to the last burst.
            had_tokens = self._dispatch(batch)
            batch.clear()
            if had_tokens:
                time.sleep(TOKEN_WINDOW_S)

    def _dispatch(self, batch: list[tuple[str, Any]]) -> bool:
        """Coalesce and deliver one batch; True if it carried tokens."""
        had_tokens = False
        for event, payload in coalesce(batch):
            if event == "":
                payload.done.set()
                continue
            had_tokens = had_tokens or event == STREAM_TOKEN
            self._deliver(event, payload)
        return had_tokens

    def _deliver(self, event: str, payload: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener(event, payload)
            except Exception:
                key = id(listener)
                count = self._failures.get(key, 0) + 1
                self._failures[key] = count
                if count <= _LOGGED_FAILURES or count % 1000 == 0:
                    logger.exception(
                        "steptrace listener %r failed on %s (failure #%d)", listener, event, count
                    )


def coalesce(batch: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Merge a batch's tokens per (step, target) and its repeated updates per step.

    A merge never crosses another event of the same step, so per-step order is kept:
    create before tokens and updates, tokens before the end update.
    """
    out: list[tuple[str, Any]] = []
    open_tokens: dict[tuple[str, bool], dict[str, Any]] = {}
    open_updates: dict[str, int] = {}
    # Token text is gathered as parts and joined once: a busy dispatcher can face batches of
    # many thousands of tokens, and repeated string concatenation would be quadratic.
    parts: dict[int, list[str]] = {}
    for event, payload in batch:
        if event == STREAM_TOKEN:
            step_id, thread_id, token, is_sequence, is_input = payload
            key = (step_id, is_input)
            acc = open_tokens.get(key)
            if acc is None:
                acc = {
                    "id": step_id,
                    "threadId": thread_id,
                    "token": "",
                    "isSequence": is_sequence,
                    "isInput": is_input,
                }
                parts[id(acc)] = [token]
                open_tokens[key] = acc
                open_updates.pop(step_id, None)
                out.append((STREAM_TOKEN, acc))
            elif is_sequence:
                parts[id(acc)] = [token]
                acc["isSequence"] = True
            else:
                parts[id(acc)].append(token)
            continue
        if event == "":
            out.append((event, payload))
            continue
        step_id = payload.get("id")
        open_tokens.pop((step_id, False), None)
        open_tokens.pop((step_id, True), None)
        if event == UPDATE:
            index = open_updates.get(step_id)
            if index is not None:
                out[index] = (UPDATE, payload)
                continue
            open_updates[step_id] = len(out)
        else:
            open_updates.pop(step_id, None)
        out.append((event, payload))
    if parts:
        for event, payload in out:
            if event == STREAM_TOKEN:
                payload["token"] = "".join(parts[id(payload)])
    return out


BUS = LiveBus()


def add_listener(listener: Listener) -> None:
    """Receive every live step event as ``listener(event, step_dict)``, in order.

    Calls come from steptrace's dispatcher thread; keep the listener quick and hand heavy work
    to your own thread or event loop. Adding a listener also mirrors spans that other
    OpenTelemetry instrumentations create.
    """
    BUS.add(listener)
    from steptrace._mirror import ensure_mirroring

    ensure_mirroring()


def remove_listener(listener: Listener) -> None:
    """Stop delivering events to ``listener``."""
    BUS.remove(listener)


def flush_listeners(timeout: float = 5.0) -> bool:
    """Wait until every event published so far reached the listeners (spans are not touched).

    Returns False if that did not happen within ``timeout`` seconds.
    """
    return BUS.flush(timeout)
