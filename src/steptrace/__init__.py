"""steptrace: every Step of an LLM app is an OpenTelemetry span, mirrored live to the chat UI."""
