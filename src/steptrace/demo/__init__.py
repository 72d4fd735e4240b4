"""``steptrace demo``: a small travel-assistant agent turn, traced with steptrace.

Retrieval, a tool call and an answer streamed through the real ``openai`` client (to OpenAI, or
to a local scripted OpenAI-compatible server), shown live as a step tree in the terminal and in
the web chat channel, and exported over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

The modules: ``agent`` (the instrumented turn, the part worth reading), ``knowledge`` (the
documents and their BM25 search), ``weather`` (the tool), ``scripted`` (the local model),
``view`` (the rich live tree, a ``steptrace.add_listener`` listener) and ``app`` (set-up and the
session loop). It needs the ``demo`` extra (``rich``, ``openai``): ``steptrace.cli`` checks
:data:`REQUIREMENTS` before importing ``app``, so a missing one is a message, not a traceback.
"""

from __future__ import annotations

#: Distributions the demo imports, by import name -> what to install.
REQUIREMENTS = {"rich": "rich>=13", "openai": "openai>=1.40"}
