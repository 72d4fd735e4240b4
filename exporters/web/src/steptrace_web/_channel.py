"""``serve()``: the web channel running inside the app, on its own thread and event loop.

The server (uvicorn) and the hub share one event loop in a daemon thread. The app's steps reach
it through a steptrace listener that only hands events over (see ``_inlet``), so the app never
waits for the server, and the server never waits for a browser.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import socket
import threading
import time
import weakref
from typing import Any

import uvicorn

from ._app import build_app
from ._hub import Hub
from ._inlet import Inlet
from ._security import LOOPBACK_NAMES, is_loopback
from ._version import __version__
from ._visibility import check_mode

logger = logging.getLogger("steptrace.web")

_live_channels: weakref.WeakSet[WebChannel] = weakref.WeakSet()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket; bound here so errors surface in the caller and port 0 resolves."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(256)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class WebChannel:
    """A running web chat channel. Use :func:`serve` to make one; ``stop()`` (or leaving a
    ``with`` block) shuts it down."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        visibility: str = "full",
        thread_id: str | None = None,
        listen: bool = True,
        accept_forwarded: bool = False,
        max_ended_steps: int = 1000,
        max_step_chars: int = 100_000,
        max_store_chars: int = 20_000_000,
        client_buffer_frames: int = 5000,
        client_buffer_bytes: int = 8_000_000,
        token_interval: float = 0.02,
        allowed_hosts: list[str] | None = None,
    ):
        check_mode(visibility)
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("token must be a non-empty string")
        if not is_loopback(host) and token is None:
            raise ValueError(
                f"binding the web channel to {host!r} exposes it beyond this machine: "
                "pass token=... (steptrace_web.new_token() makes one)"
            )
        self.host = host
        self.token = token
        self.visibility = visibility
        self.thread_id = thread_id
        self._sock = _bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        if allowed_hosts is not None:
            hosts: frozenset[str] | None = frozenset(h.lower() for h in allowed_hosts)
        elif is_loopback(host):
            hosts = LOOPBACK_NAMES | {host.strip("[]").lower()}
        else:
            hosts = None  # reachable under any name; the token is what protects it
        self.hub = Hub(
            visibility=visibility,
            thread_id=thread_id,
            max_ended_steps=max_ended_steps,
            max_step_chars=max_step_chars,
            max_store_chars=max_store_chars,
            client_max_frames=client_buffer_frames,
            client_max_bytes=client_buffer_bytes,
            token_interval=token_interval,
            version=__version__,
        )
        app = build_app(
            self.hub,
            token=token,
            cookie_name=f"steptrace_web_{self.port}",
            allowed_hosts=hosts,
            accept_forwarded=accept_forwarded,
        )
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="websockets-sansio",
            timeout_graceful_shutdown=2,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
            ws_per_message_deflate=False,
            ws_max_size=16 * 1024 * 1024,
        )
        self._server = uvicorn.Server(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stopped = False
        self._listening = False
        self._thread = threading.Thread(
            target=self._run, name=f"steptrace-web:{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(10):
            self._sock.close()
            raise RuntimeError("steptrace-web: the server thread did not start")
        assert self._loop is not None
        self.inlet: Inlet = Inlet(self._loop, self.hub.ingest_many)
        if listen:
            self._add_listener()
        _live_channels.add(self)

    # -- public -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The page's address (with the token, when there is one: open it once to log in)."""
        base = f"http://{_url_host(self.host)}:{self.port}/"
        if self.thread_id is not None:
            base += "?thread=" + self.thread_id
        if self.token is not None:
            base += ("&" if "?" in base else "?") + "token=" + self.token
        return base

    @property
    def client_count(self) -> int:
        return len(self.hub.clients)

    @property
    def running(self) -> bool:
        return not self._stopped and self._thread.is_alive()

    def publish(self, event: str, payload: dict[str, Any]) -> None:
        """Feed one Chainlit step event in, from any thread (what the listener does)."""
        self.inlet(event, payload)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event published so far has been applied by the hub."""
        if self._listening:
            with contextlib.suppress(Exception):
                import steptrace

                steptrace.flush(timeout)
        return self._call_soon(lambda: None, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Detach from steptrace, let clients receive what is queued, and shut down."""
        if self._stopped:
            return
        self._stopped = True
        if threading.current_thread() is self._thread:  # called from the server's own loop
            self._remove_listener()
            self.inlet.close()
            self.hub.close()
            self._server.should_exit = True
            return
        self._remove_listener()
        self._call_soon(lambda: None, min(timeout, 2.0))  # apply what was handed over
        self.inlet.close()
        self._call_soon(self.hub.close, timeout)
        deadline = time.monotonic() + min(timeout, 1.0)
        while self.hub.pumping and time.monotonic() < deadline:
            time.sleep(0.01)  # let the browsers receive the final updates
        self._server.should_exit = True
        self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> WebChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<WebChannel {state} {_url_host(self.host)}:{self.port} {self.visibility}>"

    # -- internals ----------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._ready.set()
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        except Exception:
            logger.exception("steptrace-web: the server stopped with an error")
        finally:
            self._stopped = True
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _call_soon(self, fn: Any, timeout: float) -> bool:
        """Run ``fn`` on the server loop and wait for it (``False`` on timeout or no loop)."""
        loop = self._loop
        if loop is None or loop.is_closed() or threading.current_thread() is self._thread:
            return False

        async def call() -> None:
            fn()

        try:
            asyncio.run_coroutine_threadsafe(call(), loop).result(timeout)
            return True
        except (concurrent.futures.TimeoutError, RuntimeError):
            return False

    def _add_listener(self) -> None:
        import steptrace

        steptrace.add_listener(self.inlet)
        self._listening = True

    def _remove_listener(self) -> None:
        if not self._listening:
            return
        self._listening = False
        with contextlib.suppress(Exception):
            import steptrace

            steptrace.flush(1.0)
            steptrace.remove_listener(self.inlet)


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    token: str | None = None,
    visibility: str = "full",
    thread_id: str | None = None,
    **options: Any,
) -> WebChannel:
    """Start the live web chat channel in this process and mirror every Step to it.

    ``port=0`` picks a free port (see ``.url``). Binding anywhere but loopback requires
    ``token``. ``visibility`` is ``"full"``, ``"tool_call"`` or ``"hidden"`` (what is hidden
    never leaves the process); ``thread_id`` restricts the channel to one thread. Further
    options: ``listen`` (default True: register a steptrace listener), ``accept_forwarded``,
    ``max_ended_steps`` (ended steps kept for late joiners), ``max_step_chars`` (text kept per
    step for snapshots), ``max_store_chars`` (text kept in all), ``client_buffer_frames``,
    ``client_buffer_bytes``, ``token_interval``, ``allowed_hosts``.
    """
    return WebChannel(
        host, port, token=token, visibility=visibility, thread_id=thread_id, **options
    )


@atexit.register
def _stop_all() -> None:
    for channel in list(_live_channels):
        with contextlib.suppress(Exception):
            channel.stop(timeout=2.0)
