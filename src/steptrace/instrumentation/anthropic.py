"""Anthropic auto-instrumentation: Messages API calls as ``llm`` steps.

Wrapped (sync and async clients): ``messages.create`` (plain and ``stream=True``),
``messages.parse``, and the ``messages.stream(...)`` helper. For the helper, the step starts
when its manager is entered (that is when the request is sent) and the ``MessageStream`` the
manager hands out is proxied, so iterating it, its ``text_stream``, ``until_done()`` and
``get_final_message()``/``get_final_text()`` all stream text into the step as they read.

``AnthropicInstrumentor`` is an OpenTelemetry ``BaseInstrumentor`` (entry point
``steptrace_anthropic``). The anthropic library can emit its own OpenTelemetry span per call;
while the request is sent the llm step's span is current, so that span nests under the step.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from typing import Any

import wrapt  # type: ignore[import-untyped]
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from steptrace.instrumentation import _genai as g
from steptrace.instrumentation._call import CLOSED, ERROR, LLMCall
from steptrace.instrumentation._stream import AsyncStreamProxy, StreamProxy
from steptrace.instrumentation._wrap import (
    Wrapper,
    async_wrapper,
    client_types,
    start_call,
    sync_wrapper,
)

logger = logging.getLogger("steptrace.instrumentation")

_INSTRUMENTS = ("anthropic >= 0.40.0",)
_MODULE = "anthropic.resources.messages.messages"


# -- requests -----------------------------------------------------------------------------------


def _block_text(block: Any) -> str:
    if isinstance(block, str):
        return block
    kind = g.get(block, "type")
    if kind == "text":
        return str(g.get(block, "text") or "")
    if kind == "tool_result":
        return _blocks_text(g.get(block, "content"))
    return f"[{kind or 'block'}]"


def _blocks_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        return "".join(_block_text(block) for block in content)
    return str(content)


def _arguments(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(g.plain(value), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _messages_of(message: Any) -> list[g.Message]:
    """One request message; a user turn of tool results becomes one ``tool`` message each."""
    role = str(g.get(message, "role") or "user")
    content = g.get(message, "content")
    if not isinstance(content, (list, tuple)):
        return [g.Message(role=role, content=_blocks_text(content))]
    out: list[g.Message] = []
    texts: list[str] = []
    calls: list[g.ToolCallInfo] = []
    for block in content:
        kind = g.get(block, "type")
        if kind == "tool_use":
            calls.append(
                g.ToolCallInfo(
                    id=g.get(block, "id"),
                    name=g.get(block, "name"),
                    arguments=_arguments(g.get(block, "input")),
                )
            )
        elif kind == "tool_result":
            out.append(
                g.Message(
                    role="tool",
                    content=_blocks_text(g.get(block, "content")),
                    tool_call_id=g.get(block, "tool_use_id"),
                )
            )
        else:
            texts.append(_block_text(block))
    if texts or calls or not out:
        out.insert(0, g.Message(role=role, content="".join(texts) or None, tool_calls=calls))
    return out


class MessagesCall(LLMCall):
    """``messages.create``/``parse``/``stream``: one ``chat {model}`` step."""

    provider = "anthropic"
    operation = "chat"
    content_arguments = ("messages", "system", "tools", "metadata")

    def request_attributes(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        for key, name in (
            ("temperature", g.REQUEST_TEMPERATURE),
            ("top_p", g.REQUEST_TOP_P),
            ("top_k", g.REQUEST_TOP_K),
        ):
            value = g.number(kwargs.get(key))
            if value is not None:
                attributes[name] = value
        max_tokens = kwargs.get("max_tokens")
        if type(max_tokens) is int:
            attributes[g.REQUEST_MAX_TOKENS] = max_tokens
        stop = kwargs.get("stop_sequences")
        if isinstance(stop, (list, tuple)) and stop:
            attributes[g.REQUEST_STOP_SEQUENCES] = [str(s) for s in stop]
        return attributes

    def input_messages(self, kwargs: Mapping[str, Any]) -> list[g.Message] | None:
        messages = kwargs.get("messages")
        if not isinstance(messages, (list, tuple)):
            return None  # an iterator would be consumed: leave it to the client
        out: list[g.Message] = []
        system = kwargs.get("system")
        if g.given(system):
            out.append(g.Message(role="system", content=_blocks_text(system)))
        for message in messages:
            out.extend(_messages_of(message))
        return out

    def on_response(self, message: Any) -> None:
        self.response_id = getattr(message, "id", None)
        self.response_model = getattr(message, "model", None)
        reason = getattr(message, "stop_reason", None)
        if reason:
            self.finish_reasons.append(reason)
        texts: list[str] = []
        for block in getattr(message, "content", None) or ():
            kind = block.type
            if kind == "text":
                texts.append(block.text)
            elif kind == "tool_use":
                self.tool_calls.append(
                    g.ToolCallInfo(id=block.id, name=block.name, arguments=_arguments(block.input))
                )
        self.set_text("".join(texts))
        self._usage(getattr(message, "usage", None), start=True)

    def on_chunk(self, event: Any) -> None:
        kind = event.type
        if kind == "content_block_delta":
            delta = event.delta
            delta_kind = delta.type
            if delta_kind == "text_delta":
                self.text(delta.text)
            elif delta_kind == "input_json_delta":
                call = self.calls_by_index.get(event.index)
                if call is not None:
                    call.arguments += delta.partial_json
            return
        if self.first_chunk_s is None:
            self.first_chunk()
        if kind == "message_start":
            message = event.message
            self.response_id = message.id
            self.response_model = message.model
            self._usage(message.usage, start=True)
        elif kind == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                call = g.ToolCallInfo(id=block.id, name=block.name)
                self.calls_by_index[event.index] = call
                self.tool_calls.append(call)
        elif kind == "message_delta":
            reason = event.delta.stop_reason
            if reason:  # the provider's word that the answer is complete
                self.finish_reasons = [reason]
                self.completed = True
            self._usage(event.usage, start=False)
        elif kind == "message_stop":
            self.completed = True

    def _usage(self, usage: Any, *, start: bool) -> None:
        """Usage from a message (``start``) or a ``message_delta`` (cumulative counts)."""
        if usage is None:
            return
        output_tokens = getattr(usage, "output_tokens", None)
        if output_tokens is not None:
            self.output_tokens = output_tokens
        uncached = getattr(usage, "input_tokens", None)
        cache_read = getattr(usage, "cache_read_input_tokens", None)
        cache_creation = getattr(usage, "cache_creation_input_tokens", None)
        if cache_read is not None:
            self.cache_read = cache_read
        if cache_creation is not None:
            self.cache_creation = cache_creation
        if uncached is not None:
            # gen_ai.usage.input_tokens counts every input token, cached ones included.
            self.input_tokens = uncached + (self.cache_read or 0) + (self.cache_creation or 0)


# -- messages.stream(...) helper ----------------------------------------------------------------


class MessageStreamProxy(StreamProxy):
    """The ``MessageStream`` of ``messages.stream(...)``, with every way of reading it traced."""

    @property
    def text_stream(self) -> Iterator[str]:
        texts = self._self_texts
        if texts is None:
            texts = self._self_texts = self._self_text_deltas()
        return texts

    _self_texts: Iterator[str] | None = None

    def _self_text_deltas(self) -> Iterator[str]:
        for event in self:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                yield event.delta.text

    def until_done(self) -> None:
        for _ in self:
            pass

    def get_final_message(self) -> Any:
        self.until_done()
        return self.__wrapped__.get_final_message()

    def get_final_text(self) -> str:
        self.until_done()
        return self.__wrapped__.get_final_text()


class AsyncMessageStreamProxy(AsyncStreamProxy):
    """The ``AsyncMessageStream`` of ``messages.stream(...)`` on the async client."""

    @property
    def text_stream(self) -> AsyncIterator[str]:
        texts = self._self_texts
        if texts is None:
            texts = self._self_texts = self._self_text_deltas()
        return texts

    _self_texts: AsyncIterator[str] | None = None

    async def _self_text_deltas(self) -> AsyncIterator[str]:
        async for event in self:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                yield event.delta.text

    async def until_done(self) -> None:
        async for _ in self:
            pass

    async def get_final_message(self) -> Any:
        await self.until_done()
        return await self.__wrapped__.get_final_message()

    async def get_final_text(self) -> str:
        await self.until_done()
        return await self.__wrapped__.get_final_text()


class _ManagerProxy(wrapt.ObjectProxy):
    def __init__(self, wrapped: Any, instance: Any, kwargs: dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_instance = instance
        self._self_kwargs = kwargs
        self._self_stream: Any = None

    def _self_proxy(self, call: LLMCall, stream: Any, proxy_class: type) -> Any:
        try:
            proxy = proxy_class(stream, call)
        except Exception:
            logger.exception("steptrace: could not wrap the anthropic message stream")
            call.end(None, ERROR)
            return stream
        self._self_stream = proxy
        return proxy

    def _self_closed(self) -> None:
        stream = self._self_stream
        if stream is not None:
            stream._self_end(None, CLOSED)


class MessageStreamManagerProxy(_ManagerProxy):
    """``messages.stream(...)``: entering sends the request and yields the stream proxy."""

    def __enter__(self) -> Any:
        call = start_call(MessagesCall, self._self_instance, self._self_kwargs, stream=True)
        if call is None:
            return self.__wrapped__.__enter__()
        token = call.activate()
        try:
            stream = self.__wrapped__.__enter__()
        except BaseException as exc:
            call.end(exc, ERROR)
            raise
        finally:
            call.deactivate(token)
        return self._self_proxy(call, stream, MessageStreamProxy)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_closed()


class AsyncMessageStreamManagerProxy(_ManagerProxy):
    """``messages.stream(...)`` on the async client (``async with``)."""

    async def __aenter__(self) -> Any:
        call = start_call(MessagesCall, self._self_instance, self._self_kwargs, stream=True)
        if call is None:
            return await self.__wrapped__.__aenter__()
        token = call.activate()
        try:
            stream = await self.__wrapped__.__aenter__()
        except BaseException as exc:
            call.end(exc, ERROR)
            raise
        finally:
            call.deactivate(token)
        return self._self_proxy(call, stream, AsyncMessageStreamProxy)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_closed()


def _stream_helper_wrapper(manager_proxy: type[_ManagerProxy]) -> Wrapper:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        manager = wrapped(*args, **kwargs)
        try:
            return manager_proxy(manager, instance, dict(kwargs))
        except Exception:
            logger.exception("steptrace: could not wrap the anthropic stream manager")
            return manager

    return wrapper


# -- instrumentor -------------------------------------------------------------------------------


class AnthropicInstrumentor(BaseInstrumentor):
    """Makes every Anthropic Messages API call an ``llm`` step.

    Spans go to steptrace's TracerProvider (the global one unless ``steptrace.configure``
    set one); a ``tracer_provider`` argument is not used.
    """

    _methods = (
        ("Messages", "create"),
        ("AsyncMessages", "create"),
        ("Messages", "parse"),
        ("AsyncMessages", "parse"),
        ("Messages", "stream"),
        ("AsyncMessages", "stream"),
    )

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        try:
            types = client_types("anthropic")
        except ImportError:
            logger.debug("steptrace: anthropic is not installed; nothing to instrument")
            return
        wrappers: dict[tuple[str, str], Wrapper] = {
            ("Messages", "create"): sync_wrapper(MessagesCall, types),
            ("AsyncMessages", "create"): async_wrapper(MessagesCall, types),
            ("Messages", "parse"): sync_wrapper(MessagesCall, types),
            ("AsyncMessages", "parse"): async_wrapper(MessagesCall, types),
            ("Messages", "stream"): _stream_helper_wrapper(MessageStreamManagerProxy),
            ("AsyncMessages", "stream"): _stream_helper_wrapper(AsyncMessageStreamManagerProxy),
        }
        for (cls, method), wrapper in wrappers.items():
            try:
                wrapt.wrap_function_wrapper(_MODULE, f"{cls}.{method}", wrapper)
            except (ImportError, AttributeError):
                logger.debug("steptrace: anthropic has no %s.%s", cls, method)

    def _uninstrument(self, **kwargs: Any) -> None:
        try:
            module = importlib.import_module(_MODULE)
        except ImportError:
            return
        for cls, method in self._methods:
            owner = getattr(module, cls, None)
            if owner is not None:
                unwrap(owner, method)


__all__ = ["AnthropicInstrumentor", "MessagesCall"]
