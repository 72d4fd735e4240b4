"""``Step``: one unit of an LLM app's work, as an OpenTelemetry span and a live chat-UI step.

A superset of Chainlit's ``cl.Step`` (constructor, ``send``/``update``/``remove``/``stream_token``,
``to_dict``, the wire dict) and of Panel's ``ChatStep`` behaviour (``status`` and the computed
``title``, ``stream``/``stream_title``, ``context_exception``, ``serialize``), usable with ``with``,
``async with`` and as a decorator. Its methods work called plainly from sync code and awaited from
async code: they do their work at once and return an already-completed awaitable.
"""

from __future__ import annotations

import contextlib
import time
import traceback
import warnings
from collections.abc import Callable, Generator, Iterator
from random import getrandbits
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, Status, StatusCode

from steptrace import _context, _live, _tracing
from steptrace._attributes import (
    end_attributes,
    extra_attributes,
    span_kind_for,
    start_attributes,
)
from steptrace._mirror import ensure_mirroring
from steptrace._serialize import apply_redaction, safe_str, to_text, truncate
from steptrace._serialize import iso_utc as _iso
from steptrace._settings import settings
from steptrace._tokens import TokenEvents

try:  # the key under which the API stores the current span; public fallback below
    from opentelemetry.trace.propagation import _SPAN_KEY
except ImportError:  # pragma: no cover
    _SPAN_KEY = None

try:  # detaching through the runtime context lets us skip the API's error log on a
    # cross-context detach (a generator closed elsewhere) and handle it quietly instead
    from opentelemetry.context import _RUNTIME_CONTEXT
except ImportError:  # pragma: no cover
    _RUNTIME_CONTEXT = None

F = TypeVar("F", bound=Callable[..., Any])

STATUSES = ("pending", "running", "success", "failed")
CONTEXT_EXCEPTION_MODES = ("raise", "summary", "verbose", "ignore")
_TITLE_STATUSES = ("pending", "running", "success", "failed", "default")

# Lifecycle of the span behind a step.
_NEW, _OPEN, _ENDED = 0, 1, 2

#: Open steps, for ending them at interpreter exit (keyed by object id: no hashing of Steps).
OPEN_STEPS: dict[int, Step] = {}
#: Open steps whose id is known, for resolving an explicit ``parent_id``.
STEPS_BY_ID: dict[str, Step] = {}

_BUS = _live.BUS


