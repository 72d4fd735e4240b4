"""Test helpers that ship with steptrace: local LLM provider servers (stdlib only)."""

from steptrace.testing.llm_servers import (
    AnthropicServer,
    LLMServer,
    OpenAIServer,
    RecordedRequest,
    Reply,
    Script,
    ToolCall,
)

__all__ = [
    "AnthropicServer",
    "LLMServer",
    "OpenAIServer",
    "RecordedRequest",
    "Reply",
    "Script",
    "ToolCall",
]
