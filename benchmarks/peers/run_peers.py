"""Side-by-side: the same workloads with steptrace and with each peer, one table of ratios.

Each peer lives in its own virtualenv under ``benchmarks/peers/.venvs/<peer>`` (they pin
conflicting OpenTelemetry versions), created on first use and reused while its pip arguments are
unchanged. steptrace runs in the interpreter running this script (the project venv). The run:

- timing, ``--rounds`` times (default 3): the steptrace suite, then every peer suite, each in a
  fresh process that times workloads (a) and (b) for its implementations interleaved run by
  run (warm-up, 7 runs, median); the figure kept is the median over the rounds;
- memory, once per implementation, each in a fresh process: workload (c).

Ratios are ``peer / steptrace`` in the same mode (sync or async): above 1.00 means steptrace is
cheaper. ``/otel`` is the implementation over the raw OpenTelemetry SDK floor measured in the same
process (``otel-here`` in a peer's venv). See ``common.py`` and ``peer_impls.py`` for exactly what
each implementation does.

    .venv/bin/python benchmarks/peers/run_peers.py            # everything (~10 minutes)
    .venv/bin/python benchmarks/peers/run_peers.py --quick --peers langfuse   # a smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _harness import fmt_bytes, fmt_ns  # noqa: E402

VENVS = HERE / ".venvs"

PEERS: dict[str, list[str]] = {
    # chainlit -> literalai -> traceloop-sdk: unpinned, pip backtracks for a very long time.
    "chainlit": [
        "chainlit==2.12.0",
        "traceloop-sdk==0.62.4",
        "opentelemetry-api==1.45.1",
        "opentelemetry-sdk==1.45.1",
        "opentelemetry-instrumentation==0.66b1",
        "opentelemetry-semantic-conventions==0.66b1",
    ],
    "panel": ["panel==1.9.4", "opentelemetry-sdk"],
    "logfire": ["logfire==5.2.0", "opentelemetry-sdk"],
    "mlflow": ["mlflow==3.17.2", "opentelemetry-sdk"],
    "langfuse": ["langfuse==5.0.4", "opentelemetry-sdk"],
}
"""Each peer's pip arguments (pinned peer; the OTel SDK for the ``otel-here`` floor)."""

STEPTRACE_SUITE = "steptrace"
SUBPROCESS_TIMEOUT_S = 1800


def log(message: str) -> None:
    print(f"[run_peers] {message}", file=sys.stderr, flush=True)


def venv_python(peer: str) -> Path:
    return VENVS / peer / "bin" / "python"


def ensure_venv(peer: str, install: bool) -> Path | None:
    """The peer's venv python, (re)installed if its pip arguments changed; None if unavailable."""
    python, stamp = venv_python(peer), VENVS / peer / ".steptrace-pip-args"
    wanted = hashlib.sha256("\n".join(PEERS[peer]).encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    if not install:
        log(f"{peer}: no venv at {python.parent.parent} (run without --no-install)")
        return None
    if not python.exists():
        log(f"{peer}: creating {python.parent.parent}")
        base = getattr(sys, "_base_executable", None) or shutil.which("python3") or "python3"
        subprocess.run([base, "-m", "venv", "--clear", str(python.parent.parent)], check=True)
    log(f"{peer}: pip install {' '.join(PEERS[peer])} (can take minutes)")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *PEERS[peer]],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        log(f"{peer}: pip install failed:\n{result.stderr[-3000:]}")
        return None
    stamp.write_text(wanted + "\n")
    return python


def run_suite(python: Path | str, suite: str, *args: str) -> dict[str, Any] | None:
    """Run ``workload.py`` in one venv and return its JSON document (None on failure)."""
    command = [str(python), str(HERE / "workload.py"), suite, *args]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=SUBPROCESS_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        log(f"{suite} {' '.join(args)}: timed out")
        return None
    if result.returncode != 0:
        log(
            f"{suite} {' '.join(args)}: failed (exit {result.returncode}):\n{result.stderr[-3000:]}"
        )
        return None
    document: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return document


Key = tuple[str, str]
"""(suite, implementation): ``otel-here`` exists once per peer venv."""