class _Ready:
    """An already-completed awaitable: ``await step.update()`` and ``step.update()`` both work."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[None, None, Any]:
        return self.value
        yield  # pragma: no cover - makes this a generator

    def __bool__(self) -> bool:
        return bool(self.value)

    def __eq__(self, other: object) -> bool:
        return self.value == (other.value if isinstance(other, _Ready) else other)

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"<completed {self.value!r}>"


_DONE = _Ready(None)
_TRUE = _Ready(True)


def _new_id() -> str:
    """A random (version 4) UUID string: ids must be unique, not secret, so the fast PRNG the
    OTel SDK uses for span ids will do (``uuid4()`` makes a system call per step)."""
    bits = (getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _check_str(name: str, value: Any, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a string{' or None' if optional else ''}, got {type(value).__name__}"
        )


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def _check_status(value: Any) -> None:
    if value not in STATUSES:
        if not isinstance(value, str):
            raise TypeError(f"status must be a string, got {type(value).__name__}")
        raise ValueError(f"status must be one of {', '.join(STATUSES)}; got {value!r}")


def _check_tags(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"tags must be a list of strings, got {type(value).__name__}")
    for item in value:
        if not isinstance(item, str):
            raise TypeError(
                f"tags must be a list of strings, got an item of type {type(item).__name__}"
            )
    return list(value)


def _check_metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"metadata must be a dict, got {type(value).__name__}")
    return value


class Step:
    """A step of an LLM app: a span in the trace and a step in the chat UI.

    ``with Step(name="retrieve", type="retrieval") as step: step.output = docs``
    """

    __slots__ = (
        "__weakref__",
        "_attributes",
        "_auto_collapse",
        "_collapsed_on_success",
        "_context_exception",
        "_created_ns",
        "_ctx_tokens",
        "_default_open",
        "_end_ns",
        "_end_override",
        "_error",
        "_error_recorded",
        "_failed_title",
        "_first_token_ns",
        "_foreign_parent",
        "_id",
        "_input",
        "_input_parts",
        "_is_error",
        "_language",
        "_metadata",
        "_name",
        "_output",
        "_output_parts",
        "_output_set",
        "_parent_id",
        "_parent_step",
        "_show_input",
        "_span",
        "_start_ns",
        "_start_override",
        "_started_type",
        "_state",
        "_status",
        "_streaming",
        "_tags",
        "_token_events",
        "_tokens",
        "_type",
        "created_at_override",
        "default_badges",
        "default_title",
        "elements",
        "fail_on_persist_error",
        "failed_title",
        "generation",
        "icon",
        "pending_title",
        "persisted",
        "running_title",
        "success_title",
        "thread_id",
    )

    def __init__(
        self,
        name: str | None = None,
        type: str = "undefined",
        *,
        id: str | None = None,
        parent_id: str | None = None,
        elements: list[Any] | None = None,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        language: str | None = None,
        show_input: bool | str = "json",
        default_open: bool = False,
        auto_collapse: bool = False,
        icon: str | None = None,
        thread_id: str | None = None,
        status: str = "pending",
        default_title: str = "",
        pending_title: str | None = None,
        running_title: str | None = None,
        success_title: str | None = None,
        failed_title: str | None = None,
        collapsed_on_success: bool = True,
        context_exception: str = "raise",
        **legacy: Any,
    ) -> None:
        if name is not None and not isinstance(name, str):
            hint = " (to decorate a function use @steptrace.step)" if callable(name) else ""
            raise TypeError(f"name must be a string or None, got {type_name(name)}{hint}")
        if type.__class__ is not str:
            _check_str("type", type, optional=False)
        extras: dict[str, Any] = {}
        if legacy:
            default_title = _legacy_arguments(legacy, default_title, extras)
        if id is not None:
            _check_str("id", id)
        if parent_id is not None:
            _check_str("parent_id", parent_id)
        if thread_id is not None:
            _check_str("thread_id", thread_id)
        if language is not None:
            _check_str("language", language)
        if icon is not None:
            _check_str("icon", icon)
        if show_input.__class__ is not str and show_input.__class__ is not bool:
            raise TypeError(
                f"show_input must be a bool or a language string, got {type_name(show_input)}"
            )
        if default_open is not False:
            _check_bool("default_open", default_open)
        if auto_collapse is not False:
            _check_bool("auto_collapse", auto_collapse)
        if collapsed_on_success is not True:
            _check_bool("collapsed_on_success", collapsed_on_success)
        if status != "pending":
            _check_status(status)
        if context_exception != "raise":
            _check_context_exception(context_exception)
        if default_title != "":
            _check_str("default_title", default_title, optional=False)
        for title_name, title in (
            ("pending_title", pending_title),
            ("running_title", running_title),
            ("success_title", success_title),
            ("failed_title", failed_title),
        ):
            if title is not None:
                _check_str(title_name, title)
        if elements is not None and not isinstance(elements, list):
            raise TypeError(f"elements must be a list, got {type_name(elements)}")

        self._name = name or ""
        self._type = type
        self._id = id
        self._parent_id = parent_id
        self.elements = elements if elements is not None else []
        self._metadata = _check_metadata(metadata) if metadata is not None else {}
        self._tags = _check_tags(tags) if tags is not None else None
        self._language = language
        self._show_input = show_input
        self._default_open = default_open
        self._auto_collapse = auto_collapse
        self.icon = icon
        self.thread_id = thread_id
        self._status = status
        self.default_title = default_title
        self.pending_title = pending_title
        self.running_title = running_title
        self.success_title = success_title
        self.failed_title = failed_title
        self._failed_title: str | None = None
        self._collapsed_on_success = collapsed_on_success
        self._context_exception = context_exception
        self.default_badges: dict[str, Any] | None = extras.get("default_badges")

        self._input: Any = None
        self._input_parts: list[str] | None = None
        self._output: Any = None
        self._output_parts: list[str] | None = None
        self._output_set = False
        self._is_error = False
        self._error_recorded = False
        self._error: str | None = None
        self._streaming = False
        self._tokens = 0
        self._first_token_ns: int | None = None
        self._token_events: TokenEvents | None = None
        self._attributes: dict[str, Any] | None = None

        self._state = _NEW
        self._started_type = type
        self._span: Span = INVALID_SPAN
        self._parent_step: Step | None = None
        self._foreign_parent: str | None = None
        self._ctx_tokens: list[object] | None = None
        self._created_ns = time.time_ns()
        self._start_ns: int | None = None
        self._end_ns: int | None = None
        self._start_override: str | None = None
        self._end_override: str | None = None
        self.created_at_override: str | None = None
        self.generation: Any = None
        self.persisted = False
        self.fail_on_persist_error = False

    # ------------------------------------------------------------------ validated attributes

    @property
    def id(self) -> str:
        """The step id: a UUID string unless given. Generated when first needed."""
        step_id = self._id
        if step_id is None:
            step_id = self._id = _new_id()
            if self._state == _OPEN:
                STEPS_BY_ID[step_id] = self
        return step_id

    @id.setter
    def id(self, value: str) -> None:
        _check_str("id", value, optional=False)
        if self._state == _OPEN and self._id is not None:
            STEPS_BY_ID.pop(self._id, None)
            STEPS_BY_ID[value] = self
        self._id = value

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str | None) -> None:
        _check_str("name", value)
        self._name = value or ""
        if self._state == _OPEN and self._span is not INVALID_SPAN:
            self._span.update_name(self._span_name())

    @property
    def type(self) -> str:
        return self._type

    @type.setter
    def type(self, value: str) -> None:
        _check_str("type", value, optional=False)
        self._type = value

    @property
    def parent_id(self) -> str | None:
        """The chat parent: explicit, else the enclosing foreign span or step (set on start)."""
        if self._parent_id is not None:
            return self._parent_id
        if self._foreign_parent is not None:
            return self._foreign_parent
        parent = self._parent_step
        return parent.id if parent is not None else None

    @parent_id.setter
    def parent_id(self, value: str | None) -> None:
        _check_str("parent_id", value)
        self._parent_id = value

    @property
    def status(self) -> str:
        """``pending`` → ``running`` (enter) → ``success`` or ``failed``."""
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        _check_status(value)
        if value != self._status:
            self._status = value
            if value in ("success", "failed") and self._state == _OPEN and not self._ctx_tokens:
                # Begun outside a ``with`` (Panel's status pattern, Chainlit's send()): a final
                # status is the end of the step.
                self._close()
                return
            self._changed()

    @property
    def show_input(self) -> bool | str:
        """Whether the chat shows the input; a string names its language (``"json"``)."""
        return self._show_input

    @show_input.setter
    def show_input(self, value: bool | str) -> None:
        if not isinstance(value, (bool, str)):
            raise TypeError(
                f"show_input must be a bool or a language string, got {type_name(value)}"
            )
        self._show_input = value

    @property
    def default_open(self) -> bool:
        return self._default_open

    @default_open.setter
    def default_open(self, value: bool) -> None:
        _check_bool("default_open", value)
        self._default_open = value

    @property
    def auto_collapse(self) -> bool:
        return self._auto_collapse

    @auto_collapse.setter
    def auto_collapse(self, value: bool) -> None:
        _check_bool("auto_collapse", value)
        self._auto_collapse = value

    @property
    def collapsed_on_success(self) -> bool:
        return self._collapsed_on_success

    @collapsed_on_success.setter
    def collapsed_on_success(self, value: bool) -> None:
        _check_bool("collapsed_on_success", value)
        self._collapsed_on_success = value

    @property
    def context_exception(self) -> str:
        return self._context_exception

    @context_exception.setter
    def context_exception(self, value: str) -> None:
        _check_context_exception(value)
        self._context_exception = value

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any] | None) -> None:
        self._metadata = _check_metadata(value)

    @property
    def tags(self) -> list[str] | None:
        return self._tags

    @tags.setter
    def tags(self, value: list[str] | None) -> None:
        self._tags = _check_tags(value)

    @property
    def language(self) -> str | None:
        return self._language

    @language.setter
    def language(self, value: str | None) -> None:
        _check_str("language", value)
        self._language = value

    @property
    def input(self) -> Any:
        """What went into the step (any value; strings and JSON structures are shown best)."""
        if self._input_parts:
            self._input = _joined(self._input, self._input_parts)
            self._input_parts = None
        return "" if self._input is None else self._input

    @input.setter
    def input(self, value: Any) -> None:
        self._input = value
        self._input_parts = None

    @property
    def output(self) -> Any:
        """What came out of the step; streamed tokens accumulate here."""
        if self._output_parts:
            self._output = _joined(self._output, self._output_parts)
            self._output_parts = None
        return "" if self._output is None else self._output

    @output.setter
    def output(self, value: Any) -> None:
        self._output = value
        self._output_parts = None
        self._output_set = True

    @property
    def is_error(self) -> bool:
        return self._is_error or self._status == "failed"

    @is_error.setter
    def is_error(self, value: bool) -> None:
        self._is_error = bool(value)

    @property
    def streaming(self) -> bool:
        return self._streaming

    @property
    def title(self) -> str:
        """The title for the current status, resolved as Panel's ChatStep does."""
        status = self._status
        if status == "pending" and self.pending_title is not None:
            return self.pending_title
        if status == "running" and self.running_title is not None:
            return self.running_title
        if status == "success" and self.success_title is not None:
            return self.success_title
        if status == "failed":
            if self.failed_title is not None:
                return self.failed_title
            if self._failed_title:
                return self._failed_title
        return self.default_title

    # Chainlit's timestamps: ISO-8601 UTC strings, assignable.
    @property
    def created_at(self) -> str:
        return self.created_at_override or _iso(self._created_ns)  # type: ignore[return-value]

    @created_at.setter
    def created_at(self, value: str | None) -> None:
        self.created_at_override = value

    @property
    def start(self) -> Any:
        """ISO start time (Chainlit); calling it (``step.start()``) begins the step instead."""
        return _StartAccessor(self)

    @start.setter
    def start(self, value: str | None) -> None:
        self._start_override = value

    @property
    def end(self) -> Any:
        """ISO end time (Chainlit); calling it (``step.end(exc)``) ends the step instead."""
        return _EndAccessor(self)

    @end.setter
    def end(self, value: str | None) -> None:
        self._end_override = value

    @property
    def start_time(self) -> str | None:
        return self._start_override or _iso(self._start_ns)

    @property
    def end_time(self) -> str | None:
        return self._end_override or _iso(self._end_ns)

    @property
    def duration_s(self) -> float | None:
        """Seconds between start and end (``None`` while not ended)."""
        if self._start_ns is None or self._end_ns is None:
            return None
        return (self._end_ns - self._start_ns) / 1e9

    @property
    def time_to_first_token_s(self) -> float | None:
        if self._first_token_ns is None or self._start_ns is None:
            return None
        return max(0.0, (self._first_token_ns - self._start_ns) / 1e9)

    @property
    def span(self) -> Span:
        """The OpenTelemetry span behind this step (``INVALID_SPAN`` when none is recorded)."""
        return self._span

    @property
    def trace_id(self) -> str | None:
        ctx = self._span.get_span_context()
        return format(ctx.trace_id, "032x") if ctx.is_valid else None

    @property
    def span_id(self) -> str | None:
        ctx = self._span.get_span_context()
        return format(ctx.span_id, "016x") if ctx.is_valid else None

    @property
    def _ended(self) -> bool:
        return self._state == _ENDED

    # ------------------------------------------------------------------ lifecycle

    def _begin(self, running: bool = True) -> Step:
        """Start the span and announce the step, without making it current.

        ``running=False`` (a step begun by its first streamed token) keeps the status, as
        Panel's ``stream`` does.
        """
        state = self._state
        if state == _OPEN:
            return self
        if state == _ENDED:  # re-entered (Panel allows it): a fresh span for the same step
            self._end_ns = None
            self._token_events = None
        ctx = otel_context.get_current()
        parent: Step | None = None
        if self._parent_id is not None:
            parent = STEPS_BY_ID.get(self._parent_id)
        if parent is not None:
            parent_ctx = parent._context_for_children(ctx)
        else:
            parent = ctx.get(_context.STEP_KEY)  # type: ignore[assignment]
            parent_ctx = ctx
        self._parent_step = parent
        if self.thread_id is None:
            self.thread_id = (
                parent.thread_id if parent is not None else (_context.provided_thread_id())
            )
        self._state = _OPEN
        self._start_ns = time.time_ns()
        if running:
            self._status = "running"
        OPEN_STEPS[id(self)] = self
        tracer = _tracing.get_tracer()
        if tracer is not None:
            try:
                self._span = span = tracer.start_span(
                    self._span_name(),
                    context=parent_ctx,
                    attributes=start_attributes(self),
                    start_time=self._start_ns,
                    record_exception=False,
                    set_status_on_exception=False,
                )
            except Exception:
                _log_telemetry_error("starting the span")
                span = INVALID_SPAN
            if self._id is None and span.is_recording():
                self.id  # noqa: B018 - materialise: recorded as step.id
        if self._id is not None:
            STEPS_BY_ID[self._id] = self
        if tracer is not None and self._parent_id is None:
            self._foreign_parent = _foreign_parent_id(parent, parent_ctx)
        if _BUS.listeners:
            ensure_mirroring()
            _BUS.publish(_live.NEW, self.to_dict())
        _ensure_exit_handler()
        return self

    def _context_for_children(self, fallback: Context) -> Context:
        span = self._span
        if _SPAN_KEY is not None:
            return Context({**fallback, _SPAN_KEY: span, _context.STEP_KEY: self})
        return otel_context.set_value(
            _context.STEP_KEY, self, trace.set_span_in_context(span, fallback)
        )

    def _attach(self) -> object:
        ctx = otel_context.get_current()
        if self._span is INVALID_SPAN:
            new = Context({**ctx, _context.STEP_KEY: self})
        else:
            new = self._context_for_children(ctx)
        return otel_context.attach(new)

    @staticmethod
    def _detach(token: object) -> None:
        if _RUNTIME_CONTEXT is None:  # pragma: no cover
            otel_context.detach(token)  # type: ignore[arg-type]
            return
        try:
            _RUNTIME_CONTEXT.detach(token)  # type: ignore[arg-type]
        except ValueError:
            # Created in another context (a generator closed by the GC or another task):
            # the context it belonged to is gone, there is nothing to restore.
            pass

    def _finish(self, exc: BaseException | None) -> bool:
        """End the step for the way its body ended. Returns True to swallow ``exc``."""
        if self._state != _OPEN:
            if self._state == _NEW:
                self._begin()
            else:
                return False
        swallow = False
        if exc is not None:
            cancelled = not isinstance(exc, Exception)
            mode = self._context_exception
            if mode == "ignore" and not cancelled:
                self._record_exception(exc, escaped=False)
                swallow = True
                exc = None
            else:
                self._record_failure(exc, verbose=(mode == "verbose"))
                swallow = mode in ("summary", "verbose") and not cancelled
        if exc is None and self._status in ("pending", "running"):
            self._status = "success"
        self._close()
        return swallow

    def _record_failure(self, exc: BaseException, *, verbose: bool) -> None:
        self._status = "failed"
        self._error = truncate(f"{type(exc).__name__}: {safe_str(exc)}", settings.max_value_length)
        if self.failed_title is None:
            self._failed_title = f"Error: {type(exc).__name__!r}"
            if verbose:
                message = (
                    "```python\n"
                    + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                    + "```"
                )
            else:
                message = safe_str(exc)
            if message:
                self._append_output(message)
        self._record_exception(exc, escaped=True)
        span = self._span
        if span is not INVALID_SPAN:
            try:
                self._error_recorded = True
                description = truncate(
                    f"{type(exc).__name__}: {safe_str(exc)}", settings.max_value_length
                )
                span.set_status(Status(StatusCode.ERROR, description))
            except Exception:
                _log_telemetry_error("setting the error status")

    def _record_exception(self, exc: BaseException, *, escaped: bool) -> None:
        span = self._span
        if span is INVALID_SPAN:
            return
        limit = settings.max_value_length
        message = truncate(safe_str(exc), limit)
        try:
            if self._token_events is not None:
                self._token_events.flush()  # tokens streamed before the error come first
            span.record_exception(
                exc, attributes={"exception.escaped": escaped, "exception.message": message}
            )
        except Exception:
            # The SDK formats the exception itself; when that fails (a __str__ that raises),
            # record the standard event by hand rather than lose it.
            try:
                stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            except Exception:
                stack = ""
            try:
                span.add_event(
                    "exception",
                    {
                        "exception.type": type(exc).__qualname__,
                        "exception.message": message,
                        "exception.stacktrace": truncate(stack, limit),
                        "exception.escaped": escaped,
                    },
                )
            except Exception:
                _log_telemetry_error("recording the exception")

    def _append_output(self, text: str) -> None:
        current = self.output
        if not isinstance(current, str):
            current = to_text(current)
        separator = "\n" if current and not current.endswith("\n") else ""
        self._output = current + separator + text
        self._output_parts = None

    def _close(self) -> None:
        self._state = _ENDED
        self._end_ns = time.time_ns()
        self._streaming = False
        OPEN_STEPS.pop(id(self), None)
        if self._id is not None and STEPS_BY_ID.get(self._id) is self:
            del STEPS_BY_ID[self._id]
        span = self._span
        if span is not INVALID_SPAN:
            try:
                if self._token_events is not None:
                    self._token_events.flush()
                    self._token_events = None
                span.set_attributes(end_attributes(self))
                if self._status == "failed" and not self._error_recorded:
                    # failed without an exception (set in the body): still an error span
                    span.set_status(Status(StatusCode.ERROR, self.title or "step failed"))
            except Exception:
                _log_telemetry_error("recording the step's final attributes")
            finally:
                try:
                    span.end(end_time=self._end_ns)  # whatever happened above, never lose it
                except Exception:
                    _log_telemetry_error("ending the span")
        if _BUS.listeners:
            _BUS.publish(_live.UPDATE, self.to_dict())

    def _changed(self) -> None:
        """Push a live update for Panel-style reactive fields (status, titles)."""
        if self._state != _NEW and _BUS.listeners:
            _BUS.publish(_live.UPDATE, self.to_dict())

    # ------------------------------------------------------------------ manual lifecycle

    def begin(self) -> Step:
        """Start the step without making it current (for work that outlives one block)."""
        return self._begin()

    def finish(self, exception: BaseException | None = None) -> None:
        """End the step once; with ``exception`` it is recorded and the step fails."""
        if self._state == _ENDED:
            return
        if exception is None:
            self._finish(None)
            return
        if self._state == _NEW:
            self._begin()
        self._record_failure(exception, verbose=False)
        self._close()

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> Step:
        self._begin()
        self._push_token()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            return self._finish(exc)
        finally:
            self._pop_token()

    async def __aenter__(self) -> Step:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self.__exit__(exc_type, exc, tb)

    # Context tokens of nested ``with`` blocks on the same step, innermost last.
    def _push_token(self) -> None:
        token = self._attach()
        if self._ctx_tokens is None:
            self._ctx_tokens = [token]
        else:
            self._ctx_tokens.append(token)

    def _pop_token(self) -> None:
        if self._ctx_tokens:
            self._detach(self._ctx_tokens.pop())

    # ------------------------------------------------------------------ decorator

    def __call__(self, func: F) -> F:
        """``@Step(name=..., type=...)``: each call of ``func`` runs in a fresh copy of the step."""
        from steptrace._decorate import decorate

        return decorate(func, self._template())

    def _template(self) -> dict[str, Any]:
        return {
            "name": self._name or None,
            "type": self._type,
            "id": self._id,
            "parent_id": self._parent_id,
            "elements": list(self.elements),
            "metadata": dict(self._metadata),
            "tags": list(self._tags) if self._tags is not None else None,
            "language": self._language,
            "show_input": self.show_input,
            "default_open": self.default_open,
            "auto_collapse": self.auto_collapse,
            "icon": self.icon,
            "thread_id": self.thread_id,
            "default_title": self.default_title,
            "pending_title": self.pending_title,
            "running_title": self.running_title,
            "success_title": self.success_title,
            "failed_title": self.failed_title,
            "collapsed_on_success": self.collapsed_on_success,
            "context_exception": self._context_exception,
            "default_badges": self.default_badges,
        }

    # ------------------------------------------------------------------ streaming

    def stream_token(
        self, token: str | None, is_sequence: bool = False, is_input: bool = False
    ) -> _Ready:
        """Append ``token`` to the output (or the input); ``is_sequence`` replaces instead."""
        if token.__class__ is not str:
            if token is None:
                return _DONE
            raise TypeError(f"token must be a string, got {type_name(token)}")
        if not token:
            return _DONE
        if self._state != _OPEN:
            if self._state == _NEW:
                self._begin(running=False)
            # tokens after the end still reach the value and the chat, not the ended span
        if is_input:
            if is_sequence:
                self._input = token
                self._input_parts = None
            else:
                parts = self._input_parts
                if parts is None:
                    self._input_parts = [token]
                else:
                    parts.append(token)
        else:
            self._output_set = True
            if is_sequence:
                self._output = token
                self._output_parts = None
            else:
                parts = self._output_parts
                if parts is None:
                    self._output_parts = [token]
                else:
                    parts.append(token)
        now = time.time_ns()
        self._tokens += 1
        if self._first_token_ns is None:
            self._first_token(now)
        events = self._token_events
        if events is not None:
            if settings.redact is not None:
                token = apply_redaction(settings.redact, token, "token")
            events.add(token, is_input, is_sequence, now)
        if _BUS.listeners:
            if self._streaming:
                if settings.redact is not None and events is None:
                    token = apply_redaction(settings.redact, token, "token")
                _BUS.publish_token(self.id, self.thread_id, token, is_sequence, is_input)
            else:
                self._streaming = True
                _BUS.publish(_live.STREAM_START, self.to_dict())
        else:
            self._streaming = True
        return _DONE

    def _first_token(self, now: int) -> None:
        self._first_token_ns = now
        span = self._span
        if span is not INVALID_SPAN and self._state == _OPEN and span.is_recording():
            try:
                span.set_attribute(
                    "step.time_to_first_token_s", max(0.0, (now - self._start_ns) / 1e9)
                )
                self._token_events = TokenEvents(span, now)
            except Exception:
                _log_telemetry_error("recording the first token")

    def stream(self, token: str | None, replace: bool = False) -> _Ready:
        """Panel's ``ChatStep.stream``: append to the output, or replace it."""
        if token is None:
            token = ""
        if replace and token == "":
            self.output = ""
            self._changed()
            return _DONE
        return self.stream_token(token, is_sequence=replace)

    def stream_title(self, token: str, status: str = "running", replace: bool = False) -> _Ready:
        """Panel's ``ChatStep.stream_title``: append to (or replace) the title for ``status``."""
        if status not in _TITLE_STATUSES:
            raise ValueError(f"status must be one of {', '.join(_TITLE_STATUSES)}; got {status!r}")
        if token is None:
            token = ""
        _check_str("token", token, optional=False)
        attribute = f"{status}_title"
        current = getattr(self, attribute) or ""
        setattr(self, attribute, token if replace else current + token)
        self._changed()
        return _DONE

    # ------------------------------------------------------------------ Chainlit methods

    def send(self) -> _Ready:
        """Show the step (Chainlit): starts it if needed, otherwise pushes its current state."""
        if self._state == _NEW:
            self._begin()
        elif _BUS.listeners:
            _BUS.publish(_live.NEW, self.to_dict())
        self._streaming = False
        return _Ready(self)

    def update(self) -> _Ready:
        """Push the current state to the chat. After the step ended it reaches the chat only."""
        self._streaming = False
        # Nothing was created in the chat yet: an update would precede its create.
        if self._state != _NEW and _BUS.listeners:
            _BUS.publish(_live.UPDATE, self.to_dict())
        return _TRUE

    def remove(self) -> _Ready:
        """Remove the step (and its children) from the chat."""
        if self._state != _NEW and _BUS.listeners:
            _BUS.publish(_live.DELETE, self.to_dict())
        return _TRUE

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        """Extra span attributes (e.g. ``gen_ai.*``): on the live span at once, or at its start
        if the step has not begun; ignored once it ended. Values are serialised safely."""
        if not isinstance(attributes, dict):
            raise TypeError(f"attributes must be a dict, got {type_name(attributes)}")
        state = self._state
        if state == _ENDED:
            return
        if state == _NEW:
            if self._attributes is None:
                self._attributes = dict(attributes)
            else:
                self._attributes.update(attributes)
            return
        span = self._span
        if span is not INVALID_SPAN:
            try:
                span.set_attributes(extra_attributes(attributes))
            except Exception:
                _log_telemetry_error("setting attributes")

    @contextlib.contextmanager
    def activate(self) -> Iterator[Step]:
        """Make the step current for a block without beginning or ending it: steps and spans
        opened inside nest under it (instrumentation uses it around a request whose step
        outlives the call)."""
        if self._state == _NEW:
            self._begin()
        token = self._attach()
        try:
            yield self
        finally:
            self._detach(token)

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        """The Chainlit wire dict (camelCase) plus ``status``, ``title``, ``traceId``, ``spanId``.

        Input and output travel as strings (JSON for structures), redacted and bounded.
        """
        redact = settings.redact
        limit = settings.max_value_length * 16
        output = self.output
        language = self._language
        if language is None and not isinstance(output, str):
            language = "json" if isinstance(output, (dict, list, tuple)) else "text"
        input_text = to_text(self.input, limit)
        output_text = to_text(output, limit)
        if redact is not None:
            input_text = apply_redaction(redact, input_text, "input")
            output_text = apply_redaction(redact, output_text, "output")
        metadata = dict(self._metadata)
        if self.icon is not None:
            metadata["icon"] = self.icon
        span_ctx = self._span.get_span_context()
        valid = span_ctx.is_valid
        return {
            "id": self.id,
            "name": self._name,
            "type": self._type,
            "threadId": self.thread_id,
            "parentId": self.parent_id,
            "input": input_text,
            "output": output_text,
            "isError": self.is_error,
            "error": self._error,
            "streaming": self._streaming,
            "metadata": metadata,
            "tags": self._tags,
            "createdAt": self.created_at,
            "start": self.start_time,
            "end": self.end_time,
            "language": language,
            "showInput": self.show_input,
            "defaultOpen": self.default_open,
            "autoCollapse": self.auto_collapse,
            "generation": None,
            "status": self._status,
            "title": self.title,
            "traceId": format(span_ctx.trace_id, "032x") if valid else None,
            "spanId": format(span_ctx.span_id, "016x") if valid else None,
            "icon": self.icon,
            "collapsedOnSuccess": self.collapsed_on_success,
            "badges": {k: safe_str(v) for k, v in self.default_badges.items()}
            if self.default_badges
            else None,
            "timeToFirstToken": self.time_to_first_token_s,
            "duration": self.duration_s,
        }

    def serialize(
        self, prefix_with_viewable_label: bool = True, prefix_with_container_label: bool = True
    ) -> str:
        """Panel's ``serialize``: the step's text content (its output)."""
        return to_text(self.output)

    def __str__(self) -> str:
        return self.serialize()

    def __repr__(self) -> str:
        return (
            f"Step(name={self._name!r}, type={self._type!r}, status={self._status!r}, "
            f"id={self._id!r})"
        )

    def _span_name(self) -> str:
        return self._name or self._type


