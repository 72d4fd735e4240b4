"""The chat page in real headless Chromium, fed by real Steps through a real server."""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from playwright.sync_api import Browser, Page, expect, sync_playwright

import steptrace
from web.feedkit import CHROMIUM_ARGS, OUTPUT_DIR, chromium_path

pytestmark = pytest.mark.browser

# A wait, not a speed target: generous so that a loaded CI machine does not fail the suite.
expect.set_options(timeout=15_000)

XSS = "<img src=x onerror=alert(1)>"
FIRST_HALF = "It is **14 °C** in Paris with a 70 % chance of rain."
OPEN = re.compile(r"\bopen\b")
README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "web-chat.png"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watched:
    """A page plus everything that would betray a problem: errors, dialogs, CSP reports,
    and any request that leaves the channel's origin."""

    def __init__(self, page: Page, origin: str):
        self.page = page
        self.origin = origin
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("request", self._request)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: Any) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            self.problems.append(f"console {message.type}: {message.text}")

    def _request(self, request: Any) -> None:
        url = request.url
        if not (url.startswith(self.origin) or url.startswith(self.origin.replace("http", "ws"))):
            self.problems.append(f"request outside the channel: {url}")


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Any]:
    contexts = []

    def open_(url: str, **context_options: Any) -> Watched:
        context_options.setdefault("viewport", {"width": 1180, "height": 900})
        context = browser.new_context(**context_options)
        contexts.append(context)
        page = context.new_page()
        origin = url.split("/?")[0].rstrip("/")
        watched = Watched(page, origin)
        page.goto(url)
        expect(page.locator("body")).to_have_attribute("data-conn", "live")
        return watched

    yield open_
    for context in contexts:
        context.close()


def card(page: Page, name: str) -> Any:
    """The step card whose header shows ``name`` (as its title or its name)."""
    return (
        page.locator("article.step").filter(has=page.locator(":scope > .head", has_text=name)).first
    )


def save_screenshot(page: Page, name: str) -> Path:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUTPUT_DIR / name
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=True)
    return path


def weather_agent(halfway: threading.Event, resume: threading.Event) -> None:
    """A small agent run: a user message, a tool, a failing tool, a foreign span, a streaming
    llm step that pauses half way, and the assistant's answer."""
    tracer = trace.get_tracer("httpx.instrumentation.example")
    with steptrace.Step(name="user", type="user_message", thread_id="demo") as message:
        message.output = "What's the weather in **Paris**, and do I need an umbrella?"
    with steptrace.Step(
        name="weather agent",
        type="run",
        thread_id="demo",
        default_open=True,
        collapsed_on_success=False,
    ) as run:
        run.input = {"question": "weather in Paris"}
        with steptrace.Step(
            name="get_weather", type="tool", default_open=True, collapsed_on_success=False
        ) as tool:
            tool.input = {"city": "Paris", "units": "metric"}
            with tracer.start_as_current_span("GET api.weather.example/v1/paris") as span:
                span.set_attribute("output.value", "200 OK")
            tool.output = {"temp_c": 14, "rain_probability": 0.7}
        with steptrace.Step(name="geocode", type="tool", context_exception="summary") as bad:
            bad.input = {"q": "Paris"}
            raise ValueError("upstream returned 503")
    with steptrace.Step(
        name="gpt-4o",
        type="llm",
        thread_id="demo",
        default_open=True,
        running_title="Thinking…",
        success_title="Answer ready",
        collapsed_on_success=False,
    ) as llm:
        llm.input = "Summarise the forecast for the user."
        for word in [
            "It",
            "is",
            "**14",
            "°C**",
            "in",
            "Paris",
            "with",
            "a",
            "70",
            "%",
            "chance",
            "of",
            "rain.",
        ]:
            llm.stream_token(word + " ")
        halfway.set()
        resume.wait(60)
        rest = "\n\nBring an umbrella:\n\n- a light jacket\n- an `umbrella`\n\n" + XSS
        for piece in rest.split(" "):
            llm.stream_token(piece + " ")
    with steptrace.Step(name="assistant", type="assistant_message", thread_id="demo") as answer:
        answer.output = "Yes, bring an umbrella: 70 % chance of rain this afternoon."


