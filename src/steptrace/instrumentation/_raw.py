"""``with_raw_response`` / ``with_streaming_response``: the parsed value is the instrumented one.

With these prefixes the client returns an HTTP-level response object and the caller gets the
completion (or the stream) by calling ``.parse()``. The proxies below make that ``.parse()``
return what a plain call would have returned under instrumentation: the recorded completion,
or the stream proxy whose chunks stream into the step. ``parse(to=...)`` (a custom type) is the
client's own and is passed through.

- ``with_raw_response`` (``LegacyAPIResponse``): the body is already read, so the wrapper parses
  at once (the client caches the parsed value; a stream is not read by parsing) and the step of
  a plain call ends right away.
- ``with_streaming_response`` (``APIResponse``/``AsyncAPIResponse``): nothing is read until the
  caller asks, so parsing happens on the caller's ``parse()``; if the caller never parses, the
  step ends when the response is closed (leaving the ``with`` block) or collected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import wrapt  # type: ignore[import-untyped]

from steptrace.instrumentation._call import CLOSED, COLLECTED, ERROR, LLMCall

logger = logging.getLogger("steptrace.instrumentation")

Instrument = Callable[[LLMCall, Any], Any]


def _wants_default(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return not args and kwargs.get("to") is None


class ParsedRawResponse(wrapt.ObjectProxy):
    """A read ``with_raw_response`` result whose ``parse()`` returns the instrumented value."""

    def __init__(self, wrapped: Any, instrumented: Any) -> None:
        super().__init__(wrapped)
        self._self_instrumented = instrumented

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        if _wants_default(args, kwargs):
            return self._self_instrumented
        return self.__wrapped__.parse(*args, **kwargs)


def parse_now(call: LLMCall, raw: Any, instrument: Instrument) -> Any:
    """Parse a ``with_raw_response`` result now and hand back the proxy (never raises)."""
    try:
        parsed = raw.parse()
    except Exception as exc:
        # The caller's own parse() will raise this again; the step records it.
        call.end(exc, ERROR)
        return raw
    return ParsedRawResponse(raw, instrument(call, parsed))


class _LazyRawResponse(wrapt.ObjectProxy):
    def __init__(self, wrapped: Any, call: LLMCall, instrument: Instrument) -> None:
        super().__init__(wrapped)
        self._self_call = call
        self._self_instrument = instrument
        self._self_instrumented: Any = None
        self._self_parsed = False

    def _self_wrap(self, parsed: Any) -> Any:
        if not self._self_parsed:
            self._self_parsed = True
            self._self_instrumented = self._self_instrument(self._self_call, parsed)
        return self._self_instrumented

    def _self_unparsed_end(self, ended_by: str) -> None:
        if not getattr(self, "_self_parsed", True):
            self._self_call.end(None, ended_by)

    def __del__(self) -> None:
        try:
            self._self_unparsed_end(COLLECTED)
        except Exception:  # pragma: no cover
            pass


class LazyRawResponse(_LazyRawResponse):
    """A ``with_streaming_response`` result (sync client)."""

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        if not _wants_default(args, kwargs):
            return self.__wrapped__.parse(*args, **kwargs)
        if self._self_parsed:
            return self._self_instrumented
        try:
            parsed = self.__wrapped__.parse()
        except BaseException as exc:
            self._self_parsed = True
            self._self_call.end(exc, ERROR)
            raise
        return self._self_wrap(parsed)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_unparsed_end(CLOSED)


class AsyncLazyRawResponse(_LazyRawResponse):
    """A ``with_streaming_response`` result (async client)."""

    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        if not _wants_default(args, kwargs):
            return await self.__wrapped__.parse(*args, **kwargs)
        if self._self_parsed:
            return self._self_instrumented
        try:
            parsed = await self.__wrapped__.parse()
        except BaseException as exc:
            self._self_parsed = True
            self._self_call.end(exc, ERROR)
            raise
        return self._self_wrap(parsed)

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_unparsed_end(CLOSED)
