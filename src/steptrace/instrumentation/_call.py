"""One LLM request as an ``llm`` Step, from the call until its answer has ended.

:class:`LLMCall` owns the Step: it starts it (not as the current step, since a stream outlives
the call), puts the request attributes on it, takes the response (whole, or chunk by chunk from a
stream proxy), and ends it exactly once. Provider adapters subclass it and implement
``request_attributes``/``input_messages`` (what was asked) and ``on_response``/``on_chunk``
(what came back). Every method that runs in the app's call path logs its own errors: telemetry
never raises into the app.

Streams get two extra attributes. ``step.stream.completed`` is true only when the provider
signalled the end of its answer (OpenAI's ``finish_reason``, Anthropic's ``stop_reason``, a
terminal Responses API event); a stream closed, broken out of, dropped, failed or cut off by the
server before that is *truncated*: completed false and no ``gen_ai.response.finish_reasons``
(the finish reasons come with the same signal). ``step.stream.ended_by`` says how the stream's step
ended: ``exhausted``, ``closed``, ``error`` or ``garbage_collected``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from steptrace._step import Step
from steptrace.instrumentation import _genai as g
from steptrace.instrumentation._content import capture_message_content

logger = logging.getLogger("steptrace.instrumentation")

EXHAUSTED = "exhausted"
CLOSED = "closed"
ERROR = "error"
COLLECTED = "garbage_collected"


def _noop(_token: str) -> None:
    return None


class LLMProviderError(Exception):
    """The provider reported a failure inside a response that the client returned normally
    (a Responses API ``failed`` status or ``error`` event): the step fails with this."""


class LLMCall:
    """State of one LLM call and its Step; subclassed per provider API."""

    provider: ClassVar[str] = ""
    operation: ClassVar[str] = "chat"
    #: Request arguments that hold content (left out of ``llm.invocation_parameters``).
    content_arguments: ClassVar[tuple[str, ...]] = ("messages",)

    def __init__(self, instance: Any, kwargs: Mapping[str, Any], *, stream: bool) -> None:
        self.capture = capture_message_content()
        self.stream = stream
        model = kwargs.get("model")
        self.request_model = model if isinstance(model, str) else None
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.finish_reasons: list[str] = []
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read: int | None = None
        self.cache_creation: int | None = None
        self.reasoning_tokens: int | None = None
        self.tool_calls: list[g.ToolCallInfo] = []
        #: Answers of choices other than the first (OpenAI ``n`` > 1), by choice index.
        self.other_choices: dict[int, list[str]] = {}
        #: Tool calls of a stream being assembled, by the provider's index.
        self.calls_by_index: dict[int, g.ToolCallInfo] = {}
        self.completed = False
        #: Error code and message the provider reported without the client raising.
        self.provider_error: str | None = None
        self.provider_message: str | None = None
        self.first_chunk_s: float | None = None
        self._ended = False
        self._end_lock = threading.Lock()
        self._started = time.perf_counter()
        self._text_seen = False
        self.step = Step(name=f"{self.operation} {self.request_model or 'unknown'}", type="llm")
        #: ``step.stream_token`` when content is captured, else a no-op (hot path of streams).
        self.emit = self.step.stream_token if self.capture else _noop
        self._start(instance, kwargs)

    # -- request -----------------------------------------------------------------------------

    def request_attributes(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Provider-specific request attributes (parameters)."""
        return {}

    def input_messages(self, kwargs: Mapping[str, Any]) -> list[g.Message] | None:
        """The request's messages, or ``None`` when they cannot be read without side effects."""
        return None

    def _start(self, instance: Any, kwargs: Mapping[str, Any]) -> None:
        step = self.step
        attributes: dict[str, Any] = {
            g.OPERATION: self.operation,
            g.PROVIDER: self.provider,
            g.LLM_PROVIDER: self.provider,
            g.LLM_SYSTEM: self.provider,
            g.REQUEST_STREAM: self.stream,
        }
        if self.request_model is not None:
            attributes[g.REQUEST_MODEL] = self.request_model
            attributes[g.LLM_MODEL_NAME] = self.request_model
        try:
            attributes.update(g.server_attributes_of(instance))
            attributes.update(self.request_attributes(kwargs))
            params = g.invocation_parameters(kwargs, self.content_arguments)
            if params is not None:
                attributes[g.LLM_INVOCATION_PARAMETERS] = params
            if self.capture:
                messages = self.input_messages(kwargs)
                if messages is not None:
                    step.input = [m.as_dict() for m in messages]
                    dropped = g.flatten_messages(
                        g.LLM_INPUT_MESSAGES, messages, g.INPUT_MESSAGE_BUDGET, attributes
                    )
                    if dropped:
                        attributes[g.INPUT_MESSAGES_DROPPED] = dropped
                g.tools_attributes(kwargs.get("tools"), attributes)
        except Exception:
            logger.exception("steptrace: could not read the %s request", self.provider)
        step.set_attributes(attributes)
        step.begin()

    # -- context during the HTTP call --------------------------------------------------------

    def activate(self) -> object | None:
        """Make the llm step current while the client sends the request, so that HTTP spans
        (and the client library's own spans) nest under it. Returns a token for ``deactivate``.
        This is ``Step.activate()`` split in two, for wrappers that cannot use a ``with``."""
        try:
            return self.step._attach()
        except Exception:
            logger.exception("steptrace: could not make the llm step current")
            return None

    def deactivate(self, token: object | None) -> None:
        if token is not None:
            self.step._detach(token)

    # -- response ----------------------------------------------------------------------------

    def on_response(self, response: Any) -> None:
        """Record a whole (non-streamed) response."""

    def on_chunk(self, chunk: Any) -> None:
        """Record one streamed chunk/event; streams its text into the step."""

    def first_chunk(self) -> None:
        self.first_chunk_s = time.perf_counter() - self._started

    def text(self, token: str) -> None:
        """An answer text delta (first choice): streamed into the step."""
        self._text_seen = True
        self.emit(token)

    def set_text(self, text: str | None) -> None:
        """The whole answer text of a non-streamed response."""
        if text:
            self._text_seen = True
            if self.capture:
                self.step.output = text

    # -- end ---------------------------------------------------------------------------------

    def end(self, exception: BaseException | None = None, ended_by: str | None = None) -> None:
        """End the step exactly once; with ``exception`` it is failed and the error recorded."""
        with self._end_lock:  # close() in one thread may race the last chunk in another
            if self._ended:
                return
            self._ended = True
        step = self.step
        if exception is None and self.provider_error is not None:
            message = self.provider_message or self.provider_error
            exception = LLMProviderError(f"{self.provider_error}: {message}")
        try:
            step.set_attributes(self._final_attributes(exception, ended_by))
            if self.capture and not self._text_seen and self.tool_calls:
                step.output = [
                    {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
                ]
        except Exception:
            logger.exception("steptrace: could not record the %s response", self.provider)
        try:
            step.finish(exception)
        except Exception:
            logger.exception("steptrace: could not end the llm step")

    def _final_attributes(
        self, exception: BaseException | None, ended_by: str | None
    ) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        if self.response_id is not None:
            attributes[g.RESPONSE_ID] = self.response_id
        if self.response_model is not None:
            attributes[g.RESPONSE_MODEL] = self.response_model
            attributes[g.LLM_MODEL_NAME] = self.response_model
        if self.finish_reasons:
            attributes[g.RESPONSE_FINISH_REASONS] = list(self.finish_reasons)
        g.usage_attributes(
            attributes,
            self.input_tokens,
            self.output_tokens,
            cache_read=self.cache_read,
            cache_creation=self.cache_creation,
            reasoning=self.reasoning_tokens,
        )
        if self.stream:
            attributes[g.STREAM_COMPLETED] = self.completed
            attributes[g.STREAM_ENDED_BY] = ended_by or ERROR
            if self.first_chunk_s is not None:
                attributes[g.RESPONSE_TIME_TO_FIRST_CHUNK] = self.first_chunk_s
        if self.provider_error is not None:
            attributes[g.ERROR_TYPE] = self.provider_error
        elif exception is not None:
            attributes[g.ERROR_TYPE] = type(exception).__qualname__
            status = getattr(exception, "status_code", None)
            if isinstance(status, int):
                attributes[g.HTTP_STATUS_CODE] = status
        if self.capture:
            self._output_message_attributes(attributes)
        return attributes

    def _output_message_attributes(self, attributes: dict[str, Any]) -> None:
        output = self.step.output
        messages = [
            g.Message(
                role="assistant",
                content=output if isinstance(output, str) and self._text_seen else None,
                tool_calls=list(self.tool_calls),
            )
        ]
        for index in sorted(self.other_choices):
            messages.append(g.Message(role="assistant", content="".join(self.other_choices[index])))
        if messages[0].content is None and not messages[0].tool_calls and len(messages) == 1:
            return
        g.flatten_messages(g.LLM_OUTPUT_MESSAGES, messages, g.OUTPUT_MESSAGE_BUDGET, attributes)
