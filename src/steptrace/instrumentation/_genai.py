"""Attribute names and builders shared by the provider adapters.

Two vocabularies go on every llm span: the OpenTelemetry GenAI semantic conventions (names taken
from ``opentelemetry-semantic-conventions``) for OTLP backends, and the OpenInference attributes
Phoenix renders (``llm.*``). Provider adapters reduce requests and responses to :class:`Message`
lists; this module turns those into attributes, within a budget so that a long conversation
cannot push the step's own attributes out of the span's attribute limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv.attributes import error_attributes, server_attributes

from steptrace._serialize import to_json

# -- OpenTelemetry GenAI semantic conventions -------------------------------------------------

OPERATION = gen_ai.GEN_AI_OPERATION_NAME
PROVIDER = gen_ai.GEN_AI_PROVIDER_NAME
REQUEST_MODEL = gen_ai.GEN_AI_REQUEST_MODEL
REQUEST_STREAM = gen_ai.GEN_AI_REQUEST_STREAM
REQUEST_TEMPERATURE = gen_ai.GEN_AI_REQUEST_TEMPERATURE
REQUEST_TOP_P = gen_ai.GEN_AI_REQUEST_TOP_P
REQUEST_TOP_K = gen_ai.GEN_AI_REQUEST_TOP_K
REQUEST_MAX_TOKENS = gen_ai.GEN_AI_REQUEST_MAX_TOKENS
REQUEST_FREQUENCY_PENALTY = gen_ai.GEN_AI_REQUEST_FREQUENCY_PENALTY
REQUEST_PRESENCE_PENALTY = gen_ai.GEN_AI_REQUEST_PRESENCE_PENALTY
REQUEST_STOP_SEQUENCES = gen_ai.GEN_AI_REQUEST_STOP_SEQUENCES
REQUEST_SEED = gen_ai.GEN_AI_REQUEST_SEED
REQUEST_CHOICE_COUNT = gen_ai.GEN_AI_REQUEST_CHOICE_COUNT
RESPONSE_ID = gen_ai.GEN_AI_RESPONSE_ID
RESPONSE_MODEL = gen_ai.GEN_AI_RESPONSE_MODEL
RESPONSE_FINISH_REASONS = gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
RESPONSE_TIME_TO_FIRST_CHUNK = gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
USAGE_INPUT_TOKENS = gen_ai.GEN_AI_USAGE_INPUT_TOKENS
USAGE_OUTPUT_TOKENS = gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
USAGE_CACHE_READ = gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
USAGE_CACHE_CREATION = gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
USAGE_REASONING = gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
SERVER_ADDRESS = server_attributes.SERVER_ADDRESS
SERVER_PORT = server_attributes.SERVER_PORT
ERROR_TYPE = error_attributes.ERROR_TYPE
HTTP_STATUS_CODE = "http.response.status_code"

# -- OpenInference (https://github.com/Arize-ai/openinference, semantic_conventions.md) --------

LLM_MODEL_NAME = "llm.model_name"
LLM_PROVIDER = "llm.provider"
LLM_SYSTEM = "llm.system"
LLM_INVOCATION_PARAMETERS = "llm.invocation_parameters"
LLM_TOKEN_PROMPT = "llm.token_count.prompt"
LLM_TOKEN_COMPLETION = "llm.token_count.completion"
LLM_TOKEN_TOTAL = "llm.token_count.total"
LLM_TOKEN_CACHE_READ = "llm.token_count.prompt_details.cache_read"
LLM_TOKEN_CACHE_WRITE = "llm.token_count.prompt_details.cache_write"
LLM_TOKEN_REASONING = "llm.token_count.completion_details.reasoning"
LLM_INPUT_MESSAGES = "llm.input_messages"
LLM_OUTPUT_MESSAGES = "llm.output_messages"
LLM_TOOLS = "llm.tools"

# -- steptrace's own ---------------------------------------------------------------------------

#: True when the provider said the answer was complete (finish reason, ``message_stop``, a
#: terminal Responses event); false for a stream that ended before that.
STREAM_COMPLETED = "step.stream.completed"
#: How a stream's step ended: exhausted, closed, error or garbage_collected.
STREAM_ENDED_BY = "step.stream.ended_by"
#: Number of request messages left out of ``llm.input_messages`` (oldest first) by the budget.
INPUT_MESSAGES_DROPPED = "step.llm.input_messages_dropped"

#: Most attributes the flattened input messages may take; the newest messages are kept.
INPUT_MESSAGE_BUDGET = 48
OUTPUT_MESSAGE_BUDGET = 16
TOOLS_BUDGET = 16


@dataclass
class ToolCallInfo:
    """One tool call the model asked for (``arguments`` is the JSON text it produced)."""

    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass
class Message:
    """A chat message reduced to what both vocabularies can show."""

    role: str
    content: str | None = None
    tool_calls: list[ToolCallInfo] = field(default_factory=list)
    tool_call_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The message as the step's input/output shows it (JSON-friendly)."""
        out: dict[str, Any] = {"role": self.role}
        if self.content is not None:
            out["content"] = self.content
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


