"""A real Chainlit server in a subprocess, and real Socket.IO users talking to it.

The server runs from ``.venv-chainlit`` (Chainlit's dependency tree stays out of ``.venv``);
the users are python-socketio clients doing what Chainlit's React client does: connect to
``/ws/socket.io`` with the same handshake ``auth``, emit ``connection_successful``, send
``client_message`` (and ``stop``). ``ClientTree`` applies the received events exactly as the
React client's message state does (``libs/react-client/src/utils/message.ts``), including its
silent drops, so tests can assert what a user would actually see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).resolve().parent / "app.py"
#: Upper bound for one wait (a guard against hanging, not a performance assertion).
WAIT_S = 90.0

STEP_EVENTS = ("new_message", "update_message", "delete_message", "stream_start", "stream_token")


def chainlit_venv() -> Path:
    """The virtualenv Chainlit runs from (``STEPTRACE_CHAINLIT_VENV`` or ``.venv-chainlit``)."""
    return Path(os.environ.get("STEPTRACE_CHAINLIT_VENV", REPO_ROOT / ".venv-chainlit"))


def chainlit_available() -> bool:
    return (chainlit_venv() / "bin" / "chainlit").exists()


def require_chainlit() -> None:
    """Skip without ``.venv-chainlit`` (fail under ``CI=true``), as for ``.venv-phoenix``."""
    if not chainlit_available():
        message = ".venv-chainlit is missing: run `bash scripts/bootstrap.sh` to create it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_toml(cot: str) -> str:
    """A minimal Chainlit project config (Chainlit would otherwise write its default one)."""
    from_version = "2.12.0"
    return (
        "[project]\nuser_env = []\nsession_timeout = 3600\n\n"
        "[features]\n\n"
        f'[UI]\nname = "steptrace test"\ncot = "{cot}"\n\n'
        f'[meta]\ngenerated_by = "{from_version}"\n'
    )


@dataclass
class ChainlitServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def run_chainlit(app: Path = APP, *, cot: str = "full") -> Iterator[ChainlitServer]:
    """``chainlit run <app> --headless`` on 127.0.0.1 and a free port, in a private app root."""
    venv = chainlit_venv()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="steptrace-chainlit-") as root:
        root_path = Path(root)
        (root_path / ".chainlit").mkdir()
        (root_path / ".chainlit" / "config.toml").write_text(config_toml(cot))
        (root_path / "chainlit.md").write_text("steptrace test app\n")
        log_path = root_path / "server.log"
        env = {
            **os.environ,
            "CHAINLIT_APP_ROOT": root,
            "PYTHONUNBUFFERED": "1",
            "OTEL_TRACES_EXPORTER": "none",
            "VIRTUAL_ENV": str(venv),
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        env.pop("PYTHONPATH", None)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    str(venv / "bin" / "chainlit"),
                    "run",
                    str(app),
                    "--headless",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                cwd=root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = ChainlitServer(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
        try:
            _wait_until_serving(server)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_serving(server: ChainlitServer) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"chainlit exited with {server.process.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/project/settings?language=en-US", timeout=2).status_code:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"chainlit did not start within {WAIT_S}s:\n{server.log()}")
        time.sleep(0.2)


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


@dataclass
class ClientTree:
    """The Chainlit React client's message tree, fed the same events in the same order."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    roots: list[str] = field(default_factory=list)
    children: dict[str, list[str]] = field(default_factory=dict)
    #: Events the real client would have silently ignored: (event, id, reason).
    dropped: list[tuple[str, str, str]] = field(default_factory=list)

    def apply(self, event: str, data: dict[str, Any]) -> None:
        step_id = data.get("id")
        if event in ("new_message", "stream_start"):
            if step_id in self.nodes:
                self.nodes[step_id].update(data)
                return
            parent_id = data.get("parentId")
            if parent_id is None:
                self.roots.append(step_id)
            elif parent_id in self.nodes:
                self.children.setdefault(parent_id, []).append(step_id)
            else:
                self.dropped.append((event, step_id, f"unknown parent {parent_id}"))
                return
            self.nodes[step_id] = dict(data)
        elif event == "update_message":
            if step_id not in self.nodes:
                self.dropped.append((event, step_id, "unknown id"))
                return
            self.nodes[step_id].update(data)
        elif event == "stream_token":
            node = self.nodes.get(step_id)
            if node is None:
                self.dropped.append((event, step_id, "unknown id"))
                return
            field_name = "input" if data.get("isInput") else "output"
            if data.get("isSequence"):
                node[field_name] = data["token"]
            else:
                node[field_name] = (node.get(field_name) or "") + data["token"]
        elif event == "delete_message":
            self._delete(step_id)

    def _delete(self, step_id: str) -> None:
        for child in self.children.pop(step_id, []):
            self._delete(child)
        self.nodes.pop(step_id, None)
        if step_id in self.roots:
            self.roots.remove(step_id)
        for siblings in self.children.values():
            if step_id in siblings:
                siblings.remove(step_id)

    def by_name(self, name: str) -> list[dict[str, Any]]:
        return [node for node in self.nodes.values() if node.get("name") == name]

    def one(self, name: str) -> dict[str, Any]:
        found = self.by_name(name)
        assert len(found) == 1, f"expected one step {name!r}, got {len(found)}: {found}"
        return found[0]

    def parent_of(self, step_id: str) -> dict[str, Any] | None:
        parent_id = self.nodes[step_id].get("parentId")
        return self.nodes.get(parent_id) if parent_id else None

    def path(self, step_id: str) -> list[str]:
        """Names from the root down to ``step_id``."""
        names = []
        node: dict[str, Any] | None = self.nodes[step_id]
        while node is not None:
            names.append(node.get("name"))
            node = self.parent_of(node["id"])
        return list(reversed(names))


