"""Run one suite of the side-by-side workloads and print the results as JSON (one line).

``python workload.py SUITE --timing`` times workloads (a) and (b) for every implementation of the
suite, interleaved run by run. ``python workload.py SUITE --memory IMPL`` measures workload (c)
for one implementation, in this fresh process: first the peak RSS growth (sampled every 2 ms),
then, in a second pass, the ``tracemalloc`` peak. ``run_peers.py`` drives both in each venv.

A suite is the implementations that share one virtualenv: ``steptrace`` (the project venv: the
raw OTel floor and steptrace's variants), and one per peer (the peer, plus ``otel-here``: the
raw OTel floor in that venv). See ``common.py`` for the workloads.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import common  # noqa: E402
from _harness import calibrate, interleaved, rss_peak, tracemalloc_peak  # noqa: E402
from common import Impl, OtelImpl  # noqa: E402


def steptrace_suite() -> list[Impl]:
    from steptrace_impl import SteptraceImpl

    return [
        OtelImpl(global_provider=True),
        SteptraceImpl("sync"),
        SteptraceImpl("async"),
        SteptraceImpl("sync", listener=True),
        SteptraceImpl("async", listener=True),
    ]


def peer_suite(name: str) -> Callable[[], list[Impl]]:
    def build() -> list[Impl]:
        from peer_impls import PEER_SUITES

        return PEER_SUITES[name]()

    return build


SUITES: dict[str, Callable[[], list[Impl]]] = {
    "steptrace": steptrace_suite,
    **{name: peer_suite(name) for name in ("chainlit", "panel", "logfire", "mlflow", "langfuse")},
}


def versions(impls: list[Impl]) -> dict[str, str]:
    found: dict[str, str] = {}
    for impl in impls:
        for package in impl.packages:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                found[package] = importlib.metadata.version(package)
    return found


def time_suite(impls: list[Impl], quick: bool) -> list[dict[str, Any]]:
    runs, target_s = (3, 0.05) if quick else (7, 0.25)
    results = []
    for workload in ("nested", "stream"):
        batches = {}
        for impl in impls:
            batch = getattr(impl, workload)
            batches[impl.name] = (batch, calibrate(batch, target_s))
        for name, timing in interleaved(batches, runs).items():
            results.append(
                {
                    "impl": name,
                    "workload": workload,
                    "ops": batches[name][1],
                    "per_op_ns": timing.per_op_ns,
                    "run_per_op_ns": timing.run_per_op_ns,
                }
            )
        for impl in impls:
            impl.flush()
    return results


def measure_memory(impl: Impl) -> list[dict[str, Any]]:
    warm = impl.memory_steps
    impl.memory_steps = 20
    impl.memory()  # imports, caches, first-use allocations: not part of the workload
    impl.memory_steps = warm
    rss = rss_peak(impl.memory)
    traced = tracemalloc_peak(impl.memory)
    return [
        {
            "impl": impl.name,
            "workload": "memory",
            "steps": impl.memory_steps,
            "rss_peak": rss,
            "traced_peak": traced,
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=sorted(SUITES))
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--timing", action="store_true", help="time (a) and (b), all impls")
    what.add_argument("--memory", metavar="IMPL", help="measure (c) for one implementation")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs (smoke test)")
    args = parser.parse_args()

    # Peers that write files (Chainlit's config, MLflow's store) write them in a temp dir.
    os.chdir(tempfile.mkdtemp(prefix=f"steptrace-peer-{args.suite}-"))
    common.MEMORY_MODE = bool(args.memory)
    impls = SUITES[args.suite]()
    if args.memory:
        impls = [impl for impl in impls if impl.name == args.memory]
        if not impls:
            parser.error(f"no implementation {args.memory!r} in suite {args.suite!r}")
    for impl in impls:
        impl.setup()
    results = measure_memory(impls[0]) if args.memory else time_suite(impls, args.quick)
    document = {
        "suite": args.suite,
        "python": platform.python_version(),
        "versions": versions(impls),
        "impls": [
            {"name": impl.name, "mode": impl.mode, "describe": impl.describe} for impl in impls
        ],
        "results": results,
    }
    print(json.dumps(document))


if __name__ == "__main__":
    main()
