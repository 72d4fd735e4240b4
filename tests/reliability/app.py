"""A small steptrace app run in a subprocess by the reliability tests.

It calls ``steptrace.configure()`` (OTLP settings come from the ``OTEL_*`` environment the test
sets), runs batches of steps with streamed tokens, and reports each batch as one JSON line on
stdout: how many steps raised (must be none) and the longest any single step took. Between
batches, and before exiting, it waits for a line on stdin, so the test can change the backend
(bring it up, let it recover) while the app lives. ``--leave-open`` / ``--crash`` exercise
the exit handling: steps left open at a normal exit, or at an uncaught exception.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time
from typing import Any

import steptrace


def run_batch(batch: int, steps: int, tokens: int) -> dict[str, Any]:
    errors: list[str] = []
    longest = 0.0
    started = time.perf_counter()
    for i in range(steps):
        t0 = time.perf_counter()
        try:
            with steptrace.Step(name=f"b{batch}-step-{i}", type="tool", tags=["soak"]) as step:
                step.input = {"batch": batch, "i": i}
                for t in range(tokens):
                    step.stream_token(f"tok{t} ")
        except BaseException as exc:  # the app must never see one
            errors.append(repr(exc))
        longest = max(longest, time.perf_counter() - t0)
    report: dict[str, Any] = {
        "event": "batch",
        "batch": batch,
        "steps": steps,
        "errors": errors,
        "longest_step_s": longest,
        "batch_s": time.perf_counter() - started,
    }
    report["export_stats"] = dataclasses.asdict(steptrace.export_stats())
    return report


def leave_steps_open() -> None:
    """Three ways a step stays open until exit: begun by hand, a suspended generator, a thread."""
    manual = steptrace.Step(name="open-manual", type="run")
    manual.begin()
    with steptrace.Step(name="open-child", type="tool", parent_id=manual.id):
        pass

    @steptrace.step(name="open-generator")
    def generate() -> Any:
        yield "first"
        yield "never reached"

    generator = generate()
    next(generator)
    _keep.append(generator)

    entered = threading.Event()

    def stuck() -> None:
        with steptrace.Step(name="open-in-thread", type="tool"):
            entered.set()
            threading.Event().wait()

    threading.Thread(target=stuck, daemon=True).start()
    entered.wait(10)


_keep: list[Any] = []


def report(document: dict[str, Any]) -> None:
    print(json.dumps(document), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=10)
    parser.add_argument("--flush", action="store_true", help="steptrace.flush() after batches")
    parser.add_argument("--leave-open", action="store_true")
    parser.add_argument("--crash", action="store_true", help="end with an uncaught exception")
    args = parser.parse_args()

    steptrace.configure()
    for batch in range(args.batches):
        result = run_batch(batch, args.steps, args.tokens)
        if args.flush:
            t0 = time.perf_counter()
            result["flushed"] = steptrace.flush(timeout=5.0)
            result["flush_s"] = time.perf_counter() - t0
        report(result)
        sys.stdin.readline()  # the test says when to go on
    if args.leave_open:
        leave_steps_open()
    report({"event": "exiting"})
    if args.crash:
        raise RuntimeError("crash on purpose, with steps open")


if __name__ == "__main__":
    main()