class ChainlitUser:
    """One browser tab's worth of Chainlit client, over a real Socket.IO connection."""

    def __init__(self, server: ChainlitServer) -> None:
        self.server = server
        self.session_id = str(uuid.uuid4())
        self.events: list[tuple[str, Any]] = []
        self.tree = ClientTree()
        self._changed = asyncio.Condition()
        self._sio = socketio.AsyncClient(reconnection=False)
        self._sio.on("*", self._on_event)

    async def _on_event(self, event: str, data: Any = None) -> None:
        self.events.append((event, data))
        if event in STEP_EVENTS and isinstance(data, dict):
            self.tree.apply(event, data)
        async with self._changed:
            self._changed.notify_all()

    async def connect(self) -> None:
        await self._sio.connect(
            self.server.url,
            socketio_path="/ws/socket.io",
            transports=["websocket"],
            auth={
                "clientType": "webapp",
                "sessionId": self.session_id,
                "threadId": None,
                "userEnv": json.dumps({}),
                "chatProfile": None,
            },
            wait_timeout=30,
        )
        await self._sio.emit("connection_successful")

    async def close(self) -> None:
        await self._sio.disconnect()

    async def send(self, text: str) -> str:
        """Send a user message as the React client does; it shows it locally at once."""
        message_id = str(uuid.uuid4())
        message = {
            "id": message_id,
            "threadId": "",
            "name": "User",
            "type": "user_message",
            "output": text,
            "createdAt": now_iso(),
        }
        self.tree.apply("new_message", dict(message))
        await self._sio.emit("client_message", {"message": message, "fileReferences": []})
        return message_id

    async def stop(self) -> None:
        await self._sio.emit("stop")

    async def wait_for(self, predicate: Callable[[], Any], what: str) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every event); return its value."""

        async def satisfied() -> Any:
            async with self._changed:
                while not (result := predicate()):
                    await self._changed.wait()
                return result

        try:
            return await asyncio.wait_for(satisfied(), WAIT_S)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"never saw {what}; events: {self.events[-30:]}\nserver log:\n"
                f"{self.server.log()[-3000:]}"
            ) from None

    def step_events(self, step_id: str) -> list[str]:
        return [
            event
            for event, data in self.events
            if event in STEP_EVENTS and isinstance(data, dict) and data.get("id") == step_id
        ]

    def assistant_messages(self) -> list[str]:
        return [
            node.get("output", "")
            for node in self.tree.nodes.values()
            if node.get("type") == "assistant_message"
        ]

    def ended(self, name: str) -> dict[str, Any] | None:
        """The step ``name`` once its end update arrived (``end`` set, not streaming)."""
        for node in self.tree.by_name(name):
            if node.get("end") and not node.get("streaming"):
                return node
        return None
