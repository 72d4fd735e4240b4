"""Which Chainlit session a step belongs to.

A step is created in some context: a Chainlit handler on the event loop, a ``cl.make_async``
worker (anyio copies the context into the thread), or anywhere else. The directory reads the
Chainlit context at that moment, once per top-level step (steptrace's thread-id provider hook;
children inherit the thread id), and remembers for that thread id the ``WebsocketSession`` to
deliver to, its event loop, and the Chainlit step that was current (the ``on_message`` run, or a
``cl.Step`` the handler opened), under which top-level steptrace steps are shown.

The steptrace listener later resolves a thread id back to that session, on its own thread,
without touching any Chainlit context.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

from chainlit.context import context_var
from chainlit.session import WebsocketSession, ws_sessions_id


@dataclass
class SessionTarget:
    """Where the steps of one Chainlit thread go."""

    session: WebsocketSession
    loop: asyncio.AbstractEventLoop
    #: Id of the Chainlit step current when the latest top-level step of this thread was created
    #: (Chainlit's ``on_message`` run, or an open ``cl.Step``), or ``None``.
    anchor_id: str | None = None


SessionHook = Callable[[WebsocketSession, asyncio.AbstractEventLoop], None]


class SessionDirectory:
    """Thread id -> live Chainlit websocket session, learnt from the contexts steps start in."""

    def __init__(self, on_session: SessionHook | None = None) -> None:
        #: Called (in the step's context) for each session a step starts in.
        self._on_session = on_session
        self._targets: dict[str, SessionTarget] = {}
        self._lock = threading.Lock()
        self._last_loop: asyncio.AbstractEventLoop | None = None

    def thread_id_for_current_context(self) -> str | None:
        """steptrace's thread-id provider: the thread of the Chainlit session running this code.

        Called where a top-level step starts. Outside any Chainlit context it returns ``None``
        (the step is then not shown in Chainlit). HTTP-only contexts (REST handlers) still give
        their thread id, so spans carry it, but they have no socket to show steps on.
        """
        try:
            ctx = context_var.get()
        except LookupError:
            return None
        session = ctx.session
        thread_id = session.thread_id
        if isinstance(session, WebsocketSession):
            current = ctx.current_step
            target = SessionTarget(
                session=session,
                loop=ctx.loop,
                anchor_id=getattr(current, "id", None),
            )
            with self._lock:
                self._targets[thread_id] = target
                self._last_loop = ctx.loop
            if self._on_session is not None:
                self._on_session(session, ctx.loop)
        return thread_id

    def lookup(self, thread_id: str) -> SessionTarget | None:
        """The live session for ``thread_id``, or ``None`` when it has gone (steps are dropped).

        A thread id given explicitly (never seen by the provider) is matched against the
        sessions Chainlit currently holds.
        """
        with self._lock:
            target = self._targets.get(thread_id)
        if target is not None:
            if _is_live(target.session) and target.session.thread_id == thread_id:
                return target
            with self._lock:
                if self._targets.get(thread_id) is target:
                    del self._targets[thread_id]
        loop = self._last_loop
        if loop is None:
            return None
        for session in list(ws_sessions_id.values()):
            if session.thread_id == thread_id:
                target = SessionTarget(session=session, loop=loop)
                with self._lock:
                    self._targets.setdefault(thread_id, target)
                return target
        return None

    def sweep(self) -> set[str]:
        """Forget sessions Chainlit has deleted; returns the ids of the sessions still live."""
        live = {session.id for session in list(ws_sessions_id.values())}
        with self._lock:
            for thread_id, target in list(self._targets.items()):
                if target.session.id not in live:
                    del self._targets[thread_id]
        return live

    def forget(self, thread_id: str) -> None:
        with self._lock:
            self._targets.pop(thread_id, None)

    def clear(self) -> None:
        with self._lock:
            self._targets.clear()
            self._last_loop = None


def _is_live(session: WebsocketSession) -> bool:
    """Chainlit removes a session from its registry when it is deleted (disconnect + timeout)."""
    return ws_sessions_id.get(session.id) is session
