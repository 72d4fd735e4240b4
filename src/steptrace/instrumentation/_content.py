"""Whether LLM message content (prompts, answers, tool arguments) may be recorded.

One decision per call, taken when the call starts:
``steptrace.configure(capture_message_content=…)`` wins, otherwise
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (default: captured).
When it is off, llm steps carry model, parameters, usage and timings but no input, no output,
no streamed tokens and no ``llm.input_messages``/``llm.output_messages``.
"""

from __future__ import annotations

import logging

from steptrace._settings import settings

logger = logging.getLogger("steptrace.instrumentation")


def capture_message_content() -> bool:
    """The capture decision in force now; an error in deciding means "do not capture"."""
    try:
        return settings.captures_message_content()
    except Exception:
        logger.exception("steptrace: could not read the content-capture setting; not capturing")
        return False
