"""100,000 steps with streamed tokens and a live listener keep memory flat.

``soak_app.py`` runs in a fresh interpreter and records its RSS every 10,000 steps (after
draining the bus and the exporter, and a garbage collection). After a 20,000-step warm-up
(allocator arenas, caches) the RSS may not grow by more than ``MAX_GROWTH``: 6 MiB over 80,000
further steps is under 80 bytes per step, far below the smallest leak per step that matters
(one retained span, step or event dict is several hundred bytes).
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
MAX_GROWTH = 6 * 1024 * 1024


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
    assert soak["exported_spans"] == steps  # nothing dropped, nothing left behind
    assert soak["events"]["new_message"] == steps
    assert soak["events"]["update_message"] == steps

    after_warm_up = [rss for done, rss in soak["checkpoints"] if done >= WARM_UP_STEPS]
    assert len(after_warm_up) >= 8
    growth = max(after_warm_up) - after_warm_up[0]
    assert growth <= MAX_GROWTH, (
        f"RSS grew {growth / 2**20:.1f} MiB over {steps - WARM_UP_STEPS} steps after warm-up: "
        f"{[(done, round(rss / 2**20, 1)) for done, rss in soak['checkpoints']]}"
    )
