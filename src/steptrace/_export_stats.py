"""Export accounting: spans exported, failed, or dropped, made visible instead of silent.

The SDK's ``BatchSpanProcessor`` loses spans in ways a user cannot see without reading logs: its
bounded queue overflows when the app produces spans faster than the exporter sends them, the
exporter gives up on a batch (a 500, or retries exhausted), spans end after shutdown, or shutdown
gives up with spans still queued. :class:`CountingBatchSpanProcessor` keeps the SDK's batching and
worker thread, but admits at most ``max_queue_size`` spans into the queue itself, so it knows
exactly which span it refused, and wraps the exporter to count what each batch came to. Its
shutdown is bounded, so an unreachable backend cannot hold up the exit. ``export_stats()`` sums
every such processor in the process; the first drop logs one warning.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, fields

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

__all__ = ["CountingBatchSpanProcessor", "ExportStats", "export_stats"]

_logger = logging.getLogger("steptrace")

DEFAULT_SHUTDOWN_TIMEOUT_S = 3.0
"""How long shutdown waits for queued spans to be exported before giving up on them."""


@dataclass(frozen=True)
class ExportStats:
    """A snapshot of span export accounting; every count is a number of spans."""

    queued: int = 0
    """Accepted and not yet handed back by the exporter (waiting, or in the batch being sent)."""
    exported: int = 0
    """Delivered: the exporter reported success."""
    failed: int = 0
    """In batches the exporter reported as failed (an error status, retries exhausted)."""
    dropped: int = 0
    """Refused because the queue was full: the app produced spans faster than export drains."""
    dropped_after_shutdown: int = 0
    """Ended after the pipeline was shut down."""
    lost_at_shutdown: int = 0
    """Still queued when shutdown stopped waiting for the exporter."""

    def __add__(self, other: ExportStats) -> ExportStats:
        return ExportStats(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


class _Counters:
    """The counts of one processor, shared with its exporter wrapper, guarded by one lock."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.lock = threading.Lock()
        self.waiting = 0  # in the SDK's queue (never more than its capacity)
        self.sending = 0  # in the batch the exporter is working on
        self.exported = 0
        self.failed = 0
        self.dropped = 0
        self.dropped_after_shutdown = 0
        self.lost_at_shutdown = 0
        self.shut_down = False
        self.books_closed = False

    def snapshot(self) -> ExportStats:
        with self.lock:
            return ExportStats(
                queued=self.waiting + self.sending,
                exported=self.exported,
                failed=self.failed,
                dropped=self.dropped,
                dropped_after_shutdown=self.dropped_after_shutdown,
                lost_at_shutdown=self.lost_at_shutdown,
            )


_warned_lock = threading.Lock()
_warned = False


def _warn_first_drop(capacity: int) -> None:
    """Log one warning per process, the first time any span is dropped for a full queue."""
    global _warned
    with _warned_lock:
        if _warned:
            return
        _warned = True
    _logger.warning(
        "steptrace: span export queue full (%d spans): dropping spans because the app produces "
        "them faster than the exporter sends them. See steptrace.export_stats() for counts; "
        "raise the limit with OTEL_BSP_MAX_QUEUE_SIZE.",
        capacity,
    )


class _CountingExporter(SpanExporter):
    """Wraps the real exporter: every batch it hands back frees room and is counted."""

    def __init__(self, inner: SpanExporter, counters: _Counters) -> None:
        self.inner = inner
        self._counters = counters

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        counters = self._counters
        with counters.lock:
            if not counters.books_closed:  # the batch has left the queue
                counters.waiting -= len(spans)
                counters.sending += len(spans)
        result = SpanExportResult.FAILURE
        try:
            result = self.inner.export(spans)
        except Exception:  # an exporter that raises must not kill the worker thread
            _logger.exception("steptrace: span exporter raised; counting the batch as failed")
        finally:
            self._count(len(spans), result is SpanExportResult.SUCCESS)
        return result

    def _count(self, n: int, ok: bool) -> None:
        counters = self._counters
        with counters.lock:
            if counters.books_closed:
                # A batch that came back after shutdown stopped waiting was not lost after all.
                counters.lost_at_shutdown -= n
            else:
                counters.sending -= n
            if ok:
                counters.exported += n
            else:
                counters.failed += n

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        shutdown = self.inner.shutdown
        try:
            if "timeout_millis" in inspect.signature(shutdown).parameters:
                shutdown(timeout_millis=timeout_millis)  # type: ignore[call-arg]
            else:
                shutdown()
        except Exception:
            _logger.exception("steptrace: span exporter shutdown raised")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        try:
            return bool(self.inner.force_flush(timeout_millis))
        except Exception:
            _logger.exception("steptrace: span exporter force_flush raised")
            return False


