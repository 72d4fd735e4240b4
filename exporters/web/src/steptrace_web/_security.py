"""Who may talk to the channel: loopback by default, a token otherwise, same-origin only.

One ASGI middleware guards every request and WebSocket handshake:

* ``Host`` must name the loopback interface when the server is bound to it, so a DNS-rebinding
  page cannot reach it under another name;
* when a token is set (always, off loopback) it must come as ``Authorization: Bearer``, a
  ``token`` query parameter, or the HttpOnly cookie the page sets after its first visit;
* a browser ``Origin`` must be the server's own origin (WebSockets bypass CORS, so this is what
  stops another site from reading the steps). No CORS headers are ever sent;
* every HTTP response carries a strict set of security headers.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

BASE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A random token suitable for ``serve(token=...)``."""
    return secrets.token_urlsafe(24)


def split_host(value: str) -> str:
    """The host part of a ``Host`` header (``[::1]:80`` -> ``::1``), lower-cased."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def same_origin(origin: str, host_header: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.lower()


class AccessGuard:
    """ASGI middleware enforcing host, token and origin rules, and adding security headers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        cookie_name: str,
        allowed_hosts: Iterable[str] | None,
        page_csp: str,
        page_paths: Iterable[str] = ("/",),
    ):
        self.app = app
        self.token = token
        self.cookie_name = cookie_name
        self.allowed_hosts = None if allowed_hosts is None else frozenset(allowed_hosts)
        self.page_csp = page_csp.encode()
        self.page_paths = frozenset(page_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host_header = headers.get("host", "")
        if self.allowed_hosts is not None and split_host(host_header) not in self.allowed_hosts:
            await self._refuse(scope, send, 400, "invalid Host header")
            return
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, host_header):
            await self._refuse(scope, send, 403, "cross-origin requests are not allowed")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if self.token is not None:
            supplied = self._supplied_token(headers, query)
            if supplied is None or not hmac.compare_digest(
                supplied.encode("utf-8", "surrogateescape"), self.token.encode()
            ):
                await self._refuse(scope, send, 401, "a valid token is required")
                return
            if kind == "http" and "token" in query and scope["path"] in self.page_paths:
                await self._remember_token(scope, send, query)
                return
        if kind == "websocket":
            await self.app(scope, receive, send)
            return
        csp = self.page_csp if scope["path"] in self.page_paths else DEFAULT_CSP.encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [
                    *message.get("headers", []),
                    *BASE_HEADERS,
                    (b"content-security-policy", csp),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _supplied_token(self, headers: Headers, query: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        if "token" in query:
            return query["token"]
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.cookie_name:
                return value
        return None

    async def _remember_token(self, scope: Scope, send: Send, query: dict[str, str]) -> None:
        """Move a token from the page URL into an HttpOnly cookie, then drop it from the URL."""
        rest = {k: v for k, v in query.items() if k != "token"}
        location = scope["path"] + ("?" + urlencode(rest) if rest else "")
        cookie = f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode()),
                    (b"set-cookie", cookie.encode()),
                    (b"content-length", b"0"),
                    *BASE_HEADERS,
                    (b"content-security-policy", DEFAULT_CSP.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    async def _refuse(scope: Scope, send: Send, status: int, reason: str) -> None:
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008, "reason": reason})
            return
        body = (reason + "\n").encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    *BASE_HEADERS,
                    (b"content-security-policy", DEFAULT_CSP.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
