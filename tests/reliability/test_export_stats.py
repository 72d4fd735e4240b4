"""Export accounting: every span is exported, failed, dropped or lost, and each count is visible.

``CountingBatchSpanProcessor`` on a private TracerProvider, in front of the real OTLP exporters,
against real local receivers. At any moment ``queued + exported + failed + dropped`` is the
number of spans ended (plus ``lost_at_shutdown`` after shutdown).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider

from steptrace import _export_stats
from steptrace._export_stats import CountingBatchSpanProcessor, ExportStats, export_stats

from .receivers import BlackholeServer, OtlpHttpReceiver

pytestmark = pytest.mark.integration


def pipeline(endpoint: str, **options: float) -> tuple[TracerProvider, CountingBatchSpanProcessor]:
    exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=2)
    processor = CountingBatchSpanProcessor(exporter, **options)  # type: ignore[arg-type]
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return provider, processor


def end_spans(provider: TracerProvider, count: int, prefix: str = "span") -> None:
    tracer = provider.get_tracer("test")
    for i in range(count):
        with tracer.start_as_current_span(f"{prefix}-{i}"):
            pass


def accounted(stats: ExportStats) -> int:
    return stats.queued + stats.exported + stats.failed + stats.dropped + stats.lost_at_shutdown


@pytest.fixture
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As in a new process: the one-time drop warning not given yet."""
    monkeypatch.setattr(_export_stats, "_warned", False)
    yield


def test_every_exported_span_is_counted() -> None:
    with OtlpHttpReceiver(keep_spans=False) as receiver:
        provider, processor = pipeline(receiver.endpoint)
        end_spans(provider, 300)
        assert provider.force_flush()
        stats = processor.export_stats()
        assert stats == ExportStats(exported=300)
        assert receiver.span_count == 300
        provider.shutdown()
        assert processor.export_stats() == ExportStats(exported=300)


def test_queue_full_drops_are_counted_and_warned_once(
    fresh_warning: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with BlackholeServer() as blackhole:
        provider, processor = pipeline(
            blackhole.endpoint(),
            max_queue_size=50,
            max_export_batch_size=10,
            schedule_delay_millis=10,
        )
        end_spans(provider, 2_000)
        stats = processor.export_stats()
        # The backend hangs: one batch (10) is stuck in the exporter, 50 wait, the rest are refused.
        assert stats.queued <= 50 + 10
        assert stats.dropped >= 2_000 - 50 - 10
        assert accounted(stats) == 2_000

        started = time.monotonic()
        processor.shutdown(timeout_s=1.0)
        assert time.monotonic() - started < 5.0  # bounded, though the exporter is stuck
        after = processor.export_stats()
        assert after.queued == 0 and after.lost_at_shutdown >= 1
        assert accounted(after) == 2_000

    drop_warnings = [r for r in caplog.records if "queue full" in r.getMessage()]
    assert len(drop_warnings) == 1 and drop_warnings[0].name == "steptrace"
    # The SDK's own per-span "Queue full, dropping Span." never fires: its queue never fills.
    assert not [r for r in caplog.records if "Queue full, dropping" in r.getMessage()]


def test_batches_refused_by_the_backend_are_counted_as_failed() -> None:
    with OtlpHttpReceiver([500], keep_spans=False) as receiver:
        provider, processor = pipeline(receiver.endpoint, schedule_delay_millis=60_000)
        end_spans(provider, 10, "refused")
        provider.force_flush()
        assert processor.export_stats() == ExportStats(failed=10)
        end_spans(provider, 10, "accepted")
        provider.force_flush()
        assert processor.export_stats() == ExportStats(exported=10, failed=10)
        assert (receiver.rejected_span_count, receiver.span_count) == (10, 10)
        provider.shutdown()


def test_a_batch_delivered_after_retries_counts_as_exported() -> None:
    with OtlpHttpReceiver([503], keep_spans=False, retry_after=0) as receiver:
        provider, processor = pipeline(receiver.endpoint, schedule_delay_millis=60_000)
        end_spans(provider, 20)
        provider.force_flush()
        assert processor.export_stats() == ExportStats(exported=20)
        assert receiver.answered == [503, 200]
        provider.shutdown()


def test_spans_ended_after_shutdown_are_counted() -> None:
    with OtlpHttpReceiver(keep_spans=False) as receiver:
        provider, processor = pipeline(receiver.endpoint)
        tracer = provider.get_tracer("test")
        late = tracer.start_span("ends after shutdown")
        end_spans(provider, 5)
        provider.shutdown()
        late.end()
        assert processor.export_stats() == ExportStats(exported=5, dropped_after_shutdown=1)


def test_export_stats_sums_every_pipeline() -> None:
    before = export_stats()
    with OtlpHttpReceiver([500], keep_spans=False) as receiver:
        first, _ = pipeline(receiver.endpoint, schedule_delay_millis=60_000)
        second, _ = pipeline(receiver.endpoint, schedule_delay_millis=60_000)
        end_spans(first, 7)
        first.force_flush()  # answered 500
        end_spans(second, 4)
        second.force_flush()
        total = export_stats()
        assert (total.failed - before.failed, total.exported - before.exported) == (7, 4)
        first.shutdown()
        second.shutdown()