def test_a_live_run_streams_into_the_page(make_channel, open_page):
    channel = make_channel(listen=True)
    watched = open_page(channel.url)
    page = watched.page
    halfway, resume = threading.Event(), threading.Event()
    app = threading.Thread(target=weather_agent, args=(halfway, resume))
    app.start()
    try:
        assert halfway.wait(60)
        llm = card(page, "gpt-4o")
        # Mid-stream: the first half is on screen, the step is running with its running title.
        expect(llm.locator(".output")).to_contain_text("chance of rain.")
        expect(llm).to_have_attribute("data-status", "running")
        expect(llm.locator(".title")).to_have_text("Thinking…")
        expect(llm.locator(".badge")).to_have_text("running")
        expect(llm.locator(".output .cursor")).to_be_visible()
        expect(llm.locator(".output strong")).to_have_text("14 °C")

        late = open_page(channel.url)  # joins mid-stream: the snapshot brings the text so far
        late_llm = card(late.page, "gpt-4o")
        expect(late_llm.locator(".output")).to_contain_text("chance of rain.")
        expect(late_llm).to_have_attribute("data-status", "running")
        save_screenshot(page, "streaming.png")
    finally:
        resume.set()
        app.join(60)

    for view in (page, late.page):
        llm = card(view, "Answer ready")
        expect(llm).to_have_attribute("data-status", "success")
        expect(llm.locator(".badge")).to_have_text("success")
        expect(llm.locator(".output li")).to_have_count(2)
        expect(llm.locator(".output")).to_contain_text(XSS)  # shown as text ...
        expect(llm.locator(".output .cursor")).to_have_count(0)
        expect(llm.locator(".ttft")).to_contain_text("TTFT")
        expect(llm.locator(".dur")).not_to_be_empty()
        # ... and never turned into markup.
        expect(view.locator("#feed img")).to_have_count(0)

        failed = card(view, "Error: 'ValueError'")
        expect(failed).to_have_attribute("data-status", "failed")
        expect(failed).to_have_class(OPEN)  # a failure opens to show its error
        expect(failed.locator(".section.error")).to_contain_text("upstream returned 503")
        expect(failed.locator(".badge")).to_have_text("failed")

        foreign = card(view, "GET api.weather.example/v1/paris")
        expect(foreign).to_have_attribute("data-status", "success")
        tool = card(view, "get_weather")
        expect(tool.locator(".children").first).to_contain_text("GET api.weather.example")
        expect(tool.locator(".section.input pre.code")).to_contain_text('"city": "Paris"')

        expect(view.locator(".msg.role-user")).to_contain_text("What's the weather in Paris")
        expect(view.locator(".msg.role-assistant")).to_contain_text("bring an umbrella")
        expect(view.locator("#counts")).to_contain_text("steps")

    assert watched.dialogs == [] and late.dialogs == []
    assert watched.problems == [] and late.problems == []
    path = save_screenshot(page, "chat.png")
    if os.environ.get("STEPTRACE_UPDATE_SCREENSHOTS"):
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SCREENSHOT)