class _StartAccessor(str):
    """``step.start``: the ISO start time (Chainlit) that can also be called to begin the step."""

    __slots__ = ("_step",)

    def __new__(cls, step: Step) -> _StartAccessor:
        obj = super().__new__(cls, step.start_time or "")
        obj._step = step
        return obj

    def __call__(self) -> Step:
        return self._step._begin()

    def __bool__(self) -> bool:
        return self._step.start_time is not None

    def __eq__(self, other: object) -> bool:
        if other is None:
            return self._step.start_time is None
        return str.__eq__(self, other)

    __hash__ = str.__hash__


class _EndAccessor(str):
    """``step.end``: the ISO end time (Chainlit) that can also be called to end the step."""

    __slots__ = ("_step",)

    def __new__(cls, step: Step) -> _EndAccessor:
        obj = super().__new__(cls, step.end_time or "")
        obj._step = step
        return obj

    def __call__(self, exception: BaseException | None = None) -> None:
        self._step.finish(exception)

    def __bool__(self) -> bool:
        return self._step.end_time is not None

    def __eq__(self, other: object) -> bool:
        if other is None:
            return self._step.end_time is None
        return str.__eq__(self, other)

    __hash__ = str.__hash__


# ---------------------------------------------------------------------- helpers


def type_name(value: Any) -> str:
    return type(value).__name__


