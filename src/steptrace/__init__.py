"""steptrace: every Step of an LLM app is an OpenTelemetry span, mirrored live to the chat UI.

```python
import steptrace

steptrace.configure()          # optional: OTLP from the OTEL_* environment
steptrace.instrument()         # optional: OpenAI / Anthropic calls become llm steps

with steptrace.Step(name="retrieve", type="retrieval") as step:
    step.output = search(query)
```
"""

from __future__ import annotations

from typing import Any

from steptrace._config import configure, flush, shutdown, web_channel
from steptrace._context import (
    add_thread_id_provider,
    current_step,
    instrument_threads,
    remove_thread_id_provider,
    set_thread_id_provider,
    uninstrument_threads,
    wrap_context,
)
from steptrace._decorate import step
from steptrace._export_stats import ExportStats, export_stats
from steptrace._live import add_listener, flush_listeners, remove_listener
from steptrace._settings import Settings, settings
from steptrace._step import CONTEXT_EXCEPTION_MODES, STATUSES, Step
from steptrace._version import __version__


def instrument(*names: str, **kwargs: Any) -> None:
    """Turn LLM client calls into ``llm`` steps: every supported library installed, or ``names``
    (``"openai"``, ``"anthropic"``; ``"threading"`` carries the current step into threads)."""
    from steptrace import instrumentation

    instrumentation.instrument(*names, **kwargs)


def uninstrument(*names: str) -> None:
    """Undo ``instrument()`` (all libraries, or ``names``)."""
    from steptrace import instrumentation

    instrumentation.uninstrument(*names)


__all__ = [
    "CONTEXT_EXCEPTION_MODES",
    "STATUSES",
    "ExportStats",
    "Settings",
    "Step",
    "__version__",
    "add_listener",
    "add_thread_id_provider",
    "configure",
    "current_step",
    "export_stats",
    "flush",
    "flush_listeners",
    "instrument",
    "instrument_threads",
    "remove_listener",
    "remove_thread_id_provider",
    "set_thread_id_provider",
    "settings",
    "shutdown",
    "step",
    "uninstrument",
    "uninstrument_threads",
    "web_channel",
    "wrap_context",
]
