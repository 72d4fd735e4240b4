"""Attaching a ``ChatFeed`` to steptrace, and applying step events to it safely from any thread.

Routing: each attached feed gets its own steptrace ``thread_id``. A top-level step started
while Panel is running code for a document (a session's callbacks, including ChatInterface sync
callbacks, which Panel runs in worker threads with the document in context) takes the thread id
of the feed attached in that document; children inherit it. Code outside any document (a
notebook, a script, a test) goes to the feed attached outside a document.

Safety: steptrace's listener runs on its dispatcher thread. Events are queued per feed; when the
feed belongs to a served document, one Bokeh next-tick callback (the thread-safe way in) drains
the queue on the document's event loop with the document lock held, in order. Without a served
document the queue is drained right away under a lock.
"""

from __future__ import annotations

import logging
import threading
import uuid
import weakref
from collections import deque
from typing import Any

from bokeh.document import Document
from panel.chat import ChatFeed
from panel.io.state import set_curdoc, state

import steptrace
from steptrace_panel._cards import StepCards

logger = logging.getLogger("steptrace.panel")


class PanelExporter:
    """Mirrors the steps of one thread id into one ``ChatFeed`` as ``ChatStep`` cards."""

    def __init__(self, feed: ChatFeed, *, user: str | None = None) -> None:
        if not isinstance(feed, ChatFeed):
            raise TypeError(f"feed must be a panel ChatFeed or ChatInterface, got {type(feed)!r}")
        #: Steps with this ``thread_id`` are shown in the feed.
        self.thread_id = f"panel-{uuid.uuid4()}"
        self.feed = feed
        self.cards = StepCards(feed, user=user)
        self.document: Document | None = state.curdoc
        self._pending: deque[tuple[str, dict[str, Any]]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def deliver(self, event: str, payload: dict[str, Any]) -> None:
        """Take one event of this feed's thread (steptrace's dispatcher thread)."""
        with self._lock:
            self._pending.append((event, payload))
            if self._scheduled:
                return
            self._scheduled = True
        document = self.document
        if document is not None and document.session_context is not None:
            try:
                with set_curdoc(document):
                    state.execute(self._drain, schedule=True)
                return
            except Exception:  # the session is gone: nothing to show the steps on
                logger.debug("steptrace-panel: document unavailable", exc_info=True)
                with self._lock:
                    self._pending.clear()
                    self._scheduled = False
                return
        self._drain()

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._pending:
                    self._scheduled = False
                    return
                event, payload = self._pending.popleft()
            try:
                self.cards.apply(event, payload)
            except Exception:
                logger.exception("steptrace-panel: could not show %s for a step", event)

    def detach(self) -> None:
        """Stop mirroring into this feed (cards already shown stay)."""
        _REGISTRY.remove(self)


class _Registry:
    """Attached exporters: one steptrace listener routing events by thread id, and the
    thread-id provider that picks the feed for the code running now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_thread: dict[str, PanelExporter] = {}
        #: Latest exporter attached per document, and the one attached outside any document.
        self._by_document: weakref.WeakKeyDictionary[Document, PanelExporter] = (
            weakref.WeakKeyDictionary()
        )
        self._outside: PanelExporter | None = None

    def add(self, exporter: PanelExporter) -> None:
        with self._lock:
            first = not self._by_thread
            self._by_thread[exporter.thread_id] = exporter
            if exporter.document is None:
                self._outside = exporter
            else:
                self._by_document[exporter.document] = exporter
        if first:
            steptrace.add_listener(self.dispatch)
            steptrace.add_thread_id_provider(self.thread_id_for_current_code)

    def remove(self, exporter: PanelExporter) -> None:
        with self._lock:
            if self._by_thread.pop(exporter.thread_id, None) is None:
                return
            if self._outside is exporter:
                self._outside = None
            document = exporter.document
            if document is not None and self._by_document.get(document) is exporter:
                del self._by_document[document]
            last = not self._by_thread
        if last:
            steptrace.remove_listener(self.dispatch)
            steptrace.remove_thread_id_provider(self.thread_id_for_current_code)

    def dispatch(self, event: str, payload: dict[str, Any]) -> None:
        """The steptrace listener: hand each event to the feed of its thread id, if any."""
        thread_id = payload.get("threadId")
        exporter = self._by_thread.get(thread_id) if isinstance(thread_id, str) else None
        if exporter is not None:
            exporter.deliver(event, payload)

    def thread_id_for_current_code(self) -> str | None:
        """steptrace's thread-id provider: the feed attached in the document running now."""
        document = state.curdoc
        with self._lock:
            if document is not None:
                exporter = self._by_document.get(document)
            else:
                exporter = self._outside
        return exporter.thread_id if exporter is not None else None


_REGISTRY = _Registry()


def attach(feed: ChatFeed, *, user: str | None = None) -> PanelExporter:
    """Show every steptrace step run for this feed's session as ``ChatStep`` cards in ``feed``.

    Call it where the feed is built (in a served app, that is the session's document). Steps
    are shown for code running in that document: the feed's callbacks, sync or async. Pass
    ``user`` to post the steps message under another name than the feed's ``callback_user``.
    ``exporter.thread_id`` can be given to a step explicitly to send it to this feed from
    anywhere. Returns the exporter; ``exporter.detach()`` undoes it.
    """
    exporter = PanelExporter(feed, user=user)
    _REGISTRY.add(exporter)
    document = exporter.document
    if document is not None and document.session_context is not None:
        document.on_session_destroyed(lambda _session_context: exporter.detach())
    return exporter


def detach(exporter: PanelExporter) -> None:
    """Same as ``exporter.detach()``."""
    exporter.detach()