def test_collapse_input_and_language_settings_are_honoured(make_channel, open_page):
    channel = make_channel(listen=True)
    watched = open_page(channel.url)
    page = watched.page
    running, release = threading.Event(), threading.Event()

    def app() -> None:
        kept = {"default_open": True, "collapsed_on_success": False}
        with steptrace.Step(name="closed by default"):
            pass
        with steptrace.Step(name="open while running", default_open=True) as step:
            step.stream("working")
            with (
                steptrace.Step(name="quiet parent"),
                steptrace.Step(name="busy child", type="llm", running_title="Drafting") as child,
            ):
                child.stream_token("live preview text")
                running.set()
                release.wait(60)
        with steptrace.Step(name="kept open", **kept) as step:
            step.output = "still visible"
        with steptrace.Step(name="auto collapsed", auto_collapse=True, **kept):
            pass
        with steptrace.Step(name="no input shown", show_input=False, **kept) as step:
            step.input = "private prompt"
            step.output = "ok"
        with steptrace.Step(name="sql input", show_input="sql", **kept) as step:
            step.input = "SELECT name FROM cities WHERE rain > 0.5"
        with steptrace.Step(name="python output", language="python", **kept) as step:
            step.output = "def umbrella(rain):\n    return rain > 0.5  # simple"
        with steptrace.Step(name="toggled", **kept) as step:
            step.output = "the reader closes this one"

    worker = threading.Thread(target=app)
    worker.start()
    try:
        assert running.wait(60)
        expect(card(page, "open while running")).to_have_class(OPEN)
        # Closed cards (no default_open) preview the activity inside them.
        child = card(page, "Drafting")
        expect(child).not_to_have_class(OPEN)
        expect(child.locator(":scope > .preview")).to_have_text("live preview text")
        expect(card(page, "quiet parent").locator(":scope > .preview")).to_have_text(
            "Drafting ▸ live preview text"
        )
    finally:
        release.set()
        worker.join(60)
    expect(card(page, "python output")).to_have_attribute("data-status", "success")

    def is_open(name: str) -> bool:
        return "open" in (card(page, name).get_attribute("class") or "").split()

    expect(card(page, "toggled")).to_have_attribute("data-status", "success")
    assert not is_open("closed by default")
    assert not is_open("open while running")  # collapsed_on_success (the default)
    assert is_open("kept open")
    assert not is_open("auto collapsed")
    assert is_open("no input shown")
    expect(card(page, "no input shown").locator(".section.input")).to_be_hidden()
    expect(card(page, "no input shown")).not_to_contain_text("private prompt")
    sql = card(page, "sql input").locator(".section.input pre.code")
    expect(sql).to_have_attribute("data-lang", "sql")
    expect(sql.locator(".tok-kw").first).to_have_text("SELECT")
    code = card(page, "python output").locator(".section.output pre.code")
    expect(code).to_have_attribute("data-lang", "python")
    expect(code.locator(".tok-kw").first).to_have_text("def")
    expect(code.locator(".tok-com")).to_have_text("# simple")

    # The reader's own choice wins over the automatic rules.
    card(page, "toggled").locator(":scope > .head").click()
    expect(card(page, "toggled")).not_to_have_class(OPEN)
    card(page, "closed by default").locator(":scope > .head").click()
    expect(card(page, "closed by default")).to_have_class(OPEN)
    assert watched.problems == []


def test_hidden_mode_page_shows_messages_only(make_channel, open_page):
    channel = make_channel(listen=True, visibility="hidden")
    watched = open_page(channel.url)
    page = watched.page
    with steptrace.Step(name="user", type="user_message") as message:
        message.output = "Hello"
    with steptrace.Step(name="secret planning", type="run"):
        with steptrace.Step(name="assistant", type="assistant_message") as answer:
            answer.output = "Hi! How can I help?"
    expect(page.locator(".msg.role-assistant")).to_contain_text("How can I help")
    expect(page.locator(".msg.role-user")).to_contain_text("Hello")
    expect(page.locator("article.step")).to_have_count(0)
    expect(page.locator("#mode-chip")).to_contain_text("messages only")
    assert "secret planning" not in page.content()
    assert watched.problems == []


def test_server_sent_events_fallback_in_the_browser(make_channel, open_page):
    channel = make_channel(listen=True)
    watched = open_page(channel.url + "?transport=sse")
    page = watched.page
    expect(page.locator("#conn")).to_contain_text("SSE")
    with steptrace.Step(
        name="over sse", type="llm", default_open=True, collapsed_on_success=False
    ) as step:
        for piece in ["tokens ", "over ", "server-sent ", "events"]:
            step.stream_token(piece)
    expect(card(page, "over sse").locator(".output")).to_contain_text(
        "tokens over server-sent events"
    )
    assert watched.problems == []


def test_a_token_protected_channel_logs_the_page_in_once(make_channel, open_page):
    channel = make_channel(listen=True, token="browser-token-31")
    watched = open_page(channel.url)  # ?token=... -> cookie -> clean URL
    page = watched.page
    assert "token" not in page.url
    with steptrace.Step(
        name="behind a token", type="tool", default_open=True, collapsed_on_success=False
    ) as step:
        step.output = "visible to the holder of the token"
    expect(card(page, "behind a token")).to_contain_text("visible to the holder")
    assert watched.problems == []