_registry_lock = threading.Lock()
_live: weakref.WeakSet[CountingBatchSpanProcessor] = weakref.WeakSet()
_collected = ExportStats()  # totals of processors already garbage-collected


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """A ``BatchSpanProcessor`` that counts what it exports, fails and drops, and exits on time.

    At most ``max_queue_size`` spans wait in its queue (as with the SDK's processor; the batch
    being exported is not in the queue); a span that finds it full is dropped *and counted*
    (the SDK's own queue would evict its oldest span instead, with a warning at most every 20 s
    and no count). Batching, schedule delay, the worker thread and the
    ``OTEL_BSP_*`` variables are the SDK's. ``shutdown()`` waits at most ``shutdown_timeout_s``
    for the exporter, then stops it and counts what was still queued as lost.
    """

    def __init__(
        self,
        span_exporter: SpanExporter,
        max_queue_size: int | None = None,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: float | None = None,
        *,
        shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S,
    ) -> None:
        if max_queue_size is None:
            max_queue_size = BatchSpanProcessor._default_max_queue_size()
        self._counters = _Counters(max_queue_size)
        self._counting_exporter = _CountingExporter(span_exporter, self._counters)
        self._shutdown_timeout_s = shutdown_timeout_s
        super().__init__(
            self._counting_exporter,
            max_queue_size=max_queue_size,
            schedule_delay_millis=schedule_delay_millis,
            max_export_batch_size=max_export_batch_size,
            export_timeout_millis=export_timeout_millis,
        )
        with _registry_lock:
            _live.add(self)
        weakref.finalize(self, _remember_collected, self._counters)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if not (span.context and span.context.trace_flags.sampled):
            return
        counters = self._counters
        with counters.lock:
            if counters.shut_down:
                counters.dropped_after_shutdown += 1
                return
            admitted = counters.waiting < counters.capacity
            if admitted:
                counters.waiting += 1
            else:
                counters.dropped += 1
        if admitted:
            super().on_end(span)
        else:
            _warn_first_drop(counters.capacity)

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Export what is queued, waiting at most ``timeout_s``; then give up and count the rest."""
        counters = self._counters
        with counters.lock:
            if counters.shut_down:
                return
            counters.shut_down = True
        timeout = self._shutdown_timeout_s if timeout_s is None else timeout_s
        finished = threading.Event()

        def shut_down_sdk() -> None:
            try:
                super(CountingBatchSpanProcessor, self).shutdown()
            except Exception:
                _logger.exception("steptrace: span processor shutdown raised")
            finally:
                finished.set()

        try:
            threading.Thread(
                target=shut_down_sdk, name="steptrace-export-shutdown", daemon=True
            ).start()
        except RuntimeError:  # no new threads this late in interpreter shutdown
            shut_down_sdk()
        if not finished.wait(timeout):
            # The backend is not answering: stop the exporter's retries and leave the worker
            # (a daemon thread) behind rather than hold up the exit.
            self._counting_exporter.shutdown(timeout_millis=0)
            finished.wait(min(0.5, timeout))
        with counters.lock:
            counters.books_closed = True
            counters.lost_at_shutdown += counters.waiting + counters.sending
            counters.waiting = counters.sending = 0

    def export_stats(self) -> ExportStats:
        """This processor's counts."""
        return self._counters.snapshot()


def _remember_collected(counters: _Counters) -> None:
    """Keep a garbage-collected processor's counts in the process-wide totals."""
    global _collected
    snapshot = counters.snapshot()
    with _registry_lock:
        _collected = _collected + snapshot


def export_stats() -> ExportStats:
    """Totals over every span pipeline steptrace set up in this process.

    Spans that go through processors the app installed itself are not counted here.
    """
    with _registry_lock:
        total = _collected
        live = list(_live)
    for processor in live:
        total = total + processor.export_stats()
    return total


def _reset_after_fork() -> None:
    """A forked child starts with empty queues (the SDK clears them) and no warning issued."""
    global _warned
    _warned = False
    for processor in list(_live):
        counters = processor._counters
        counters.lock = threading.Lock()
        counters.waiting = counters.sending = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
