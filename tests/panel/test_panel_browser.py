"""``panel serve`` with steptrace steps, driven by a user in real headless Chromium.

The served path of the exporter: steps run in the ChatInterface's sync callback (a worker
thread), events arrive on steptrace's dispatcher thread, and the cards are changed on the
session's event loop. The user types a message; the test reads the cards the browser renders.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from browser import launched_chromium
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

pytestmark = [pytest.mark.browser, pytest.mark.integration]

APP = Path(__file__).resolve().parent / "app.py"
APP_ASYNC = Path(__file__).resolve().parent / "app_async.py"
VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
#: Upper bound for start-up and for each wait (a hang guard, not a performance assertion).
WAIT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def panel_executable() -> str:
    local = VENV_BIN / "panel"
    return str(local) if local.exists() else "panel"


@pytest.fixture(scope="module")
def panel_url() -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [
                panel_executable(),
                "serve",
                str(APP),
                str(APP_ASYNC),
                "--address",
                "127.0.0.1",
                "--port",
                str(port),
                "--allow-websocket-origin",
                f"127.0.0.1:{port}",
                "--num-procs",
                "1",
            ],
            env={**os.environ, "BOKEH_RESOURCES": "server", "OTEL_TRACES_EXPORTER": "none"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}/app"
        try:
            deadline = time.monotonic() + WAIT_S
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(
                        f"panel serve exited:\n{log.read().decode(errors='replace')}"
                    )
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("panel serve did not start")
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launched_chromium()


def loopback_only(route: Route) -> None:
    """Keep the browser on loopback (Panel links an icon font from a CDN)."""
    if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1")):
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    contexts: list[BrowserContext] = []

    def open_page() -> Page:
        context = browser.new_context(viewport={"width": 1200, "height": 1400})
        contexts.append(context)
        page = context.new_page()
        page.route("**/*", loopback_only)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[[], Page]) -> Page:
    return new_page()


def open_chat(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("textarea").first).to_be_visible(timeout=WAIT_S * 1000)


def submit(page: Page, text: str) -> None:
    box = page.locator("textarea").first
    box.fill(text)
    box.press("Enter")


def expect_titles(page: Page, titles: list[str]) -> None:
    """Wait until the card titles, in page order, are ``titles`` (the title pane renders
    inside its shadow root)."""
    expect(page.locator(".step-title div")).to_have_text(titles, timeout=WAIT_S * 1000)


def test_a_user_sees_the_steps_as_chatstep_cards(page: Page, panel_url: str) -> None:
    open_chat(page, panel_url)
    submit(page, "panel please")

    expect(page.get_by_text("done panel please")).to_be_visible(timeout=WAIT_S * 1000)
    expect(page.locator(".step-title", has_text="Error: 'ValueError'")).to_be_visible(
        timeout=WAIT_S * 1000
    )
    expect_titles(page, ["Planned", "search", "answer", "Error: 'ValueError'"])

    def title(text: str):
        return page.locator(".step-title", has_text=text)

    # The run's own card: the one holding its title but not the failed step's (the feed's
    # "Steps" card holds both). Nested cards render inside it.
    planned = page.locator(".card").filter(has=title("Planned")).filter(has_not=title("Error"))
    expect(planned).to_have_count(1)
    expect(planned.locator(".step-title", has_text="search")).to_be_visible()
    expect(planned.locator(".step-title", has_text="answer")).to_be_visible()
    expect(planned.get_by_text("searched for panel please")).to_be_visible()
    expect(planned.get_by_text("The answer is 42.")).to_be_visible()
    # Status badges: three successes, one failure.
    expect(page.locator(".step-avatar-container .dot-filled.success")).to_have_count(3)
    expect(page.locator(".step-avatar-container .dot-filled.danger")).to_have_count(1)
    # The failed step keeps what it streamed before the error, then the error.
    failed = page.locator(".card").filter(has=title("Error")).filter(has_not=title("Planned"))
    expect(failed).to_have_count(1)
    expect(failed.get_by_text("partial output")).to_be_visible()
    expect(failed.get_by_text("boom")).to_be_visible()


def test_two_browser_sessions_each_see_only_their_own_steps(
    new_page: Callable[[], Page], panel_url: str
) -> None:
    alice, bob = new_page(), new_page()
    open_chat(alice, panel_url)
    open_chat(bob, panel_url)
    submit(alice, "alpha")
    submit(bob, "beta")
    for page, mine in ((alice, "alpha"), (bob, "beta")):
        expect(page.get_by_text(f"done {mine}")).to_be_visible(timeout=WAIT_S * 1000)
        expect(page.locator(".step-title", has_text="Error")).to_be_visible(timeout=WAIT_S * 1000)
        expect(page.get_by_text(f"searched for {mine}")).to_be_visible()
        expect_titles(page, ["Planned", "search", "answer", "Error: 'ValueError'"])
    # Both sessions are complete: anything routed to the wrong one would be there by now.
    for page, other in ((alice, "beta"), (bob, "alpha")):
        expect(page.get_by_text(f"searched for {other}")).to_have_count(0)


def test_an_async_callback_shows_its_steps_too(page: Page, panel_url: str) -> None:
    open_chat(page, panel_url.replace("/app", "/app_async"))
    submit(page, "gamma")
    expect(page.get_by_text("done gamma")).to_be_visible(timeout=WAIT_S * 1000)
    expect(page.get_by_text("async answer")).to_be_visible(timeout=WAIT_S * 1000)
    expect_titles(page, ["Planned (async)", "blocking lookup", "answer"])
    expect(page.get_by_text("looked up gamma")).to_be_visible()
