"""OpenAI auto-instrumentation: chat completions and the Responses API as ``llm`` steps.

Wrapped (sync and async clients): ``chat.completions.create`` and ``.parse``,
``responses.create`` and ``.parse``. The ``.stream()`` helpers read a stream that ``create``
opens, so they are traced through it; their managers are wrapped too, so that leaving the
helper's ``with`` block ends the step even when the stream was not read to the end.
``with_raw_response``/``with_streaming_response`` results are covered through their
``parse()``. A streamed answer streams its text deltas into the step as the caller reads them;
tool-call arguments are accumulated and shown when the step ends.

``OpenAIInstrumentor`` is an OpenTelemetry ``BaseInstrumentor`` (entry point
``steptrace_openai``), so ``opentelemetry-instrument`` loads it too.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import wrapt  # type: ignore[import-untyped]
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from steptrace.instrumentation import _genai as g
from steptrace.instrumentation._call import CLOSED, LLMCall
from steptrace.instrumentation._wrap import (
    Wrapper,
    async_wrapper,
    capturing_streams,
    client_types,
    sync_wrapper,
)

logger = logging.getLogger("steptrace.instrumentation")

_INSTRUMENTS = ("openai >= 1.40.0",)

_CHAT_MODULE = "openai.resources.chat.completions.completions"
_RESPONSES_MODULE = "openai.resources.responses.responses"


# -- requests -----------------------------------------------------------------------------------


def _part_text(part: Any) -> str:
    """Text of one content part; other parts (images, audio, files) as ``[type]``."""
    if isinstance(part, str):
        return part
    kind = g.get(part, "type")
    text = g.get(part, "text")
    if isinstance(text, str):
        return text
    refusal = g.get(part, "refusal")
    if isinstance(refusal, str):
        return refusal
    return f"[{kind or 'part'}]"


def _content_text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "".join(_part_text(part) for part in content)
    return str(content)


def _chat_message(message: Any) -> g.Message:
    role = g.get(message, "role")
    out = g.Message(role=str(role or "user"), content=_content_text(g.get(message, "content")))
    for call in g.get(message, "tool_calls") or ():
        function = g.get(call, "function") or {}
        out.tool_calls.append(
            g.ToolCallInfo(
                id=g.get(call, "id"),
                name=g.get(function, "name"),
                arguments=str(g.get(function, "arguments") or ""),
            )
        )
    function_call = g.get(message, "function_call")
    if function_call:
        out.tool_calls.append(
            g.ToolCallInfo(
                name=g.get(function_call, "name"),
                arguments=str(g.get(function_call, "arguments") or ""),
            )
        )
    tool_call_id = g.get(message, "tool_call_id")
    if isinstance(tool_call_id, str):
        out.tool_call_id = tool_call_id
    return out


def _sampling_attributes(kwargs: Mapping[str, Any], max_tokens_keys: tuple[str, ...]) -> dict:
    attributes: dict[str, Any] = {}
    for key, name in (
        ("temperature", g.REQUEST_TEMPERATURE),
        ("top_p", g.REQUEST_TOP_P),
        ("frequency_penalty", g.REQUEST_FREQUENCY_PENALTY),
        ("presence_penalty", g.REQUEST_PRESENCE_PENALTY),
        ("seed", g.REQUEST_SEED),
    ):
        value = g.number(kwargs.get(key))
        if value is not None:
            attributes[name] = value
    for key in max_tokens_keys:
        value = kwargs.get(key)
        if type(value) is int:
            attributes[g.REQUEST_MAX_TOKENS] = value
            break
    return attributes


# -- chat completions ---------------------------------------------------------------------------


class ChatCompletionsCall(LLMCall):
    """``chat.completions.create``/``parse``: one ``chat {model}`` step."""

    provider = "openai"
    operation = "chat"
    content_arguments = ("messages", "tools", "functions", "prediction", "metadata")

    def request_attributes(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        attributes = _sampling_attributes(kwargs, ("max_completion_tokens", "max_tokens"))
        stop = kwargs.get("stop")
        if isinstance(stop, str):
            attributes[g.REQUEST_STOP_SEQUENCES] = [stop]
        elif isinstance(stop, (list, tuple)) and stop:
            attributes[g.REQUEST_STOP_SEQUENCES] = [str(s) for s in stop]
        n = kwargs.get("n")
        if type(n) is int and n != 1:
            attributes[g.REQUEST_CHOICE_COUNT] = n
        return attributes

    def input_messages(self, kwargs: Mapping[str, Any]) -> list[g.Message] | None:
        messages = kwargs.get("messages")
        if not isinstance(messages, (list, tuple)):
            return None  # an iterator would be consumed: leave it to the client
        return [_chat_message(m) for m in messages]

    def on_response(self, completion: Any) -> None:
        self.response_id = getattr(completion, "id", None)
        self.response_model = getattr(completion, "model", None)
        for choice in getattr(completion, "choices", None) or ():
            if choice.finish_reason:
                self.finish_reasons.append(choice.finish_reason)
            message = choice.message
            text = message.content or getattr(message, "refusal", None)
            if choice.index == 0:
                self.set_text(text)
                self.tool_calls.extend(_chat_message(message).tool_calls)
            else:
                self.other_choices[choice.index] = [text or ""]
        self._usage(getattr(completion, "usage", None))

    def on_chunk(self, chunk: Any) -> None:
        if self.first_chunk_s is None:
            self.first_chunk()
            self.response_id = chunk.id
            self.response_model = chunk.model
        for choice in chunk.choices:
            delta = choice.delta
            index = choice.index
            text = delta.content
            if index == 0:
                if text:
                    self.text(text)
                elif delta.refusal:
                    self.text(delta.refusal)
                if delta.tool_calls or delta.function_call:
                    self._tool_deltas(delta)
            elif text:
                self.other_choices.setdefault(index, []).append(text)
            reason = choice.finish_reason
            if reason:
                self.finish_reasons.append(reason)
                self.completed = True
        usage = chunk.usage
        if usage is not None:
            self._usage(usage)

    def _tool_deltas(self, delta: Any) -> None:
        calls = self.calls_by_index
        for part in delta.tool_calls or ():
            call = calls.get(part.index)
            if call is None:
                call = calls[part.index] = g.ToolCallInfo()
                self.tool_calls.append(call)
            if part.id:
                call.id = part.id
            function = part.function
            if function is not None:
                if function.name:
                    call.name = function.name
                if function.arguments:
                    call.arguments += function.arguments
        legacy = delta.function_call
        if legacy is not None:
            call = calls.get(-1)
            if call is None:
                call = calls[-1] = g.ToolCallInfo()
                self.tool_calls.append(call)
            if legacy.name:
                call.name = legacy.name
            if legacy.arguments:
                call.arguments += legacy.arguments

    def _usage(self, usage: Any) -> None:
        if usage is None:
            return
        self.input_tokens = usage.prompt_tokens
        self.output_tokens = usage.completion_tokens
        prompt_details = getattr(usage, "prompt_tokens_details", None)
        if prompt_details is not None:
            self.cache_read = getattr(prompt_details, "cached_tokens", None)
        completion_details = getattr(usage, "completion_tokens_details", None)
        if completion_details is not None:
            self.reasoning_tokens = getattr(completion_details, "reasoning_tokens", None)


# -- responses API ------------------------------------------------------------------------------


def _response_input_item(item: Any) -> g.Message:
    kind = g.get(item, "type")
    if kind == "function_call":
        return g.Message(
            role="assistant",
            tool_calls=[
                g.ToolCallInfo(
                    id=g.get(item, "call_id"),
                    name=g.get(item, "name"),
                    arguments=str(g.get(item, "arguments") or ""),
                )
            ],
        )
    if kind == "function_call_output":
        output = g.get(item, "output")
        return g.Message(
            role="tool",
            content=output if isinstance(output, str) else _content_text(output),
            tool_call_id=g.get(item, "call_id"),
        )
    role = g.get(item, "role")
    if role is None:
        return g.Message(role="user", content=f"[{kind or 'item'}]")
    return g.Message(role=str(role), content=_content_text(g.get(item, "content")))


class ResponsesCall(LLMCall):
    """``responses.create``/``parse``: one ``chat {model}`` step."""

    provider = "openai"
    operation = "chat"
    content_arguments = ("input", "instructions", "tools", "prompt", "metadata")

    def request_attributes(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        return _sampling_attributes(kwargs, ("max_output_tokens",))

    def input_messages(self, kwargs: Mapping[str, Any]) -> list[g.Message] | None:
        messages: list[g.Message] = []
        instructions = kwargs.get("instructions")
        if isinstance(instructions, str):
            messages.append(g.Message(role="system", content=instructions))
        items = kwargs.get("input")
        if isinstance(items, str):
            messages.append(g.Message(role="user", content=items))
        elif isinstance(items, (list, tuple)):
            messages.extend(_response_input_item(item) for item in items)
        elif items is not None and g.given(items):
            return None
        return messages

    def on_response(self, response: Any) -> None:
        self._final(response, streamed=False)

    def on_chunk(self, event: Any) -> None:
        kind = event.type
        if kind == "response.output_text.delta":
            if self.first_chunk_s is None:
                self.first_chunk()
            self.text(event.delta)
            return
        if self.first_chunk_s is None:
            self.first_chunk()
        if kind in ("response.created", "response.in_progress"):
            response = event.response
            self.response_id = response.id
            self.response_model = response.model
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self._final(event.response, streamed=True)
        elif kind == "error":
            self.provider_error = getattr(event, "code", None) or "error"
            self.provider_message = getattr(event, "message", None)

    def _final(self, response: Any, *, streamed: bool) -> None:
        self.response_id = response.id
        self.response_model = response.model
        calls: list[g.ToolCallInfo] = []
        for item in response.output or ():
            if getattr(item, "type", None) == "function_call":
                calls.append(
                    g.ToolCallInfo(id=item.call_id, name=item.name, arguments=item.arguments or "")
                )
        self.tool_calls = calls
        if not streamed:
            self.set_text(getattr(response, "output_text", None))
        status = response.status
        if status == "completed":
            self.finish_reasons = ["tool_calls" if calls else "stop"]
            self.completed = True
        elif status == "incomplete":
            details = response.incomplete_details
            self.finish_reasons = [getattr(details, "reason", None) or "incomplete"]
            self.completed = True
        elif status == "failed":
            error = response.error
            self.provider_error = getattr(error, "code", None) or "failed"
            self.provider_message = getattr(error, "message", None)
        usage = response.usage
        if usage is not None:
            self.input_tokens = usage.input_tokens
            self.output_tokens = usage.output_tokens
            details = getattr(usage, "input_tokens_details", None)
            self.cache_read = getattr(details, "cached_tokens", None) if details else None
            details = getattr(usage, "output_tokens_details", None)
            self.reasoning_tokens = getattr(details, "reasoning_tokens", None) if details else None


# -- stream helpers -----------------------------------------------------------------------------


class _HelperManagerProxy(wrapt.ObjectProxy):
    """``chat.completions.stream(...)``/``responses.stream(...)``: the helper reads a stream
    that ``create`` opened, but its own close only closes the HTTP response; leaving the
    ``with`` block ends the step of that stream (``closed``, unless it already ended)."""

    _self_opened: Sequence[Any] = ()

    def _self_close_opened(self) -> None:
        for proxy in self._self_opened:
            proxy._self_end(None, CLOSED)


class StreamManagerProxy(_HelperManagerProxy):
    def __enter__(self) -> Any:
        with capturing_streams() as opened:
            self._self_opened = opened
            return self.__wrapped__.__enter__()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_close_opened()


class AsyncStreamManagerProxy(_HelperManagerProxy):
    async def __aenter__(self) -> Any:
        with capturing_streams() as opened:
            self._self_opened = opened
            return await self.__wrapped__.__aenter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_close_opened()


def _helper_wrapper(manager_proxy: type[_HelperManagerProxy]) -> Wrapper:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        manager = wrapped(*args, **kwargs)
        try:
            return manager_proxy(manager)
        except Exception:
            logger.exception("steptrace: could not wrap the openai stream helper")
            return manager

    return wrapper


# -- instrumentor -------------------------------------------------------------------------------


#: (module, class, method, call class, is async)
_TARGETS: tuple[tuple[str, str, str, type[LLMCall], bool], ...] = (
    (_CHAT_MODULE, "Completions", "create", ChatCompletionsCall, False),
    (_CHAT_MODULE, "AsyncCompletions", "create", ChatCompletionsCall, True),
    (_CHAT_MODULE, "Completions", "parse", ChatCompletionsCall, False),
    (_CHAT_MODULE, "AsyncCompletions", "parse", ChatCompletionsCall, True),
    (_RESPONSES_MODULE, "Responses", "create", ResponsesCall, False),
    (_RESPONSES_MODULE, "AsyncResponses", "create", ResponsesCall, True),
    (_RESPONSES_MODULE, "Responses", "parse", ResponsesCall, False),
    (_RESPONSES_MODULE, "AsyncResponses", "parse", ResponsesCall, True),
)
#: (module, class) whose ``stream`` helper returns a stream manager, and if it is async.
_HELPERS: tuple[tuple[str, str, bool], ...] = (
    (_CHAT_MODULE, "Completions", False),
    (_CHAT_MODULE, "AsyncCompletions", True),
    (_RESPONSES_MODULE, "Responses", False),
    (_RESPONSES_MODULE, "AsyncResponses", True),
)


class OpenAIInstrumentor(BaseInstrumentor):
    """Makes every OpenAI chat-completions and Responses call an ``llm`` step.

    Spans go to steptrace's TracerProvider (the global one unless ``steptrace.configure``
    set one); a ``tracer_provider`` argument is not used.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        try:
            types = client_types("openai")
        except ImportError:
            logger.debug("steptrace: openai is not installed; nothing to instrument")
            return
        for module, cls, method, call_class, is_async in _TARGETS:
            factory = async_wrapper if is_async else sync_wrapper
            try:
                wrapt.wrap_function_wrapper(module, f"{cls}.{method}", factory(call_class, types))
            except (ImportError, AttributeError):
                logger.debug("steptrace: openai has no %s.%s.%s", module, cls, method)
        for module, cls, is_async in _HELPERS:
            proxy = AsyncStreamManagerProxy if is_async else StreamManagerProxy
            try:
                wrapt.wrap_function_wrapper(module, f"{cls}.stream", _helper_wrapper(proxy))
            except (ImportError, AttributeError):
                logger.debug("steptrace: openai has no %s.%s.stream", module, cls)

    def _uninstrument(self, **kwargs: Any) -> None:
        methods = [(m, c, name) for m, c, name, _call, _async in _TARGETS]
        methods += [(m, c, "stream") for m, c, _async in _HELPERS]
        for module, cls, method in methods:
            try:
                owner = getattr(importlib.import_module(module), cls)
            except (ImportError, AttributeError):
                continue
            unwrap(owner, method)


__all__ = ["ChatCompletionsCall", "OpenAIInstrumentor", "ResponsesCall"]
