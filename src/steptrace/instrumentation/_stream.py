"""Stream proxies: the caller's stream, unchanged, with the llm step riding along.

A proxy (``wrapt.ObjectProxy``) stands in for the client library's stream object. Every chunk
passes through as is; each is shown to the :class:`~steptrace.instrumentation._call.LLMCall`,
which streams text deltas into the step while the caller reads. The step ends exactly once,
whichever way the stream ends:

- exhausted (``StopIteration``/``StopAsyncIteration``);
- closed: ``close()``/``aclose()``, leaving a ``with``/``async with`` block (also on ``break``
  or on an exception raised by the caller's own code, which is not the provider's failure);
- an error raised by the stream (provider error event, connection drop, timeout,
  cancellation): the step fails with the exception recorded, which is re-raised unchanged;
- dropped unread or half-read and garbage-collected (``__del__``).

``__iter__``/``__aiter__`` and ``__enter__``/``__aenter__`` return the proxy, never the wrapped
stream, so no way of using the stream bypasses it. Attributes the proxy does not define (such
as ``response``) are the wrapped stream's.
"""

from __future__ import annotations

import logging
from typing import Any

import wrapt  # type: ignore[import-untyped]

from steptrace.instrumentation._call import CLOSED, COLLECTED, ERROR, EXHAUSTED, LLMCall

logger = logging.getLogger("steptrace.instrumentation")


def _chunk_failed(proxy: _Finishing) -> None:
    """Log the first chunk a stream could not record (later ones at debug level only)."""
    if proxy._self_chunk_errors == 0:
        logger.exception("steptrace: could not record a %s stream chunk", proxy._self_call.provider)
    else:
        logger.debug("steptrace: could not record a stream chunk", exc_info=True)
    proxy._self_chunk_errors += 1


class _Finishing(wrapt.ObjectProxy):
    """Shared end-of-stream handling for both proxies."""

    def __init__(self, wrapped: Any, call: LLMCall) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_on_chunk = call.on_chunk  # bound once: called for every chunk
        self._self_chunk_errors = 0

    def _self_end(self, exception: BaseException | None, ended_by: str) -> None:
        call = getattr(self, "_self_call", None)
        if call is not None:
            call.end(exception, ended_by)

    def __del__(self) -> None:
        try:
            self._self_end(None, COLLECTED)
        except Exception:  # pragma: no cover - the GC must never see telemetry errors
            pass


class StreamProxy(_Finishing):
    """Proxy for a synchronous stream (``openai.Stream``, ``anthropic.Stream``)."""

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        try:
            chunk = self.__wrapped__.__next__()
        except StopIteration:
            self._self_call.end(None, EXHAUSTED)
            raise
        except BaseException as exc:
            self._self_call.end(exc, ERROR)
            raise
        try:
            self._self_on_chunk(chunk)
        except Exception:
            _chunk_failed(self)
        return chunk

    def __enter__(self) -> Any:
        entered = self.__wrapped__.__enter__()
        return self if entered is self.__wrapped__ else entered

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_end(None, CLOSED)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end(None, CLOSED)


class AsyncStreamProxy(_Finishing):
    """Proxy for an asynchronous stream (``openai.AsyncStream``, ``anthropic.AsyncStream``)."""

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_call.end(None, EXHAUSTED)
            raise
        except BaseException as exc:
            self._self_call.end(exc, ERROR)
            raise
        try:
            self._self_on_chunk(chunk)
        except Exception:
            _chunk_failed(self)
        return chunk

    async def __aenter__(self) -> Any:
        entered = await self.__wrapped__.__aenter__()
        return self if entered is self.__wrapped__ else entered

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_end(None, CLOSED)

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_end(None, CLOSED)

    async def aclose(self) -> None:
        wrapped = self.__wrapped__
        closer = getattr(wrapped, "aclose", None) or wrapped.close
        try:
            await closer()
        finally:
            self._self_end(None, CLOSED)


__all__ = ["AsyncStreamProxy", "StreamProxy"]
