"""Which steps may leave the process, enforced on the server (Chainlit's ``cot`` setting).

* ``full`` – every step.
* ``tool_call`` – only ``tool`` steps and messages (types containing ``message``).
* ``hidden`` – only messages.

A hidden step is never sent in any form: not its content, not its name, not a stub. A visible
step whose parent is hidden is attached to its nearest visible ancestor instead, so the tree
the browser sees stays well formed.
"""

from __future__ import annotations

from typing import Literal

from ._store import StepState, StepStore

VisibilityMode = Literal["full", "tool_call", "hidden"]
VISIBILITY_MODES: tuple[str, ...] = ("full", "tool_call", "hidden")


def check_mode(mode: object) -> VisibilityMode:
    if not isinstance(mode, str):
        raise TypeError(f"visibility must be a string, got {type(mode).__name__}")
    if mode not in VISIBILITY_MODES:
        raise ValueError(f"visibility must be one of {', '.join(VISIBILITY_MODES)}; got {mode!r}")
    return mode  # type: ignore[return-value]


def is_message_type(step_type: str) -> bool:
    """Chainlit's rule: anything whose type mentions ``message`` is a chat message."""
    return "message" in step_type


class Visibility:
    """Decides what each step looks like to a viewer under one mode."""

    def __init__(self, mode: str = "full"):
        self.mode: VisibilityMode = check_mode(mode)

    def shows_type(self, step_type: str) -> bool:
        if self.mode == "full" or is_message_type(step_type):
            return True
        return self.mode == "tool_call" and step_type == "tool"

    def shows(self, state: StepState) -> bool:
        return self.shows_type(state.type)

    def visible_parent(self, state: StepState, store: StepStore) -> str | None:
        """The id of the nearest known ancestor a viewer may see, else ``None``.

        A parent the channel never saw (a listener added mid-run) is never named: a client
        would drop a child whose parent it does not have."""
        if self.mode == "full":
            return state.parent_id if state.parent_id in store else None
        for ancestor in store.ancestors(state):
            if self.shows(ancestor):
                return ancestor.id
        return None

    def hidden_frontier(self, removed: list[StepState]) -> list[StepState]:
        """Of a removed subtree (parents first), the visible steps with no visible removed
        ancestor: deleting those on the client removes everything it had of the subtree."""
        top: list[StepState] = []
        covered: set[str] = set()
        for state in removed:
            if state.parent_id in covered:
                covered.add(state.id)
            elif self.shows(state):
                top.append(state)
                covered.add(state.id)
        return top
