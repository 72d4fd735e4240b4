"""Safe, bounded conversion of arbitrary user values into span attributes and wire strings.

Telemetry must never raise into the app: metadata holding a lock, bytes, self-referencing
structures or megabyte strings all end up as a bounded string instead of an exception.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

logger = logging.getLogger("steptrace")

#: Longest string kept for one value (input, output, a metadata value); longer ones are cut.
DEFAULT_MAX_VALUE_LENGTH = 65_536

_PRIMITIVES = (str, bool, int, float)
_TRUNCATION_MARK = "…[truncated {} chars]"


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, saying how much was dropped."""
    if len(text) <= limit:
        return text
    return text[:limit] + _TRUNCATION_MARK.format(len(text) - limit)


def _fallback(value: Any) -> Any:
    """``json.dumps`` default: bytes are stripped (as Chainlit does), the rest become ``repr``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    try:
        return repr(value)
    except Exception:  # a __repr__ that raises
        return f"<unrepresentable {type(value).__name__}>"


#: Nesting kept when a structure has to be rebuilt (cycles, exotic keys, extreme depth).
MAX_DEPTH = 32
#: Items kept per list attribute before it is summarised as truncated JSON.
MAX_LIST_ITEMS = 1000


# One encoder, built once: json.dumps() with options builds a new JSONEncoder on every call.
_COMPACT = json.JSONEncoder(default=_fallback, ensure_ascii=False)


def _indented(indent: int) -> json.JSONEncoder:
    return json.JSONEncoder(default=_fallback, ensure_ascii=False, indent=indent)


def to_json(value: Any, *, indent: int | None = None) -> str:
    """JSON-encode anything, never raising: cycles and extreme depth become markers, so the
    result is still valid JSON."""
    encoder = _COMPACT if indent is None else _indented(indent)
    try:
        return encoder.encode(value)
    except (ValueError, TypeError, RecursionError):
        pass
    try:
        return json.dumps(_jsonable(value, 0, set()), ensure_ascii=False, indent=indent)
    except Exception:
        return json.dumps(safe_str(value), ensure_ascii=False)


def _jsonable(value: Any, depth: int, seen: set[int]) -> Any:
    """A JSON-safe copy of ``value``: cycles become ``"<cycle>"``, deep parts ``"<too deep>"``,
    non-string keys strings, and anything exotic its ``repr``."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if depth >= MAX_DEPTH:
        return "<too deep>"
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        marker = id(value)
        if marker in seen:
            return "<cycle>"
        seen.add(marker)
        try:
            if isinstance(value, Mapping):
                return {
                    (k if isinstance(k, str) else safe_str(k)): _jsonable(v, depth + 1, seen)
                    for k, v in value.items()
                }
            return [_jsonable(item, depth + 1, seen) for item in value]
        finally:
            seen.discard(marker)
    return _fallback(value)


def safe_str(value: Any) -> str:
    """``str(value)`` that never raises."""
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def is_structured(value: Any) -> bool:
    """Values that travel as JSON (and get ``application/json`` as mime type)."""
    # Concrete types first: the Mapping ABC check is slow and rarely needed.
    if isinstance(value, (dict, list, tuple)):
        return True
    return isinstance(value, Mapping)


def to_text(value: Any, limit: int = DEFAULT_MAX_VALUE_LENGTH) -> str:
    """The string form of an input/output value: strings as is, structures JSON-encoded."""
    if isinstance(value, str):
        text = value
    elif value is None:
        text = ""
    elif is_structured(value):
        text = to_json(value)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        text = f"<{len(value)} bytes>"
    else:
        text = safe_str(value)
    return truncate(text, limit)


def to_attribute(value: Any, limit: int = DEFAULT_MAX_VALUE_LENGTH) -> Any:
    """An OpenTelemetry attribute value for ``value``.

    str/bool/int/float and homogeneous lists of them pass through; everything else is
    JSON-encoded. Strings are bounded to ``limit`` characters.
    """
    if isinstance(value, str):
        return truncate(value, limit)
    if isinstance(value, (bool, int, float)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
            return str(value)  # OTLP ints are 64-bit
        return value
    if isinstance(value, (list, tuple)) and value and len(value) <= MAX_LIST_ITEMS:
        first = type(value[0])
        if first in _PRIMITIVES and all(type(item) is first for item in value):
            if first is str and sum(len(item) for item in value) > limit:
                return truncate(to_json(value), limit)
            if first is str:
                return list(value)
            if first is int and any(abs(item) >= 2**63 for item in value):
                return truncate(to_json(value), limit)
            return list(value)
    return truncate(to_json(value), limit)


def apply_redaction(redact: Callable[[str, str], str] | None, value: str, field: str) -> str:
    """Run the user's redaction hook; a failing hook blanks the value rather than leaking it."""
    if redact is None:
        return value
    try:
        result = redact(value, field)
    except Exception:
        logger.exception("steptrace redaction hook failed for %s; value withheld", field)
        return "[redaction failed]"
    return result if isinstance(result, str) else safe_str(result)


def string_list(value: Sequence[Any]) -> list[str]:
    """Tags as a list of strings."""
    return [item if isinstance(item, str) else safe_str(item) for item in value]


@functools.lru_cache(maxsize=1024)
def iso_utc(ns: int | None) -> str | None:
    """Nanoseconds since the epoch as ISO-8601 UTC with a Z (Chainlit's format). Cached: a
    step's created/start/end times are formatted again for every live event it sends."""
    if ns is None:
        return None
    stamp = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    return stamp.isoformat(timespec="microseconds")[:-6] + "Z"
