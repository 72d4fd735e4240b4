"""What one Chainlit session's socket receives for each steptrace event.

steptrace already speaks Chainlit's step protocol; this module adapts it to what a Chainlit
client needs from *one* session:

- The client silently drops a step whose parent it does not know, and updates or tokens for a
  step it has not seen. So the view remembers what it has shown: a step's first event always
  goes out as a create (``new_message``/``stream_start``), an update for an unseen step becomes
  a create, and tokens for an unseen step are dropped.
- A top-level steptrace step is shown under the Chainlit step current where it was created
  (the ``on_message`` run or an open ``cl.Step``), as a ``cl.Step`` would be. So is a step whose
  parent this session was never shown (e.g. a foreign span it was not routed, or a step begun
  before ``enable()``): the client would otherwise drop it. The parent is pinned per step, so
  every later update carries the same ``parentId``.
- ``config.ui.cot == "hidden"``: like Chainlit, steps other than messages and Chainlit's own
  runs go out as stubs without input or output, and their tokens are not sent.
  ``"tool_call"`` and ``"full"`` send everything (the Chainlit client filters for ``tool_call``).
"""

from __future__ import annotations

from typing import Any

NEW = "new_message"
UPDATE = "update_message"
DELETE = "delete_message"
STREAM_START = "stream_start"
STREAM_TOKEN = "stream_token"

#: Chainlit's own run steps (``chainlit.context.CL_RUN_NAMES``), shown in full even when hidden.
CHAINLIT_RUN_NAMES = frozenset({"on_chat_start", "on_message", "on_audio_end"})
MESSAGE_TYPES = frozenset({"user_message", "assistant_message"})

#: Steps remembered per session; beyond this the oldest ended ones are forgotten.
MAX_REMEMBERED_STEPS = 20_000

Outgoing = list[tuple[str, dict[str, Any]]]


def shown_in_hidden_cot(step: dict[str, Any]) -> bool:
    """Chainlit's ``check_add_step_in_cot``: messages and Chainlit runs stay visible."""
    step_type = step.get("type")
    if step_type in MESSAGE_TYPES:
        return True
    return step_type == "run" and step.get("name") in CHAINLIT_RUN_NAMES


def stub(step: dict[str, Any]) -> dict[str, Any]:
    """Chainlit's hidden-CoT stub: identity and place in the tree, no content."""
    return {
        "type": step.get("type"),
        "name": step.get("name"),
        "id": step.get("id"),
        "parentId": step.get("parentId"),
        "threadId": step.get("threadId"),
        "input": "",
        "output": "",
    }


class SessionView:
    """The steps one Chainlit session has been shown, and the parent each was shown under."""

    def __init__(self) -> None:
        #: step id -> parentId it was shown with (insertion-ordered: oldest first).
        self._parents: dict[str, str | None] = {}
        self._hidden: set[str] = set()

    def knows(self, step_id: str) -> bool:
        return step_id in self._parents

    def translate(
        self, event: str, payload: dict[str, Any], *, anchor_id: str | None, cot: str
    ) -> Outgoing:
        """The socket events (``(event, data)``) this session gets for one steptrace event.

        ``anchor_id`` is the Chainlit step a new top-level step is shown under.
        """
        step_id = payload.get("id")
        if not isinstance(step_id, str):
            return []
        if event == STREAM_TOKEN:
            return self._token(step_id, payload)
        if event == DELETE:
            return self._delete(step_id, payload)
        if event not in (NEW, UPDATE, STREAM_START):
            return []

        known = step_id in self._parents
        if known:
            parent_id = self._parents[step_id]
        else:
            parent_id = payload.get("parentId")
            if parent_id not in self._parents:
                # Top-level, or under something this client never got (a foreign span such as
                # FastAPI's connection-long websocket span, or a step from before enable()).
                parent_id = anchor_id
            self._remember(step_id, parent_id)
        step = dict(payload)
        step["parentId"] = parent_id

        if cot == "hidden" and not shown_in_hidden_cot(step):
            self._hidden.add(step_id)
            return [(NEW if not known else UPDATE, stub(step))]
        self._hidden.discard(step_id)

        if not known:
            # A step's first appearance must be a create: the client ignores anything else.
            return [(STREAM_START if event == STREAM_START else NEW, step)]
        return [(event, step)]

    def _token(self, step_id: str, payload: dict[str, Any]) -> Outgoing:
        if step_id not in self._parents or step_id in self._hidden:
            return []
        return [
            (
                STREAM_TOKEN,
                {
                    "id": step_id,
                    "token": payload.get("token", ""),
                    "isSequence": bool(payload.get("isSequence")),
                    "isInput": bool(payload.get("isInput")),
                },
            )
        ]

    def _delete(self, step_id: str, payload: dict[str, Any]) -> Outgoing:
        if step_id not in self._parents:
            return []
        # The client removes the whole subtree; forget it too, so a late event re-creates.
        doomed = {step_id}
        changed = True
        while changed:
            changed = False
            for child, parent in self._parents.items():
                if parent in doomed and child not in doomed:
                    doomed.add(child)
                    changed = True
        for gone in doomed:
            self._parents.pop(gone, None)
            self._hidden.discard(gone)
        step = dict(payload)
        return [(DELETE, step)]

    def _remember(self, step_id: str, parent_id: str | None) -> None:
        self._parents[step_id] = parent_id
        if len(self._parents) > MAX_REMEMBERED_STEPS:
            oldest = next(iter(self._parents))
            del self._parents[oldest]
            self._hidden.discard(oldest)
