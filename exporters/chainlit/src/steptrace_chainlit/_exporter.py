"""The steptrace listener that shows steps in Chainlit, and the switch that installs it."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from chainlit.config import config as chainlit_config
from chainlit.session import WebsocketSession, ws_sessions_id

import steptrace
from steptrace_chainlit._ordering import OrderedEmit, catch_up
from steptrace_chainlit._sender import Senders
from steptrace_chainlit._sessions import SessionDirectory
from steptrace_chainlit._wire import SessionView

logger = logging.getLogger("steptrace.chainlit")

#: Every this many events, state kept for sessions that have gone is dropped.
SWEEP_EVERY = 1024


class ChainlitExporter:
    """Routes each steptrace event to the Chainlit session its thread id belongs to.

    Runs on steptrace's dispatcher thread: it only translates and queues; the emits happen on
    Chainlit's event loop. Steps whose thread has no live session are dropped quietly.
    """

    def __init__(self) -> None:
        self.directory = SessionDirectory(on_session=self._keep_in_order)
        self._senders = Senders()
        #: (session id, thread id) -> what that session's client has been shown.
        self._views: dict[tuple[str, str], SessionView] = {}
        self._lock = threading.Lock()
        self._events = 0

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        try:
            self._export(event, payload)
            self._events += 1
            if self._events % SWEEP_EVERY == 0:
                self._sweep()
        except Exception:
            logger.exception("steptrace-chainlit: dropped a %s event", event)

    def _keep_in_order(self, session: WebsocketSession, loop: asyncio.AbstractEventLoop) -> None:
        """Make Chainlit's own creates in this session wait for steptrace's pending events."""
        if isinstance(session.emit, OrderedEmit):
            return
        sender = self._senders.for_loop(loop)
        session.emit = OrderedEmit(session.emit, lambda: catch_up(loop, sender.sent_so_far))

    def _sweep(self) -> None:
        """Drop what is kept for sessions Chainlit has deleted (disconnected and timed out)."""
        live = self.directory.sweep()
        with self._lock:
            for key in [key for key in self._views if key[0] not in live]:
                del self._views[key]

    def _export(self, event: str, payload: dict[str, Any]) -> None:
        thread_id = payload.get("threadId")
        if not isinstance(thread_id, str) or not thread_id:
            return
        target = self.directory.lookup(thread_id)
        if target is None:
            with self._lock:
                for key in [key for key in self._views if key[1] == thread_id]:
                    del self._views[key]
            return
        session = target.session
        view_key = (session.id, thread_id)
        with self._lock:
            view = self._views.get(view_key)
            if view is None:
                view = self._views[view_key] = SessionView()
        outgoing = view.translate(event, payload, anchor_id=target.anchor_id, cot=_cot(session))
        if not outgoing:
            return
        sender = self._senders.for_loop(target.loop)
        for out_event, data in outgoing:
            if not sender.submit(session, out_event, data):
                self.directory.forget(thread_id)
                return

    def reset(self) -> None:
        for session in list(ws_sessions_id.values()):
            if isinstance(session.emit, OrderedEmit):
                session.emit = session.emit.original
        self.directory.clear()
        self._senders.clear()
        with self._lock:
            self._views.clear()


def _cot(session: WebsocketSession) -> str:
    """The session's ``[UI] cot`` (a chat profile may override the project's)."""
    session_config = getattr(session, "config", None) or chainlit_config
    try:
        return str(session_config.ui.cot)
    except AttributeError:
        return "full"


_EXPORTER: ChainlitExporter | None = None
_ENABLE_LOCK = threading.Lock()


def enable(*, instrument_threads: bool = True) -> ChainlitExporter:
    """Show every steptrace step in the Chainlit session it runs in. Call once, at the top of
    the Chainlit app; calling again is harmless.

    ``instrument_threads`` (default on) makes ``threading.Thread`` and ``ThreadPoolExecutor``
    (so ``loop.run_in_executor``) carry the current step into worker threads, so steps opened
    there nest under it. ``cl.make_async`` carries it without this.
    """
    global _EXPORTER
    with _ENABLE_LOCK:
        if _EXPORTER is None:
            _EXPORTER = ChainlitExporter()
        exporter = _EXPORTER
        steptrace.add_thread_id_provider(exporter.directory.thread_id_for_current_context)
        steptrace.add_listener(exporter)
        if instrument_threads:
            steptrace.instrument_threads()
    return exporter


def disable() -> None:
    """Stop showing steps in Chainlit (threads stay instrumented if ``enable`` did it)."""
    global _EXPORTER
    with _ENABLE_LOCK:
        exporter = _EXPORTER
        if exporter is None:
            return
        steptrace.remove_listener(exporter)
        steptrace.remove_thread_id_provider(exporter.directory.thread_id_for_current_context)
        exporter.reset()
        _EXPORTER = None
