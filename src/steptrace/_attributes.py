"""How a Step looks as a span: the attribute mapping of the contract, in one place.

Identity (id, type, kind) goes on the span at start so samplers see it; everything the body can
still change (input, output, metadata, tags, status) is written once at the end, in one call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from steptrace._serialize import apply_redaction, is_structured, to_attribute, to_text, truncate
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


def _value_attributes(
    attributes: dict[str, Any], prefix: str, value: Any, limit: int, redact: Any
) -> None:
    """``input.value``/``input.mime_type`` (or output): strings as is, structures as JSON."""
    if value.__class__ is str:
        text = value if len(value) <= limit else truncate(value, limit)
        mime = TEXT_MIME
    else:
        text = to_text(value, limit)
        mime = JSON_MIME if is_structured(value) else TEXT_MIME
    if redact is not None:
        text = apply_redaction(redact, text, prefix)
    attributes[prefix + ".value"] = text
    attributes[prefix + ".mime_type"] = mime


def end_attributes(step: Step) -> dict[str, Any]:
    """Everything that is final only when the step ends (read straight from the step's slots:
    this runs once per step, on the hot path)."""
    limit = settings.max_value_length
    redact = settings.redact
    attributes: dict[str, Any] = {"step.status": step._status}
    show_input = step._show_input
    if show_input != "json":  # the default is not repeated on every span
        attributes["step.show_input"] = show_input
    step_type = step._type
    if step_type != step._started_type:  # changed in the body: the start value is stale
        attributes["step.type"] = step_type
        attributes["openinference.span.kind"] = span_kind_for(step_type)
    title = step.title
    if title:
        attributes["step.title"] = title
    tags = step._tags
    if tags:
        attributes["step.tags"] = tags
    # Compare by identity, never with ==: values may be arrays or frames with no truth value.
    if step._input is not None or step._input_parts:
        _value_attributes(attributes, "input", step.input, limit, redact)
    if step._output_set or step._output is not None or step._output_parts:
        _value_attributes(attributes, "output", step.output, limit, redact)
    for key, value in step._metadata.items():
        name = "step.metadata." + (key if key.__class__ is str else str(key))
        attr = to_attribute(value, limit)
        if redact is not None and isinstance(attr, str):
            attr = apply_redaction(redact, attr, name[5:])
        attributes[name] = attr
    if step.thread_id is not None:  # may have been set in the body
        attributes["step.thread_id"] = step.thread_id
        attributes["session.id"] = step.thread_id
    if step._language is not None:
        attributes["step.language"] = step._language
    if step._default_open:
        attributes["step.default_open"] = True
    if step._auto_collapse:
        attributes["step.auto_collapse"] = True
    if step.icon is not None:
        attributes["step.icon"] = step.icon
    if step._parent_id is not None:
        attributes["step.parent_id"] = step._parent_id
    if step._tokens:
        attributes["step.token_count"] = step._tokens
    return attributes
