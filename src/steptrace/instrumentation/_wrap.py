"""The ``wrapt`` wrappers put on client methods, and what they do with a method's result.

A wrapper (sync or async, matching the method) skips everything when OpenTelemetry
instrumentation is suppressed in the current context; otherwise it opens an
:class:`~steptrace.instrumentation._call.LLMCall`, makes its span current while the request is
sent, and passes the result on: a stream becomes a stream proxy, a raw response a proxy whose
``parse()`` is instrumented, a whole response is recorded and the step ended. An exception from
the client (HTTP status, timeout, connection error) fails the step and is re-raised as is.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from steptrace.instrumentation._call import ERROR, LLMCall
from steptrace.instrumentation._raw import AsyncLazyRawResponse, LazyRawResponse, parse_now
from steptrace.instrumentation._stream import AsyncStreamProxy, StreamProxy

logger = logging.getLogger("steptrace.instrumentation")

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
_NONE: tuple[type, ...] = ()


@dataclass(frozen=True)
class ClientTypes:
    """The classes a client library returns, to tell streams and raw responses apart."""

    stream: tuple[type, ...] = _NONE
    async_stream: tuple[type, ...] = _NONE
    legacy_response: tuple[type, ...] = _NONE
    api_response: tuple[type, ...] = _NONE
    async_api_response: tuple[type, ...] = _NONE


def client_types(package: str) -> ClientTypes:
    """The stream and response classes of a Stainless-generated client (``openai``,
    ``anthropic``: both are built the same way)."""
    library = importlib.import_module(package)
    try:  # with_raw_response's result type, in the versions that still have it
        legacy: tuple[type, ...] = (
            importlib.import_module(f"{package}._legacy_response").LegacyAPIResponse,
        )
    except (ImportError, AttributeError):
        legacy = ()
    return ClientTypes(
        stream=(library.Stream,),
        async_stream=(library.AsyncStream,),
        legacy_response=legacy,
        api_response=(library.APIResponse,),
        async_api_response=(library.AsyncAPIResponse,),
    )


#: While a client's stream helper is being entered: the stream proxies opened meanwhile.
_OPENED: ContextVar[list[Any] | None] = ContextVar("steptrace_opened_streams", default=None)


@contextmanager
def capturing_streams() -> Iterator[list[Any]]:
    """Collect the stream proxies that calls made inside the block open (for stream helpers
    whose own ``close`` does not reach the stream they read from)."""
    opened: list[Any] = []
    token = _OPENED.set(opened)
    try:
        yield opened
    finally:
        _OPENED.reset(token)


def _opened(proxy: Any) -> Any:
    sink = _OPENED.get()
    if sink is not None:
        sink.append(proxy)
    return proxy


def start_call(
    call_class: type[LLMCall], instance: Any, kwargs: Mapping[str, Any], *, stream: bool
) -> LLMCall | None:
    """A started call, or ``None`` (instrumentation suppressed, or it failed: logged)."""
    if not is_instrumentation_enabled():
        return None
    try:
        return call_class(instance, kwargs, stream=stream)
    except Exception:
        logger.exception("steptrace: could not start the llm step")
        return None


def finish_with(call: LLMCall, result: Any, types: ClientTypes) -> Any:
    """What the caller gets back for ``result``; never raises."""
    try:
        if isinstance(result, types.stream):
            return _opened(StreamProxy(result, call))
        if isinstance(result, types.async_stream):
            return _opened(AsyncStreamProxy(result, call))
        if isinstance(result, types.legacy_response):
            return parse_now(call, result, lambda c, parsed: finish_with(c, parsed, types))
        if isinstance(result, types.async_api_response):
            return AsyncLazyRawResponse(result, call, lambda c, p: finish_with(c, p, types))
        if isinstance(result, types.api_response):
            return LazyRawResponse(result, call, lambda c, p: finish_with(c, p, types))
    except Exception:
        logger.exception("steptrace: could not wrap the %s result", call.provider)
        call.end(None, ERROR)
        return result
    try:
        call.on_response(result)
    except Exception:
        logger.exception("steptrace: could not record the %s response", call.provider)
    call.end(None, None)
    return result


def _is_stream(kwargs: Mapping[str, Any]) -> bool:
    return kwargs.get("stream") is True


def sync_wrapper(call_class: type[LLMCall], types: ClientTypes) -> Wrapper:
    """Wrapper for a synchronous client method returning a response or a stream."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        call = start_call(call_class, instance, kwargs, stream=_is_stream(kwargs))
        if call is None:
            return wrapped(*args, **kwargs)
        token = call.activate()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.end(exc, ERROR)
            raise
        finally:
            call.deactivate(token)
        return finish_with(call, result, types)

    return wrapper


def async_wrapper(call_class: type[LLMCall], types: ClientTypes) -> Wrapper:
    """Wrapper for an ``async def`` client method returning a response or a stream."""

    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        call = start_call(call_class, instance, kwargs, stream=_is_stream(kwargs))
        if call is None:
            return await wrapped(*args, **kwargs)
        token = call.activate()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.end(exc, ERROR)
            raise
        finally:
            call.deactivate(token)
        return finish_with(call, result, types)

    return wrapper
