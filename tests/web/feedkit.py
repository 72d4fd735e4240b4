"""Helpers for the web channel tests: real WebSocket clients, hand-made step events, and a
reference client model that applies frames the way a Chainlit-style client does."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import steptrace_web
from browser import CHROMIUM_ARGS, chromium_path  # noqa: F401 (re-exported)
from websockets.asyncio.client import ClientConnection, connect

OUTPUT_DIR = Path(__file__).resolve().parents[2] / "test-output" / "web"


class FeedState:
    """What a client knows after applying frames in order, plus every ordering violation seen.

    A violation is anything a Chainlit client would silently get wrong: an update or token for
    a step it does not have, or a step whose parent it does not have yet.
    """

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}
        self.frames: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.violations: list[str] = []
        self.snapshots: list[str] = []
        self.hello: dict[str, Any] | None = None

    def apply_text(self, text: str) -> dict[str, Any]:
        self.raw.append(text)
        frame = json.loads(text)
        self.apply(frame)
        return frame

    def apply(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        event, data = frame["event"], frame["data"]
        if event == "hello":
            self.hello = data
        elif event == "snapshot":
            self.snapshots.append(data["reason"])
            self.steps = {}
            for step in data["steps"]:
                self._create(dict(step), "snapshot")
        elif event in ("new_message", "stream_start"):
            if data["id"] in self.steps:
                self.steps[data["id"]].update(data)
            else:
                self._create(dict(data), event)
        elif event == "update_message":
            if data["id"] not in self.steps:
                self.violations.append(f"update before create: {data['id']}")
                return
            self.steps[data["id"]].update(data)
        elif event == "stream_token":
            step = self.steps.get(data["id"])
            if step is None:
                self.violations.append(f"token before create: {data['id']}")
                return
            field = "input" if data["isInput"] else "output"
            before = "" if data["isSequence"] else step.get(field, "")
            step[field] = before + data["token"]
        elif event == "delete_message":
            self._delete(data["id"])

    def _create(self, step: dict[str, Any], how: str) -> None:
        parent = step.get("parentId")
        if parent is not None and parent not in self.steps:
            self.violations.append(f"{how}: child {step['id']} before its parent {parent}")
        self.steps[step["id"]] = step

    def _delete(self, step_id: str) -> None:
        doomed = {step_id}
        changed = True
        while changed:
            changed = False
            for sid, step in self.steps.items():
                if sid not in doomed and step.get("parentId") in doomed:
                    doomed.add(sid)
                    changed = True
        for sid in doomed:
            self.steps.pop(sid, None)

    def events(self, name: str) -> list[dict[str, Any]]:
        return [f["data"] for f in self.frames if f["event"] == name]

    def text(self) -> str:
        return "\n".join(self.raw)


class Feed:
    """A live WebSocket subscription to a channel, applying frames to a :class:`FeedState`."""

    def __init__(self, ws: ClientConnection):
        self.ws = ws
        self.state = FeedState()

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.state.apply_text(await asyncio.wait_for(self.ws.recv(), timeout))

    async def until(self, predicate: Any, timeout: float = 20.0) -> FeedState:
        """Read frames until ``predicate(state)`` holds (fails after ``timeout`` seconds)."""

        async def loop() -> None:
            while not predicate(self.state):
                self.state.apply_text(await self.ws.recv())

        await asyncio.wait_for(loop(), timeout)
        return self.state


def feed_url(channel: steptrace_web.WebChannel, thread: str | None = None) -> str:
    url = f"ws://127.0.0.1:{channel.port}/ws"
    return url + (f"?thread={thread}" if thread else "")


async def open_feed(
    channel: steptrace_web.WebChannel, thread: str | None = None, **kwargs: Any
) -> Feed:
    kwargs.setdefault("max_size", None)
    ws = await connect(feed_url(channel, thread), proxy=None, **kwargs)
    feed = Feed(ws)
    await feed.until(lambda s: s.snapshots)  # hello + the join snapshot
    return feed


def step(
    step_id: str,
    *,
    parent: str | None = None,
    thread: str | None = None,
    type: str = "undefined",
    name: str | None = None,
    output: str = "",
    end: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A Chainlit step dict as steptrace's listener delivers it."""
    data = {
        "id": step_id,
        "name": name or step_id,
        "type": type,
        "threadId": thread,
        "parentId": parent,
        "input": "",
        "output": output,
        "isError": False,
        "streaming": False,
        "metadata": {},
        "tags": None,
        "createdAt": "2025-01-01T00:00:00.000000Z",
        "start": "2025-01-01T00:00:00.000000Z",
        "end": "2025-01-01T00:00:01.000000Z" if end else None,
        "status": "success" if end else "running",
        "title": "",
    }
    data.update(extra)
    return data


def token(step_id: str, text: str, *, sequence: bool = False, is_input: bool = False) -> dict:
    return {"id": step_id, "token": text, "isSequence": sequence, "isInput": is_input}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
