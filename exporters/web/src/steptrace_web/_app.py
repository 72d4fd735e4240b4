"""The Starlette application: the page, the live feeds (WebSocket and SSE) and the ingest socket.

Routes:

* ``GET /`` – the chat page (``?thread=<id>`` follows one thread).
* ``WS /ws`` – the live feed: ``hello``, a ``snapshot``, then Chainlit step events.
* ``GET /events`` – the same feed as Server-Sent Events, for networks that block WebSockets.
* ``WS /ingest`` – only on a standalone server: other processes forward their events here.
* ``GET /healthz`` – a small JSON status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from ._hub import Hub
from ._page import favicon_svg, page_csp, page_html
from ._protocol import STEP_EVENTS, UPDATE
from ._security import AccessGuard

logger = logging.getLogger("steptrace.web")

#: An idle Server-Sent Events stream sends a comment this often, so proxies keep it open.
SSE_HEARTBEAT_S = 15.0


def _thread_param(params: Any) -> str | None:
    value = params.get("thread")
    return value if value else None


def build_app(
    hub: Hub,
    *,
    token: str | None,
    cookie_name: str,
    allowed_hosts: frozenset[str] | None,
    accept_forwarded: bool,
) -> AccessGuard:
    """The ASGI app for ``hub``, wrapped in the access guard."""

    async def page(request: Request) -> Response:
        return Response(page_html(), media_type="text/html; charset=utf-8")

    async def favicon(request: Request) -> Response:
        return Response(favicon_svg(), media_type="image/svg+xml")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "clients": len(hub.clients),
                "steps": len(hub.store),
                "visibility": hub.visibility.mode,
            }
        )

    async def feed_ws(websocket: WebSocket) -> None:
        await websocket.accept()
        client = hub.attach(_thread_param(websocket.query_params), "websocket")
        sender = asyncio.create_task(hub.pump(client, websocket.send_text))
        receiver = asyncio.create_task(_discard_incoming(websocket))
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done and sender.exception() is None:
                with contextlib.suppress(Exception):
                    await websocket.close(code=1001)  # the server is going away
        finally:
            hub.detach(client)
            for task in (sender, receiver):
                task.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)

    async def feed_sse(request: Request) -> Response:
        client = hub.attach(_thread_param(request.query_params), "sse")
        handoff: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        sender = asyncio.create_task(hub.pump(client, handoff.put))

        async def stream() -> AsyncIterator[str]:
            get: asyncio.Future[str] | None = None
            try:
                yield "retry: 1000\n\n"
                while True:
                    get = asyncio.ensure_future(handoff.get())
                    done, _ = await asyncio.wait(
                        {get, sender}, timeout=SSE_HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED
                    )
                    if get in done:
                        yield f"data: {get.result()}\n\n"
                        continue
                    get.cancel()
                    if sender.done():
                        return
                    yield ": keep-alive\n\n"
            finally:
                hub.detach(client)
                sender.cancel()
                if get is not None:
                    get.cancel()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )

    async def ingest_ws(websocket: WebSocket) -> None:
        if "origin" in websocket.headers:
            await websocket.close(code=1008)  # browsers never forward events
            return
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                _apply_forwarded(hub, await websocket.receive_text())

    routes: list[Any] = [
        Route("/", page),
        Route("/favicon.svg", favicon),
        Route("/healthz", health),
        Route("/events", feed_sse),
        WebSocketRoute("/ws", feed_ws),
    ]
    if accept_forwarded:
        routes.append(WebSocketRoute("/ingest", ingest_ws))
    app = Starlette(routes=routes)
    return AccessGuard(
        app,
        token=token,
        cookie_name=cookie_name,
        allowed_hosts=allowed_hosts,
        page_csp=page_csp(),
    )


async def _discard_incoming(websocket: WebSocket) -> None:
    """The feed is one-way; read (and ignore) until the browser goes away."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


def _apply_forwarded(hub: Hub, text: str) -> None:
    """Apply one message from a forwarder: ``{"sync": [steps]}`` and/or ``{"events": [...]}``."""
    try:
        message = json.loads(text)
    except ValueError:
        logger.warning("steptrace-web: ignoring a forwarded message that is not JSON")
        return
    if not isinstance(message, dict):
        return
    sync = message.get("sync")
    if isinstance(sync, list):
        for step in sync:
            hub.ingest(UPDATE, step)  # an unknown step is created, a known one updated
    events = message.get("events")
    if isinstance(events, list):
        for item in events:
            if isinstance(item, list) and len(item) == 2 and item[0] in STEP_EVENTS:
                hub.ingest(item[0], item[1])
