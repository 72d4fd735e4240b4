"""Access rules: loopback by default, a token otherwise, same origin only, no CORS, strict CSP."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest
import steptrace_web
from steptrace_web._security import is_loopback
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from web.feedkit import open_feed, step

pytestmark = pytest.mark.integration

TOKEN = "test-token-4f1c2a"


def http(channel, path: str = "/", **kwargs) -> httpx.Response:
    kwargs.setdefault("follow_redirects", False)
    return httpx.get(f"http://127.0.0.1:{channel.port}{path}", trust_env=False, **kwargs)


def test_loopback_detection():
    for host in ("127.0.0.1", "127.8.9.1", "localhost", "::1", "[::1]", "app.localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "", "::", "192.168.1.4", "example.com", "10.0.0.1"):
        assert not is_loopback(host), host


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_binding_beyond_loopback_without_a_token_is_refused(host):
    with pytest.raises(ValueError, match="token"):
        steptrace_web.serve(host=host, listen=False)


def test_the_command_refuses_a_public_bind_without_a_token():
    result = subprocess.run(
        [sys.executable, "-m", "steptrace_web.cli", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "requires --token" in result.stderr


def test_forwarding_beyond_loopback_without_a_token_is_refused():
    with pytest.raises(ValueError, match="token"):
        steptrace_web.forward("http://192.0.2.10:8765/", listen=False)


def test_every_route_needs_the_token_when_one_is_set(make_channel):
    channel = make_channel(token=TOKEN)
    assert channel.url.endswith(f"?token={TOKEN}")
    for path in ("/", "/healthz", "/events", "/favicon.svg"):
        assert http(channel, path).status_code == 401, path
        assert http(channel, path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert http(channel, "/healthz?token=caf%C3%A9-%E2%98%95").status_code == 401  # not ASCII
    ok = http(channel, "/healthz", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json()["status"] == "ok"


def test_the_page_moves_the_token_from_the_url_into_an_httponly_cookie(make_channel):
    channel = make_channel(token=TOKEN)
    first = http(channel, f"/?thread=abc&token={TOKEN}")
    assert first.status_code == 303
    assert first.headers["location"] == "/?thread=abc"
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    name, value = cookie.split(";")[0].split("=", 1)
    page = http(channel, "/?thread=abc", cookies={name: value})
    assert page.status_code == 200 and "steptrace" in page.text


async def test_websocket_needs_the_token_too(make_channel):
    channel = make_channel(token=TOKEN)
    url = f"ws://127.0.0.1:{channel.port}/ws"
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, proxy=None)
    assert refused.value.response.status_code == 403
    for kwargs in (
        {"additional_headers": {"Authorization": f"Bearer {TOKEN}"}},
        {"uri": url + f"?token={TOKEN}"},
        {"additional_headers": {"Cookie": f"steptrace_web_{channel.port}={TOKEN}"}},
    ):
        async with connect(kwargs.pop("uri", url), proxy=None, **kwargs) as ws:
            assert '"hello"' in await ws.recv()


def test_a_foreign_host_name_is_refused_on_loopback(channel):
    """DNS rebinding: a page from evil.example resolving to 127.0.0.1 must not get in."""
    assert http(channel, headers={"Host": "evil.example"}).status_code == 400
    assert http(channel, headers={"Host": f"evil.example:{channel.port}"}).status_code == 400
    assert http(channel, headers={"Host": f"localhost:{channel.port}"}).status_code == 200
    assert http(channel).status_code == 200


async def test_cross_origin_websockets_and_requests_are_refused(channel):
    channel.publish("new_message", step("private", output="do not leak"))
    url = f"ws://127.0.0.1:{channel.port}/ws"
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, proxy=None, origin="http://evil.example")
    assert refused.value.response.status_code == 403
    same = f"http://127.0.0.1:{channel.port}"
    async with connect(url, proxy=None, origin=same) as ws:
        assert '"hello"' in await ws.recv()
    response = http(channel, "/events", headers={"Origin": "http://evil.example"})
    assert response.status_code == 403 and "do not leak" not in response.text


def test_no_cors_headers_are_ever_sent(channel):
    origin = {"Origin": "http://evil.example"}
    responses = [
        http(channel, "/", headers=origin),
        http(channel, "/healthz"),
        httpx.options(
            f"http://127.0.0.1:{channel.port}/healthz",
            headers={**origin, "Access-Control-Request-Method": "GET"},
            trust_env=False,
        ),
    ]
    for response in responses:
        assert not any(h.lower().startswith("access-control-") for h in response.headers)


def test_the_page_has_a_strict_content_security_policy(channel):
    response = http(channel)
    csp = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"].startswith("'sha256-") and "unsafe" not in csp
    assert directives["connect-src"] == "'self'"
    assert directives["require-trusted-types-for"] == "'script'"
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"].startswith("text/html")
    # Self-contained: no external script, style, font or image reference.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", response.text)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", response.text)


async def test_a_served_channel_does_not_accept_forwarded_events(channel):
    with pytest.raises(InvalidStatus):
        await connect(f"ws://127.0.0.1:{channel.port}/ingest", proxy=None)


async def test_cookie_of_another_port_does_not_open_this_channel(make_channel):
    first = make_channel(token=TOKEN)
    second = make_channel(token="another-token-99")
    cookie = {"Cookie": f"steptrace_web_{second.port}={TOKEN}"}
    with pytest.raises(InvalidStatus):
        await connect(f"ws://127.0.0.1:{second.port}/ws", proxy=None, additional_headers=cookie)
    feed = await open_feed(first, additional_headers={"Authorization": f"Bearer {TOKEN}"})
    assert feed.state.snapshots == ["join"]
