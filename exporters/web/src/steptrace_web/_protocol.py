"""The frames the web channel sends: Chainlit's step events plus three control events.

Every WebSocket text message (and every Server-Sent Event) is one JSON object
``{"event": <name>, "data": <payload>}``. The step events keep Chainlit's names and payloads
(``new_message``, ``update_message``, ``delete_message``, ``stream_start``, ``stream_token``), so
a Chainlit-style client can apply them as they are. The control events are:

* ``hello`` – first frame on every connection: server time, visibility mode, subscribed thread.
* ``snapshot`` – ``{"reason": "join" | "resync", "steps": [...]}``: the full state of the
  subscribed threads as a flat, parents-first list of step dicts (like Chainlit's
  ``resume_thread``). The client replaces what it holds with it; live events follow.
* ``bye`` – the server is shutting down.
"""

from __future__ import annotations

import json
from typing import Any

NEW = "new_message"
UPDATE = "update_message"
DELETE = "delete_message"
STREAM_START = "stream_start"
STREAM_TOKEN = "stream_token"
STEP_EVENTS = frozenset({NEW, UPDATE, DELETE, STREAM_START, STREAM_TOKEN})

HELLO = "hello"
SNAPSHOT = "snapshot"
BYE = "bye"

#: Rough per-frame overhead (JSON keys, quotes) used when accounting buffered bytes.
FRAME_OVERHEAD = 96


def dumps(value: Any) -> str:
    """Compact JSON that never fails: anything unserialisable becomes its ``str``."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


class Frame:
    """One outgoing event, shared by every client it goes to; encoded at most once."""

    __slots__ = ("_text", "data", "event", "step_id")

    def __init__(self, event: str, data: dict[str, Any] | None, step_id: str | None = None):
        self.event = event
        self.data = data
        self.step_id = step_id
        self._text: str | None = None

    @classmethod
    def encoded(cls, event: str, data_json: str) -> Frame:
        """A frame whose ``data`` is already JSON (large snapshots assembled from pieces)."""
        frame = cls(event, None)
        frame._text = '{"event":' + dumps(event) + ',"data":' + data_json + "}"
        return frame

    def encode(self) -> str:
        if self._text is None:
            self._text = dumps({"event": self.event, "data": self.data})
        return self._text

    @property
    def size(self) -> int:
        return len(self.encode())

    def __repr__(self) -> str:
        return f"Frame({self.event!r}, step={self.step_id!r})"


class TokenFrame:
    """A ``stream_token`` frame owned by one client, so later tokens can be merged into it."""

    __slots__ = ("_text", "is_input", "is_sequence", "parts", "size", "step_id", "thread_id")

    event = STREAM_TOKEN

    def __init__(
        self, step_id: str, thread_id: str | None, token: str, is_sequence: bool, is_input: bool
    ):
        self.step_id = step_id
        self.thread_id = thread_id
        self.parts = [token]
        self.is_sequence = is_sequence
        self.is_input = is_input
        self.size = len(token) + FRAME_OVERHEAD
        self._text: str | None = None

    def copy(self) -> TokenFrame:
        """A private copy a client may merge into without touching the shared frame."""
        twin = TokenFrame(self.step_id, self.thread_id, "", self.is_sequence, self.is_input)
        twin.parts = list(self.parts)
        twin.size = self.size
        return twin

    def merge(self, token: str, is_sequence: bool) -> int:
        """Fold a later token of the same step and target in; return the change in size."""
        self._text = None
        if is_sequence:
            before = self.size
            self.parts = [token]
            self.is_sequence = True
            self.size = len(token) + FRAME_OVERHEAD
            return self.size - before
        self.parts.append(token)
        self.size += len(token)
        return len(token)

    @property
    def data(self) -> dict[str, Any]:
        return {
            "id": self.step_id,
            "threadId": self.thread_id,
            "token": "".join(self.parts),
            "isSequence": self.is_sequence,
            "isInput": self.is_input,
        }

    def encode(self) -> str:
        if self._text is None:
            self._text = dumps({"event": STREAM_TOKEN, "data": self.data})
        return self._text

    def __repr__(self) -> str:
        return f"TokenFrame(step={self.step_id!r}, parts={len(self.parts)})"


AnyFrame = Frame | TokenFrame
