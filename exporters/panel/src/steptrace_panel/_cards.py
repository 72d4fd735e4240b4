"""steptrace step events -> ``ChatStep`` cards in a ``ChatFeed``.

One card per step: its status (and so its badge and collapse-on-success), its title (the one
steptrace resolved for the current status: ``running_title``, ``success_title``, the error title
on failure, else the step name), its input as a code block when ``show_input`` asks for it, and
its output as a Markdown pane that tokens stream into. A top-level step becomes a card in the
feed's steps message (``ChatFeed.add_step``); a child step's card is nested in its parent's
card. Message-typed steps (``*_message``) are not cards: a Panel app posts its messages itself.

Not thread-safe by itself: ``PanelExporter`` calls it from one place at a time, on the
document's event loop when the feed is served.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from panel.chat import ChatFeed, ChatStep
from panel.layout import ListLike
from panel.pane import Markdown

logger = logging.getLogger("steptrace.panel")

NEW = "new_message"
UPDATE = "update_message"
DELETE = "delete_message"
STREAM_START = "stream_start"
STREAM_TOKEN = "stream_token"

#: Cards remembered for updates; beyond this the oldest are forgotten (they stay on screen).
MAX_REMEMBERED_CARDS = 5_000


@dataclass
class Card:
    """One step's card and the panes steptrace writes into."""

    step: ChatStep
    #: The layout the card sits in: the feed's steps card, or the parent step's card.
    container: ListLike
    output: Markdown | None = None
    input: Markdown | None = None
    input_text: str = ""
    input_language: str = ""


def is_message(step: dict[str, Any]) -> bool:
    return str(step.get("type", "")).endswith("_message")


def title_of(step: dict[str, Any]) -> str:
    """steptrace's resolved title, else the step's name (an untitled card is hard to read)."""
    return str(step.get("title") or step.get("name") or "")


def input_markdown(text: str, language: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{language}\n{text}\n{fence}"


class StepCards:
    """The cards one feed shows, keyed by step id."""

    def __init__(self, feed: ChatFeed, *, user: str | None = None) -> None:
        self.feed = feed
        self.user = user
        self._cards: OrderedDict[str, Card] = OrderedDict()

    def card(self, step_id: str) -> Card | None:
        return self._cards.get(step_id)

    def apply(self, event: str, payload: dict[str, Any]) -> None:
        step_id = payload.get("id")
        if not isinstance(step_id, str):
            return
        if event == STREAM_TOKEN:
            self._token(step_id, payload)
        elif event == DELETE:
            self._delete(step_id)
        elif event in (NEW, UPDATE, STREAM_START) and not is_message(payload):
            card = self._cards.get(step_id)
            if card is None:
                card = self._create(step_id, payload)
            self._update(card, payload)

    # -- events ----------------------------------------------------------------------------

    def _create(self, step_id: str, step: dict[str, Any]) -> Card:
        badges = step.get("badges")
        chat_step = ChatStep(
            default_title=title_of(step),
            status="running",
            collapsed_on_success=bool(step.get("collapsedOnSuccess", True)),
            margin=(5, 1),
            **({"default_badges": badges} if badges else {}),
        )
        parent = self._cards.get(step.get("parentId") or "")
        if parent is not None:
            parent.step.append(chat_step)
            container: ListLike = parent.step
        else:
            self.feed.add_step(chat_step, user=self.user)
            layout = getattr(chat_step, "_layout", None)  # add_step's steps message layout
            container = layout if isinstance(layout, ListLike) else self.feed
        card = Card(step=chat_step, container=container)
        self._cards[step_id] = card
        if len(self._cards) > MAX_REMEMBERED_CARDS:
            self._cards.popitem(last=False)
        return card

    def _update(self, card: Card, step: dict[str, Any]) -> None:
        chat_step = card.step
        show_input = step.get("showInput")
        if show_input and step.get("input"):
            card.input_language = show_input if isinstance(show_input, str) else ""
            self._set_input(card, str(step["input"]))
        output = step.get("output")
        if output:
            self._set_output(card, str(output))
        title = title_of(step)
        if chat_step.default_title != title:
            chat_step.default_title = title
        status = step.get("status")
        if status in ("pending", "running", "success", "failed") and chat_step.status != status:
            chat_step.status = status

    def _token(self, step_id: str, payload: dict[str, Any]) -> None:
        card = self._cards.get(step_id)
        if card is None:
            return
        token = str(payload.get("token", ""))
        if payload.get("isInput"):
            current = "" if payload.get("isSequence") or card.input is None else card.input_text
            self._set_input(card, current + token)
            return
        if payload.get("isSequence") or card.output is None:
            self._set_output(card, token)
        else:
            card.output.object = str(card.output.object) + token
        self._scroll()

    def _delete(self, step_id: str) -> None:
        card = self._cards.pop(step_id, None)
        if card is None:
            return
        doomed = [key for key, other in self._cards.items() if _inside(other.step, card.step)]
        for key in doomed:
            self._cards.pop(key, None)
        if card.step in card.container.objects:
            card.container.remove(card.step)

    # -- panes -----------------------------------------------------------------------------

    def _set_output(self, card: Card, text: str) -> None:
        if card.output is None:
            card.output = Markdown(text, css_classes=["step-message"])
            card.step.append(card.output)
        elif card.output.object != text:
            card.output.object = text

    def _set_input(self, card: Card, text: str) -> None:
        markdown = input_markdown(text, card.input_language)
        if card.input is None:
            card.input = Markdown(markdown, css_classes=["step-input"])
            card.input_text = text
            card.step.insert(0, card.input)
        elif card.input_text != text:
            card.input_text = text
            card.input.object = markdown

    def _scroll(self) -> None:
        try:
            self.feed._chat_log.scroll_to_latest(self.feed.auto_scroll_limit)
        except Exception:  # scrolling is cosmetic; never let it break the mirror
            logger.debug("steptrace-panel: could not scroll the feed", exc_info=True)


def _inside(step: ChatStep, ancestor: ChatStep) -> bool:
    """Whether ``step`` is nested (at any depth) in ``ancestor``'s card."""
    stack = list(ancestor.objects)
    while stack:
        item = stack.pop()
        if item is step:
            return True
        if isinstance(item, ChatStep):
            stack.extend(item.objects)
    return False
