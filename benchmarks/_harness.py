"""Measurement helpers shared by every benchmark script (stdlib only: runs in any venv).

Timing: a *batch* is a function that runs ``n`` operations and returns the nanoseconds they took
(measured inside, with ``time.perf_counter_ns``, so event-loop start-up stays outside). A measure
runs one warm-up batch, then ``runs`` batches, and reports the median time per operation.
Memory: the peak of ``tracemalloc`` (Python allocations only) or of the process RSS, sampled by a
thread, each over a baseline taken just before the workload.
"""

from __future__ import annotations

import gc
import os
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field

Batch = Callable[[int], int]
"""Runs ``n`` operations, returns the elapsed nanoseconds."""


@dataclass
class Timing:
    """Median time per operation over several runs, with the spread kept for the record."""

    per_op_ns: float
    run_per_op_ns: list[float] = field(default_factory=list)

    @property
    def spread(self) -> float:
        """(max - min) / median over the runs: how noisy this measure was."""
        if not self.run_per_op_ns or not self.per_op_ns:
            return 0.0
        return (max(self.run_per_op_ns) - min(self.run_per_op_ns)) / self.per_op_ns


def measure(batch: Batch, ops: int, runs: int = 7, warmup_ops: int | None = None) -> Timing:
    """Median nanoseconds per operation of ``batch`` over ``runs`` runs of ``ops`` operations."""
    batch(warmup_ops if warmup_ops is not None else max(1, ops // 2))
    per_op = []
    for _ in range(runs):
        gc.collect()
        per_op.append(batch(ops) / ops)
    return Timing(statistics.median(per_op), per_op)


def calibrate(batch: Batch, target_s: float, min_ops: int = 3, max_ops: int = 20_000) -> int:
    """How many operations make one run of ``batch`` last about ``target_s`` seconds."""
    ops = min_ops
    while True:
        elapsed_s = batch(ops) / 1e9
        if elapsed_s >= target_s / 4 or ops >= max_ops:
            break
        ops *= 4
    per_op_s = max(elapsed_s / ops, 1e-9)
    return max(min_ops, min(max_ops, round(target_s / per_op_s)))


def interleaved(batches: dict[str, tuple[Batch, int]], runs: int = 7) -> dict[str, Timing]:
    """Measure several ``(batch, ops)`` run by run in turn, so that drift (CPU frequency,
    neighbours on a shared machine) hits each alike: the ratios between them are what matters."""
    for batch, ops in batches.values():
        batch(max(1, ops // 2))
    per_op: dict[str, list[float]] = {name: [] for name in batches}
    for _ in range(runs):
        for name, (batch, ops) in batches.items():
            gc.collect()
            per_op[name].append(batch(ops) / ops)
    return {name: Timing(statistics.median(v), v) for name, v in per_op.items()}


def tracemalloc_peak(workload: Callable[[], object]) -> int:
    """Peak bytes of Python allocations made while ``workload`` ran, over what was live before."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        workload()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return max(0, peak - base)


def current_rss() -> int:
    """Resident set size of this process in bytes (Linux /proc; psutil elsewhere)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.Process().memory_info().rss)


def rss_peak(workload: Callable[[], object], interval_s: float = 0.002) -> int:
    """Peak RSS growth in bytes while ``workload`` ran, sampled every ``interval_s`` by a thread."""
    gc.collect()
    base = current_rss()
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, current_rss())
            time.sleep(interval_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        workload()
    finally:
        peak = max(peak, current_rss())
        done.set()
        sampler.join()
    return max(0, peak - base)


def fmt_ns(ns: float) -> str:
    """A duration for a table: ns, µs or ms with 3 significant digits."""
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.3g} µs"
    return f"{ns / 1_000_000:.3g} ms"


def fmt_bytes(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"
