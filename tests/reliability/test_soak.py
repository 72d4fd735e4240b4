"""100,000 steps with streamed tokens and a live listener keep memory flat.

``soak_app.py`` runs in a fresh interpreter and records, every 10,000 steps (after draining the
bus and the exporter, and a garbage collection), the live Python heap (tracemalloc) and the RSS.
After a 20,000-step warm-up the heap may not grow by more than ``MAX_HEAP_GROWTH``: 2 MiB over
80,000 further steps is about 26 bytes per step, far below the smallest leak per step that
matters (one retained span, step or event dict is several hundred bytes). RSS is bounded
loosely, since it also holds allocator arenas from the export queue's high-water mark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SOAK_APP = Path(__file__).resolve().parent / "soak_app.py"
STEPS = 100_000
WARM_UP_STEPS = 20_000
MAX_HEAP_GROWTH = 2 * 1024 * 1024
MAX_RSS_GROWTH = 64 * 1024 * 1024


def test_soak_of_100k_streamed_steps_keeps_memory_flat() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, str(SOAK_APP), "--steps", str(STEPS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    soak = json.loads(result.stdout.strip().splitlines()[-1])

    steps = soak["steps"]
    assert steps >= STEPS
    assert soak["errors"] == 0
    # A tight loop can outrun the export thread (the GIL): what the bounded queue refuses is
    # counted, never silent, and nothing is left behind.
    assert soak["exported_spans"] + soak["dropped_spans"] == steps
    assert soak["events"]["new_message"] == steps
    assert soak["events"]["update_message"] == steps

    # The leak check: live Python heap after a flush and a collection, which RSS only blurs.
    heap = [size for done, size in soak["heap"] if done >= WARM_UP_STEPS]
    assert len(heap) >= 8
    heap_growth = max(heap) - heap[0]
    assert heap_growth <= MAX_HEAP_GROWTH, (
        f"heap grew {heap_growth / 2**20:.2f} MiB over {steps - WARM_UP_STEPS} steps: "
        f"{[(done, round(size / 2**20, 2)) for done, size in soak['heap']]}"
    )
    # RSS, bounded loosely: the allocator keeps arenas from the export queue's high-water mark
    # (up to OTEL_BSP_MAX_QUEUE_SIZE spans), reached at a moment that varies run to run.
    after_warm_up = [rss for done, rss in soak["checkpoints"] if done >= WARM_UP_STEPS]
    growth = max(after_warm_up) - after_warm_up[0]
    assert growth <= MAX_RSS_GROWTH, (
        f"RSS grew {growth / 2**20:.1f} MiB over {steps - WARM_UP_STEPS} steps after warm-up: "
        f"{[(done, round(rss / 2**20, 1)) for done, rss in soak['checkpoints']]}"
    )
