"""Running ``app.py`` in a subprocess against a (mis)behaving OTLP endpoint, with time bounds."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

APP = Path(__file__).resolve().parent / "app.py"

#: No single step may take longer than this, whatever the backend does (it never waits on it).
STEP_BOUND_S = 2.0
#: From the app's last line to the process gone: steptrace's exit handler is bounded (DESIGN:
#: "a few seconds"), plus interpreter teardown on a busy machine.
EXIT_BOUND_S = 12.0
#: How long a test waits for the app to report, or for spans to reach a receiver.
REPORT_TIMEOUT_S = 60.0


def otlp_env(endpoint: str, protocol: str, **extra: str) -> dict[str, str]:
    """The app's environment: no inherited OTEL_* settings, OTLP to ``endpoint``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_SERVICE_NAME": "steptrace-reliability",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class App:
    """``app.py`` in a subprocess: read its JSON reports, tell it to go on, time its exit."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(APP), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self._last_report_at = time.monotonic()

    def _read_stdout(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def next_report(self, timeout: float = REPORT_TIMEOUT_S) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"the app reported nothing within {timeout} s; stderr:\n{self.stderr}")
        if line is None:
            self._process.wait(5)
            pytest.fail(f"the app exited ({self._process.returncode}); stderr:\n{self.stderr}")
        self._last_report_at = time.monotonic()
        report: dict[str, Any] = json.loads(line)
        return report

    def go_on(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write("\n")
        self._process.stdin.flush()

    def wait_exit(self, timeout: float = REPORT_TIMEOUT_S) -> tuple[int, float]:
        """Wait for the process to end: (exit code, seconds since its last report)."""
        try:
            code = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
            pytest.fail(f"the app did not exit within {timeout} s; stderr:\n{self.stderr}")
        elapsed = time.monotonic() - self._last_report_at
        time.sleep(0.05)  # let the reader threads take the last output
        return code, elapsed

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()


def run_batches(app: App, batches: int) -> list[dict[str, Any]]:
    """Read ``batches`` batch reports, checking each step stayed quick and nothing raised."""
    reports = []
    for _ in range(batches):
        report = app.next_report()
        assert report["event"] == "batch"
        assert report["errors"] == [], report["errors"]
        assert report["longest_step_s"] < STEP_BOUND_S, report
        reports.append(report)
        app.go_on()
    return reports


def finish(app: App) -> float:
    """Let the app exit normally; check it does so cleanly and within the bound."""
    assert app.next_report()["event"] == "exiting"
    code, elapsed = app.wait_exit()
    assert code == 0, app.stderr
    assert elapsed < EXIT_BOUND_S, f"exit took {elapsed:.1f} s\n{app.stderr}"
    return elapsed
