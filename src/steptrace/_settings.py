"""Runtime settings shared by the Step, the instrumentation and the exporters."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from steptrace._serialize import DEFAULT_MAX_VALUE_LENGTH

Redactor = Callable[[str, str], str]


@dataclass
class Settings:
    """What ``steptrace.configure()`` decides beyond the TracerProvider.

    ``redact(value, field)`` scrubs every string steptrace exports or mirrors (input, output,
    metadata values, tokens); ``field`` says which (``"input"``, ``"output"``, ``"token"``,
    ``"metadata.<key>"``, ``"attribute.<name>"``). ``capture_message_content=None`` follows
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (default: captured).
    """

    redact: Redactor | None = None
    capture_message_content: bool | None = None
    max_value_length: int = DEFAULT_MAX_VALUE_LENGTH

    def captures_message_content(self) -> bool:
        if self.capture_message_content is not None:
            return self.capture_message_content
        env = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
        if env is None:
            return True
        return env.strip().lower() not in ("false", "0", "no", "off", "no_content")


settings = Settings()
