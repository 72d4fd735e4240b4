"""Ending what is still open when the interpreter exits, within a bounded time.

Steps left open (a suspended generator, a stream never finished, a step sent but never ended)
are ended so their spans are exported, the live bus is drained, and the provider steptrace set
up is flushed and shut down, all bounded: an unreachable backend cannot hold up the exit.
"""

from __future__ import annotations

import atexit
import logging
import threading

logger = logging.getLogger("steptrace")

#: Upper bound on everything the exit handler does.
EXIT_TIMEOUT_S = 5.0

_registered = False
_lock = threading.Lock()


def register_exit_handler() -> None:
    """Register once, lazily (at the first step), so it runs before the app provider's own
    atexit shutdown (atexit runs handlers last-registered-first)."""
    global _registered
    with _lock:
        if _registered:
            return
        _registered = True
    atexit.register(run_exit_handler)


def end_open_steps() -> int:
    """End every step still open, innermost (latest started) first. Returns how many."""
    from steptrace._step import OPEN_STEPS

    steps = sorted(OPEN_STEPS.values(), key=lambda s: s._start_ns or 0, reverse=True)
    for step in steps:
        try:
            step.set_attributes({"step.ended_at_exit": True})
            step._close()
        except Exception:
            logger.exception("steptrace: could not end step %r at exit", step)
    return len(steps)


def run_exit_handler(timeout: float = EXIT_TIMEOUT_S) -> None:
    """End open steps, drain listeners, flush and shut down steptrace's provider, bounded."""
    from steptrace import _config, _live

    try:
        end_open_steps()
    except Exception:
        logger.exception("steptrace: ending open steps at exit failed")
    try:
        _live.BUS.flush(min(1.0, timeout))
    except Exception:
        logger.exception("steptrace: draining listeners at exit failed")
    _config.shutdown(timeout=timeout)