class Collected:
    """Every figure measured, by (suite, implementation) and workload, and what each one is."""

    def __init__(self) -> None:
        self.times: dict[tuple[Key, str], list[float]] = defaultdict(list)
        self.memory: dict[Key, dict[str, Any]] = {}
        self.impls: dict[Key, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, str]] = {}

    def add(self, document: dict[str, Any]) -> None:
        suite = document["suite"]
        self.versions.setdefault(suite, {}).update(document["versions"])
        for impl in document["impls"]:
            self.impls[(suite, impl["name"])] = impl
        for result in document["results"]:
            key = (suite, result["impl"])
            if result["workload"] == "memory":
                self.memory[key] = result
            else:
                self.times[(key, result["workload"])].append(result["per_op_ns"])

    def time(self, key: Key, workload: str) -> float | None:
        values = self.times.get((key, workload))
        return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round of short runs, no memory")
    parser.add_argument("--no-memory", action="store_true", help="skip workload (c)")
    parser.add_argument("--no-install", action="store_true", help="skip peers without a venv")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    timing_args = ["--timing", *(["--quick"] if args.quick else [])]

    pythons: dict[str, Path | str] = {STEPTRACE_SUITE: sys.executable}
    for peer in args.peers:
        python = ensure_venv(peer, install=not args.no_install)
        if python is not None:
            pythons[peer] = python

    collected = Collected()
    started = time.monotonic()
    for round_no in range(1, rounds + 1):
        for suite, python in pythons.items():
            log(f"round {round_no}/{rounds}: timing {suite}")
            document = run_suite(python, suite, *timing_args)
            if document is not None:
                collected.add(document)
    if not (args.quick or args.no_memory):
        for suite, impl in list(collected.impls):
            log(f"memory: {suite}/{impl}")
            document = run_suite(pythons[suite], suite, "--memory", impl)
            if document is not None:
                collected.add(document)
    log(f"done in {time.monotonic() - started:.0f} s")
    print_report(collected, rounds)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "times": {f"{s}/{i}/{w}": v for ((s, i), w), v in collected.times.items()},
                    "memory": {f"{s}/{i}": v for (s, i), v in collected.memory.items()},
                    "impls": {f"{s}/{i}": v for (s, i), v in collected.impls.items()},
                    "versions": collected.versions,
                },
                indent=2,
            )
        )
    return 0


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "—"
    return f"{value / base:.2f}x"


def _reference(collected: Collected, key: Key) -> Key:
    """The steptrace variant an implementation is compared with: same mode, no listener."""
    mode = collected.impls[key]["mode"]
    return (STEPTRACE_SUITE, "steptrace-async" if mode == "async" else "steptrace")


def _floor(key: Key) -> Key:
    """The raw OTel SDK measured in the same process as ``key``."""
    return (key[0], "otel" if key[0] == STEPTRACE_SUITE else "otel-here")


def print_report(collected: Collected, rounds: int) -> None:
    print(f"## Side-by-side with peers ({rounds} round(s); machine: {machine()})\n")
    print(
        "Times per iteration, median over rounds. `xST` = implementation / steptrace in the same\n"
        "mode (above 1.00x: steptrace is cheaper). `/otel` = implementation / the raw OTel SDK\n"
        "measured in the same process (its own venv). (c): peak over one run of a root with\n"
        "10,000 nested steps; `xST` compares peaks per step.\n"
    )
    print(
        "| suite | implementation | mode | (a) nested step | xST | /otel | (b) 1,000 tokens "
        "| xST | /otel | (c) peak, tracemalloc | xST | (c) peak RSS growth |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, info in collected.impls.items():
        ref, floor = _reference(collected, key), _floor(key)
        cells = [key[0], key[1], info["mode"]]
        for workload in ("nested", "stream"):
            value = collected.time(key, workload)
            cells += [
                fmt_ns(value) if value is not None else "—",
                _ratio(value, collected.time(ref, workload)),
                _ratio(value, collected.time(floor, workload)),
            ]
        memory, ref_memory = collected.memory.get(key), collected.memory.get(ref)
        if memory:
            steps = memory["steps"]
            per_step = memory["traced_peak"] / steps
            ref_per_step = ref_memory["traced_peak"] / ref_memory["steps"] if ref_memory else None
            label = "" if steps == 10_000 else f" (over {steps:,} steps)"
            cells += [
                fmt_bytes(memory["traced_peak"]) + label,
                _ratio(per_step, ref_per_step),
                fmt_bytes(memory["rss_peak"]),
            ]
        else:
            cells += ["—", "—", "—"]
        print("| " + " | ".join(cells) + " |")
    print("\n### What each implementation includes\n")
    described: set[str] = set()
    for (_, name), info in collected.impls.items():
        if name not in described:
            described.add(name)
            print(f"- **{name}** ({info['mode']}): {info['describe']}")
    print("\n### Versions\n")
    for suite, versions in collected.versions.items():
        listed = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
        print(f"- {suite} venv: {listed}")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} CPUs, {system}, Python {platform.python_version()}"


if __name__ == "__main__":
    raise SystemExit(main())
