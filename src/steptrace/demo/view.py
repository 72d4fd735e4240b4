"""The terminal view: the turn's step tree, live, built only from ``steptrace.add_listener`` events.

:class:`StepTree` is a listener (it receives the same Chainlit-protocol events as the web chat)
and a rich renderable: ``rich.live.Live`` redraws it several times a second while steps run,
with a spinner for running steps, ✓/✗ and durations for ended ones, TTFT for streamed ones,
and the answer of the ``llm`` step appearing token by token below the tree.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
TYPE_STYLES = {
    "run": "magenta",
    "retrieval": "blue",
    "tool": "yellow",
    "llm": "cyan",
    "embedding": "blue",
    "rerank": "blue",
}


@dataclass
class _Node:
    id: str
    parent_id: str | None
    name: str
    type: str
    status: str = "running"
    title: str = ""
    started: float | None = None
    duration: float | None = None
    ttft: float | None = None
    output: str = ""
    streaming: bool = False
    ended: bool = False
    children: list[str] = field(default_factory=list)


def _epoch(iso: Any) -> float | None:
    if not isinstance(iso, str) or not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def format_seconds(seconds: float | None) -> str:
    """``850 ms``, ``1.24 s``, ``12.3 s``, ``2m 05s``."""
    if seconds is None or seconds < 0:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)}m {round(seconds % 60):02d}s"


class StepTree:
    """The live step tree of the current turn: a steptrace listener and a rich renderable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nodes: dict[str, _Node] = {}
        self._roots: list[str] = []

    # -- listener (steptrace's dispatcher thread) ----------------------------------------------

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        with self._lock:
            step_id = payload.get("id")
            if not isinstance(step_id, str):
                return
            node = self._nodes.get(step_id)
            if event == "stream_token":
                if node is not None and not payload.get("isInput"):
                    token = str(payload.get("token") or "")
                    node.output = token if payload.get("isSequence") else node.output + token
                    node.streaming = not node.ended
                return
            if event == "delete_message":
                self._delete(step_id)
                return
            if node is None:
                if event != "new_message":
                    return  # an update of a step from an earlier turn
                node = self._add(step_id, payload)
            self._apply(node, payload, event)

    def _add(self, step_id: str, payload: dict[str, Any]) -> _Node:
        parent_id = payload.get("parentId")
        node = _Node(
            id=step_id,
            parent_id=parent_id if parent_id in self._nodes else None,
            name=str(payload.get("name") or payload.get("type") or "step"),
            type=str(payload.get("type") or "undefined"),
        )
        self._nodes[step_id] = node
        if node.parent_id is None:
            self._roots.append(step_id)
        else:
            self._nodes[node.parent_id].children.append(step_id)
        return node

    @staticmethod
    def _apply(node: _Node, payload: dict[str, Any], event: str) -> None:
        node.name = str(payload.get("name") or node.name)
        node.type = str(payload.get("type") or node.type)
        node.status = str(payload.get("status") or node.status)
        node.title = str(payload.get("title") or "")
        node.started = _epoch(payload.get("start")) or node.started
        duration = payload.get("duration")
        node.duration = duration if isinstance(duration, (int, float)) else node.duration
        ttft = payload.get("timeToFirstToken")
        node.ttft = ttft if isinstance(ttft, (int, float)) else node.ttft
        output = payload.get("output")
        if isinstance(output, str):
            node.output = output
        node.ended = bool(payload.get("end"))
        node.streaming = event == "stream_start" or (
            bool(payload.get("streaming")) and not node.ended
        )
        if payload.get("isError") and node.status != "failed":
            node.status = "failed"

    def _delete(self, step_id: str) -> None:
        node = self._nodes.pop(step_id, None)
        if node is None:
            return
        for child in list(node.children):
            self._delete(child)
        siblings = self._nodes[node.parent_id].children if node.parent_id in self._nodes else None
        for group in (siblings, self._roots):
            if group is not None and step_id in group:
                group.remove(step_id)

    # -- queries --------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the previous turn's steps."""
        with self._lock:
            self._nodes.clear()
            self._roots.clear()

    def names(self) -> list[str]:
        with self._lock:
            return [node.name for node in self._nodes.values()]

    # -- rendering (rich's refresh thread, or the caller) ---------------------------------------

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        with self._lock:
            rows = list(self._rows())
            answer = self._answer()
        yield self._table(rows, options.max_width)
        if answer is not None:
            yield answer

    def _rows(self) -> Any:
        """(prefix, node) in tree order, with the box-drawing prefix of each depth."""
        stack: list[tuple[str, str, bool, bool]] = [
            ("", root, i == len(self._roots) - 1, True) for i, root in enumerate(self._roots)
        ][::-1]
        while stack:
            indent, step_id, last, is_root = stack.pop()
            node = self._nodes.get(step_id)
            if node is None:
                continue
            prefix = "" if is_root else indent + ("└─ " if last else "├─ ")
            yield prefix, node
            child_indent = "" if is_root else indent + ("   " if last else "│  ")
            children = node.children
            for i in range(len(children) - 1, -1, -1):
                stack.append((child_indent, children[i], i == len(children) - 1, False))

    def _table(self, rows: list[tuple[str, _Node]], width: int) -> Table:
        now = time.time()
        cells = []
        for prefix, node in rows:
            label = Text(prefix, style="grey50")
            label.append_text(self._status_icon(node))
            label.append(" ")
            label.append(node.name, style="bold")
            kind = Text(node.type, style=f"dim {TYPE_STYLES.get(node.type, 'white')}")
            ttft = Text(f"ttft {format_seconds(node.ttft)}" if node.ttft else "", style="cyan")
            if node.ended or node.duration is not None:
                duration = Text(format_seconds(node.duration), style="green")
            elif node.started is not None:
                duration = Text(format_seconds(max(0.0, now - node.started)), style="yellow")
            else:
                duration = Text("")
            cells.append((label, kind, self._detail(node), ttft, duration))
        # Every column but the detail keeps its full width and the detail gets what is left;
        # in a narrow terminal the type column goes first, then the detail.
        label_w, kind_w, ttft_w, duration_w = (
            max((cell[i].cell_len for cell in cells), default=0) for i in (0, 1, 3, 4)
        )
        duration_w = max(duration_w, 7)
        core = label_w + ttft_w + duration_w + 2
        show_kind = width >= core + kind_w + 1 + 16
        detail_w = width - core - (kind_w + 1 if show_kind else 0) - 1
        show_detail = detail_w >= 12
        table = Table.grid(padding=(0, 1, 0, 0), expand=False)
        table.add_column(no_wrap=True, width=label_w)
        if show_kind:
            table.add_column(no_wrap=True, width=kind_w)
        if show_detail:
            table.add_column(no_wrap=True, overflow="ellipsis", max_width=detail_w)
        table.add_column(no_wrap=True, justify="right", width=ttft_w)
        table.add_column(no_wrap=True, justify="right", width=duration_w)
        for label, kind, detail, ttft, duration in cells:
            row = [label]
            if show_kind:
                row.append(kind)
            if show_detail:
                row.append(detail)
            table.add_row(*row, ttft, duration)
        return table

    @staticmethod
    def _status_icon(node: _Node) -> Text:
        if node.status == "failed":
            return Text("✗", style="bold red")
        if node.status == "success":
            return Text("✓", style="bold green")
        if node.status == "pending":
            return Text("○", style="dim")
        return Text(SPINNER[int(time.monotonic() * 12) % len(SPINNER)], style="bold yellow")

    @staticmethod
    def _detail(node: _Node) -> Text:
        if node.status == "failed":
            first = node.output.strip().splitlines()[0] if node.output.strip() else node.title
            return Text(first, style="red")
        if node.title and node.title != node.name:
            return Text(node.title, style="dim" if node.status == "running" else "")
        if node.type == "llm":
            return Text("streaming…" if node.streaming else "", style="dim")
        return Text("")

    def _answer(self) -> RenderableType | None:
        llm = [node for node in self._nodes.values() if node.type == "llm"]
        if not llm:
            return None
        node = llm[-1]
        text = Text(node.output)
        if not node.ended:
            text.append("▌", style="bold cyan")
        failed = node.status == "failed"
        border = "red" if failed else "green" if node.ended else "cyan"
        return Panel(
            text,
            title=Text(f"{'failed' if failed else 'answer'} · {node.name}", style="bold"),
            title_align="left",
            border_style=border,
            padding=(0, 1),
        )

    def render(self) -> RenderableType:
        """The tree and the answer as one renderable (for ``console.print``)."""
        return Group(self)
