"""``forward()``: ship this process's steps to a standalone ``steptrace-web`` server.

The listener applies each event to a small local store and queues it, under a short lock, and
returns. A sender thread drains the queue over one WebSocket to the server's ``/ingest``. Every
(re)connection starts with a ``sync`` of the local store, so a server restart, a network gap or
a queue overflow (bounded; the queue is dropped, not grown) costs a resynchronisation, never a
blocked app or a page with holes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from ._protocol import DELETE, NEW, STREAM_START, STREAM_TOKEN, UPDATE, dumps
from ._security import is_loopback
from ._store import StepStore

logger = logging.getLogger("steptrace.web")

#: Target size of one forwarded message (the server accepts up to 16 MiB).
CHUNK_BYTES = 1_000_000


def ingest_url(url: str) -> str:
    """``http://host:port/...`` (or ``ws://...``) -> ``ws://host:port/ingest``."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise ValueError(f"not an http(s) or ws(s) URL: {url!r}")
    return urlunsplit((scheme, parts.netloc, "/ingest", "", ""))


class Forwarder:
    """A steptrace listener that mirrors events to a remote web channel. Use :func:`forward`."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        listen: bool = True,
        max_pending: int = 20000,
        max_ended_steps: int = 500,
        retry_delay: float = 0.25,
        max_retry_delay: float = 5.0,
    ):
        self.url = ingest_url(url)
        host = urlsplit(self.url).hostname or ""
        if token is None and not is_loopback(host):
            raise ValueError(f"forwarding to {host!r} (not loopback) requires token=...")
        self.token = token
        self._proxy: Any = None if is_loopback(host) else True
        self._max_pending = max_pending
        self._store = StepStore(max_ended=max_ended_steps)
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._resync = True
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._retry = (retry_delay, max_retry_delay)
        self.connected = threading.Event()
        self.dropped_batches = 0
        self._listening = False
        self._thread = threading.Thread(target=self._run, name="steptrace-web-forward", daemon=True)
        self._thread.start()
        if listen:
            import steptrace

            steptrace.add_listener(self)
            self._listening = True

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        """Listener entry point; never raises, never waits on the network."""
        if self._stopping.is_set() or not isinstance(payload, dict):
            return
        try:
            payload = dict(payload)
            with self._lock:
                self._apply(event, payload)
                if len(self._queue) >= self._max_pending:
                    self._queue.clear()
                    self._resync = True
                    self.dropped_batches += 1
                elif not self._resync:
                    self._queue.append((event, payload))
            self._wake.set()
        except Exception:
            logger.exception("steptrace-web: could not queue a %s event for forwarding", event)

    def _apply(self, event: str, payload: dict[str, Any]) -> None:
        step_id = payload.get("id")
        if not isinstance(step_id, str) or not step_id:
            return
        if event in (NEW, UPDATE, STREAM_START):
            self._store.upsert(payload)
        elif event == STREAM_TOKEN and isinstance(payload.get("token"), str):
            self._store.token(
                step_id,
                payload["token"],
                bool(payload.get("isSequence")),
                bool(payload.get("isInput")),
            )
        elif event == DELETE:
            self._store.delete(step_id)

    def _next_messages(self) -> list[str]:
        """What to send next, cut into messages of about ``CHUNK_BYTES`` (a server refuses
        messages over 16 MiB): a sync of the whole local state, or the queued events."""
        with self._lock:
            if self._resync:
                self._resync = False
                self._queue.clear()
                steps = [s.to_dict(s.parent_id) for s in self._store.in_tree_order(lambda s: True)]
                return [dumps({"sync": chunk}) for chunk in _chunks(steps)] or [dumps({"sync": []})]
            if not self._queue:
                return []
            events = [[event, payload] for event, payload in self._queue]
            self._queue.clear()
        return [dumps({"events": chunk}) for chunk in _chunks(events)]

    def _connect(self) -> ClientConnection:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        return connect(
            self.url,
            additional_headers=headers,
            proxy=self._proxy,
            open_timeout=5,
            close_timeout=2,
        )

    def _run(self) -> None:
        delay = self._retry[0]
        while not self._stopping.is_set():
            try:
                connection = self._connect()
            except (OSError, WebSocketException, TimeoutError) as exc:
                logger.debug("steptrace-web: cannot reach %s (%s); retrying", self.url, exc)
                self._stopping.wait(delay)
                delay = min(delay * 2, self._retry[1])
                continue
            delay = self._retry[0]
            with self._lock:
                self._resync = True  # the server may have missed anything: start from state
            self.connected.set()
            try:
                with connection:
                    self._send_until_stopped(connection)
                    return
            except (OSError, WebSocketException) as exc:
                logger.debug("steptrace-web: lost %s (%s); reconnecting", self.url, exc)
            finally:
                self.connected.clear()

    def _send_until_stopped(self, connection: ClientConnection) -> None:
        while True:
            messages = self._next_messages()
            if messages:
                for message in messages:
                    connection.send(message)
                continue
            if self._stopping.is_set():
                return
            self._wake.wait(0.5)
            self._wake.clear()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far has been handed to the socket."""
        import time

        with contextlib.suppress(Exception):
            import steptrace

            steptrace.flush(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                idle = not self._queue and not self._resync
            if idle and self.connected.is_set():
                return True
            time.sleep(0.01)
        return False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, send what is queued (within ``timeout``) and disconnect."""
        if self._listening:
            self._listening = False
            with contextlib.suppress(Exception):
                import steptrace

                steptrace.flush(min(timeout, 1.0))
                steptrace.remove_listener(self)
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _chunks(items: list[Any]) -> list[list[Any]]:
    """Consecutive runs of ``items`` whose JSON stays near ``CHUNK_BYTES`` each."""
    chunks: list[list[Any]] = []
    current: list[Any] = []
    size = 0
    for item in items:
        item_size = len(dumps(item))
        if current and size + item_size > CHUNK_BYTES:
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        chunks.append(current)
    return chunks


def forward(url: str, *, token: str | None = None, **options: Any) -> Forwarder:
    """Mirror this process's steps to a standalone web channel (``steptrace-web`` command).

    ``url`` is the server's address as it prints it (``http://127.0.0.1:8765/``). A server
    reachable beyond loopback requires its ``token``. Returns a :class:`Forwarder`; call
    ``stop()`` to detach.
    """
    return Forwarder(url, token=token, **options)