def _check_context_exception(value: Any) -> None:
    if value not in CONTEXT_EXCEPTION_MODES:
        if not isinstance(value, str):
            raise TypeError(f"context_exception must be a string, got {type_name(value)}")
        raise ValueError(
            f"context_exception must be one of {', '.join(CONTEXT_EXCEPTION_MODES)}; got {value!r}"
        )


def _check_badges(badges: Any) -> None:
    if badges is None:
        return
    if not isinstance(badges, dict):
        raise TypeError(f"default_badges must be a dict, got {type_name(badges)}")
    unknown = set(badges) - set(STATUSES)
    if unknown:
        raise ValueError(
            f"default_badges keys must be among {', '.join(STATUSES)}; "
            f"got {sorted(map(str, unknown))}"
        )


def _legacy_arguments(legacy: dict[str, Any], default_title: str, extras: dict[str, Any]) -> str:
    """Older Chainlit arguments are accepted and ignored; Panel's ``title`` sets default_title
    and Panel's ``default_badges`` (status → badge) travel to the chat UI."""
    for old in ("root", "disable_feedback"):
        if old in legacy:
            legacy.pop(old)
            warnings.warn(
                f"Step({old}=...) is no longer used and is ignored",
                DeprecationWarning,
                stacklevel=3,
            )
    if "default_badges" in legacy:
        badges = legacy.pop("default_badges")
        _check_badges(badges)
        extras["default_badges"] = badges
    if "title" in legacy:
        title = legacy.pop("title")
        if title and default_title:
            raise ValueError("Cannot set both title and default_title.")
        if title is not None:
            _check_str("title", title)
            default_title = title
    if legacy:
        unknown = ", ".join(sorted(legacy))
        raise TypeError(f"Step() got unexpected keyword argument(s): {unknown}")
    return default_title


