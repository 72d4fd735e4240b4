"""How a Step looks as a span: the attribute mapping of the contract, in one place.

Identity (id, type, kind) goes on the span at start so samplers see it; everything the body can
still change (input, output, metadata, tags, status) is written once at the end, in one call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from steptrace._serialize import apply_redaction, is_structured, to_attribute, to_text
from steptrace._settings import settings

if TYPE_CHECKING:
    from steptrace._step import Step

#: Step type → OpenInference span kind (what Phoenix and other OpenInference UIs render).
OPENINFERENCE_KINDS = {
    "llm": "LLM",
    "tool": "TOOL",
    "retrieval": "RETRIEVER",
    "embedding": "EMBEDDING",
    "rerank": "RERANKER",
    "run": "CHAIN",
    "undefined": "CHAIN",
}

JSON_MIME = "application/json"
TEXT_MIME = "text/plain"


def span_kind_for(step_type: str) -> str:
    """OpenInference kind for a step type; custom and message types are chains."""
    return OPENINFERENCE_KINDS.get(step_type, "CHAIN")


def start_attributes(step: Step) -> dict[str, Any]:
    step_type = step._started_type = step.type
    attributes: dict[str, Any] = {
        "step.id": step.id,
        "step.type": step_type,
        "openinference.span.kind": span_kind_for(step_type),
    }
    if step.thread_id is not None:
        attributes["step.thread_id"] = step.thread_id
        attributes["session.id"] = step.thread_id
    if step._attributes:  # set before the step began: samplers see them
        attributes.update(extra_attributes(step._attributes))
        step._attributes = None
    return attributes


def extra_attributes(values: dict[str, Any]) -> dict[str, Any]:
    """User/instrumentation attributes, safely converted and redacted; ``None`` values skipped."""
    limit = settings.max_value_length
    redact = settings.redact
    converted: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        attr = to_attribute(value, limit)
        if redact is not None and isinstance(attr, str):
            attr = apply_redaction(redact, attr, f"attribute.{name}")
        converted[name if isinstance(name, str) else str(name)] = attr
    return converted


def _value_attributes(attributes: dict[str, Any], prefix: str, value: Any, limit: int) -> None:
    """``input.value``/``input.mime_type`` (or output): strings as is, structures as JSON."""
    text = to_text(value, limit)
    redact = settings.redact
    if redact is not None:
        text = apply_redaction(redact, text, prefix)
    attributes[f"{prefix}.value"] = text
    structured = value.__class__ is not str and is_structured(value)
    attributes[f"{prefix}.mime_type"] = JSON_MIME if structured else TEXT_MIME


def end_attributes(step: Step) -> dict[str, Any]:
    """Everything that is final only when the step ends."""
    limit = settings.max_value_length
    redact = settings.redact
    attributes: dict[str, Any] = {"step.status": step.status}
    if step.show_input != "json":  # the default is not repeated on every span
        attributes["step.show_input"] = step.show_input
    step_type = step.type
    if step_type != step._started_type:  # changed in the body: the start value is stale
        attributes["step.type"] = step_type
        attributes["openinference.span.kind"] = span_kind_for(step_type)
    title = step.title
    if title:
        attributes["step.title"] = title
    tags = step.tags
    if tags:
        attributes["step.tags"] = tags
    # Compare by identity, never with ==: values may be arrays or frames with no truth value.
    if step._input is not None or step._input_parts:
        _value_attributes(attributes, "input", step.input, limit)
    if step._output_set or step._output is not None or step._output_parts:
        _value_attributes(attributes, "output", step.output, limit)
    for key, value in step.metadata.items():
        name = key if isinstance(key, str) else str(key)
        attr = to_attribute(value, limit)
        if redact is not None and isinstance(attr, str):
            attr = apply_redaction(redact, attr, f"metadata.{name}")
        attributes[f"step.metadata.{name}"] = attr
    if step.thread_id is not None:
        attributes["step.thread_id"] = step.thread_id
        attributes["session.id"] = step.thread_id
    if step.language is not None:
        attributes["step.language"] = step.language
    if step.default_open:
        attributes["step.default_open"] = True
    if step.auto_collapse:
        attributes["step.auto_collapse"] = True
    if step.icon is not None:
        attributes["step.icon"] = step.icon
    parent_id = step._parent_id
    if parent_id is not None:
        attributes["step.parent_id"] = parent_id
    if step._tokens:
        attributes["step.token_count"] = step._tokens
    return attributes
