"""A readable console exporter for local work: one line per finished step, not a JSON dump."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

_PREVIEW = 80


class ReadableConsoleExporter(SpanExporter):
    """``✓ retrieve [retrieval] 12.3 ms → "3 documents"`` with trace and parent ids."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        out = self._out or sys.stderr
        for span in spans:
            try:
                out.write(format_span(span) + "\n")
            except Exception:
                return SpanExportResult.FAILURE
        try:
            out.flush()
        except Exception:
            pass
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _preview(value: object) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


def format_span(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    failed = span.status is not None and span.status.status_code == StatusCode.ERROR
    mark = "✗" if failed else "✓"
    kind = attributes.get("step.type") or attributes.get("openinference.span.kind") or "span"
    duration = ""
    if span.start_time is not None and span.end_time is not None:
        duration = f" {(span.end_time - span.start_time) / 1e6:.1f} ms"
    ctx = span.get_span_context()
    ids = f"trace={ctx.trace_id:032x} span={ctx.span_id:016x}" if ctx is not None else ""
    if span.parent is not None:
        ids += f" parent={span.parent.span_id:016x}"
    line = f"[steptrace] {mark} {span.name} [{kind}]{duration}"
    output = attributes.get("output.value")
    if output:
        line += f' → "{_preview(output)}"'
    if failed and span.status.description:
        line += f"  error: {_preview(span.status.description)}"
    return f"{line}  ({ids})"