def given(value: Any) -> bool:
    """A real argument value, not ``None`` nor a client library's ``NOT_GIVEN``/``omit``."""
    return value is not None and type(value) in (str, int, float, bool, list, tuple, dict)


def number(value: Any) -> int | float | None:
    return value if type(value) in (int, float) else None


def plain(value: Any) -> Any:
    """A request/response object as plain data (pydantic models dumped, mappings copied)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(exclude_none=True, mode="json", warnings=False)
        except Exception:
            return to_json(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def get(obj: Any, key: str, default: Any = None) -> Any:
    """``obj[key]`` for mappings, ``obj.key`` for objects (requests hold either)."""
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def server_attributes_of(instance: Any) -> dict[str, Any]:
    """``server.address``/``server.port`` from the client behind a resource object."""
    try:
        url = instance._client.base_url
        attributes: dict[str, Any] = {SERVER_ADDRESS: url.host}
        port = url.port or (443 if url.scheme == "https" else 80)
        attributes[SERVER_PORT] = port
        return attributes
    except Exception:
        return {}


def invocation_parameters(kwargs: Mapping[str, Any], skip: Iterable[str]) -> str | None:
    """``llm.invocation_parameters``: the request's settings as JSON, without the content."""
    skipped = set(skip)
    params = {
        k: plain(v)
        for k, v in kwargs.items()
        if k not in skipped and not k.startswith("extra_") and given(v)
    }
    return to_json(params) if params else None


def flatten_messages(
    prefix: str, messages: list[Message], budget: int, attributes: dict[str, Any]
) -> int:
    """Add ``{prefix}.{i}.message.*`` for the newest messages that fit ``budget`` attributes.

    Returns how many (oldest) messages were left out.
    """
    kept: list[dict[str, Any]] = []
    used = 0
    for message in reversed(messages):
        flat = _flatten_one(message)
        if used + len(flat) > budget and kept:
            break
        kept.append(flat)
        used += len(flat)
    kept.reverse()
    for index, flat in enumerate(kept):
        base = f"{prefix}.{index}.message."
        for key, value in flat.items():
            attributes[base + key] = value
    return len(messages) - len(kept)


def _flatten_one(message: Message) -> dict[str, Any]:
    flat: dict[str, Any] = {"role": message.role}
    if message.content is not None:
        flat["content"] = message.content
    for i, call in enumerate(message.tool_calls):
        base = f"tool_calls.{i}.tool_call."
        if call.id is not None:
            flat[base + "id"] = call.id
        if call.name is not None:
            flat[base + "function.name"] = call.name
        flat[base + "function.arguments"] = call.arguments
    if message.tool_call_id is not None:
        flat["tool_call_id"] = message.tool_call_id
    return flat


def tools_attributes(tools: Any, attributes: dict[str, Any]) -> None:
    """``llm.tools.{i}.tool.json_schema`` for the tool definitions of a request."""
    if not isinstance(tools, (list, tuple)):
        return
    for index, tool in enumerate(tools[:TOOLS_BUDGET]):
        attributes[f"{LLM_TOOLS}.{index}.tool.json_schema"] = to_json(plain(tool))


def usage_attributes(
    attributes: dict[str, Any],
    input_tokens: int | None,
    output_tokens: int | None,
    *,
    cache_read: int | None = None,
    cache_creation: int | None = None,
    reasoning: int | None = None,
) -> None:
    """Token usage in both vocabularies (``input_tokens`` includes cached input tokens)."""
    if input_tokens is not None:
        attributes[USAGE_INPUT_TOKENS] = input_tokens
        attributes[LLM_TOKEN_PROMPT] = input_tokens
    if output_tokens is not None:
        attributes[USAGE_OUTPUT_TOKENS] = output_tokens
        attributes[LLM_TOKEN_COMPLETION] = output_tokens
    if input_tokens is not None and output_tokens is not None:
        attributes[LLM_TOKEN_TOTAL] = input_tokens + output_tokens
    if cache_read:
        attributes[USAGE_CACHE_READ] = cache_read
        attributes[LLM_TOKEN_CACHE_READ] = cache_read
    if cache_creation:
        attributes[USAGE_CACHE_CREATION] = cache_creation
        attributes[LLM_TOKEN_CACHE_WRITE] = cache_creation
    if reasoning:
        attributes[USAGE_REASONING] = reasoning
        attributes[LLM_TOKEN_REASONING] = reasoning
