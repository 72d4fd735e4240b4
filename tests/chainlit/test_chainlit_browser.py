"""Chainlit's real web client, in headless Chromium, renders the steptrace steps it is sent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from browser import launched_chromium
from chainlit_harness import ChainlitServer
from playwright.sync_api import Browser, Locator, Page, Route, expect

pytestmark = [pytest.mark.browser, pytest.mark.integration]

WAIT_MS = 60_000


def loopback_only(route: Route) -> None:
    """Keep the browser on loopback (Chainlit links a web font and KaTeX CSS from CDNs)."""
    if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1")):
        route.continue_()
    else:
        route.abort()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launched_chromium()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 1400})
    page = context.new_page()
    page.route("**/*", loopback_only)
    yield page
    context.close()


def step_row(page: Page, name: str) -> Locator:
    """A step's header as Chainlit renders it: the "Used <name>" accordion button."""
    return page.get_by_role("button", name=f"Used {name}", exact=True)


def top(locator: Locator) -> float:
    box = locator.first.bounding_box()
    assert box is not None
    return float(box["y"])


def test_the_chainlit_client_shows_nested_streamed_steps_in_order(
    page: Page, chainlit_server: ChainlitServer
) -> None:
    page.goto(chainlit_server.url)
    box = page.locator("#chat-input")
    expect(box).to_be_visible(timeout=WAIT_MS)
    box.fill("plan erin")
    page.locator("#chat-submit").click()

    reply = page.get_by_text("done erin", exact=True)
    expect(reply).to_be_visible(timeout=WAIT_MS)
    for name in ("plan", "count", "lookup"):
        expect(step_row(page, name)).to_be_visible(timeout=WAIT_MS)
    # Top-level steps are listed under the user's message, before the reply, in run order.
    question = page.get_by_text("plan erin", exact=True)
    rows = [top(question), *(top(step_row(page, n)) for n in ("plan", "count", "lookup"))]
    assert rows == sorted(rows)
    assert rows[-1] < top(reply)

    step_row(page, "plan").click()  # open the accordion
    for child in ("sync-inner", "executor-tool", "answer"):
        expect(step_row(page, child)).to_be_visible()
    expect(step_row(page, "lookup")).to_have_count(2)  # the worker-thread one inside, and after
    expect(page.get_by_text("planned for erin")).to_be_visible()
    step_row(page, "answer").click()
    expect(page.get_by_text("The answer is 42.")).to_be_visible()