def _joined(base: Any, parts: list[str]) -> str:
    if base is None or (isinstance(base, str) and not base):
        return "".join(parts)
    prefix = base if isinstance(base, str) else to_text(base)
    return prefix + "".join(parts)


def _foreign_parent_id(parent: Step | None, ctx: Context) -> str | None:
    """The id of a recording span from another instrumentation nested inside the parent step
    (mirrored to the chat as a step of its own), or ``None``."""
    current_span = ctx.get(_SPAN_KEY) if _SPAN_KEY is not None else trace.get_current_span(ctx)
    if (
        current_span is not None
        and (parent is None or current_span is not parent._span)
        and current_span.is_recording()  # type: ignore[union-attr]
    ):
        span_ctx = current_span.get_span_context()  # type: ignore[union-attr]
        return format(span_ctx.span_id, "016x")
    return None


def _log_telemetry_error(what: str) -> None:
    import logging

    logging.getLogger("steptrace").exception("steptrace: telemetry error while %s", what)


def _ensure_exit_handler() -> None:
    global _ensure_exit_handler
    from steptrace._lifecycle import register_exit_handler

    register_exit_handler()

    def _noop() -> None:
        return None

    _ensure_exit_handler = _noop  # type: ignore[assignment]


def span_kind(step: Step) -> str:
    return span_kind_for(step.type)
