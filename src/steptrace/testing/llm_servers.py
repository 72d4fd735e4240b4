"""Local stand-ins for the OpenAI and Anthropic HTTP APIs, for tests, benchmarks and the demo.

Each server speaks its provider's wire format faithfully enough for the official client
libraries to be pointed at it with ``base_url``: JSON bodies for plain calls, Server-Sent Events
over HTTP/1.1 chunked transfer for streams (OpenAI chat chunks with the optional final usage
chunk and ``[DONE]``; Responses API events; Anthropic's ``message_start`` … ``message_stop``),
and the providers' error bodies. What a server answers is scripted with :class:`Reply`, including
the ways real calls go wrong: an HTTP error status, an error event mid-stream, the connection
dropped mid-stream, and a server that never answers (for client timeouts).

Stdlib only, so the demo can stream a scripted answer without any extra dependency::

    with OpenAIServer(Reply(text="Hello there!", delay=0.05)) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="unused")
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "AnthropicServer",
    "LLMServer",
    "OpenAIServer",
    "RecordedRequest",
    "Reply",
    "Script",
    "ToolCall",
]

_CREATED = 1_700_000_000


@dataclass(frozen=True)
class ToolCall:
    """A tool (function) call the scripted model makes; ``arguments`` is JSON text."""

    name: str
    arguments: str = "{}"
    id: str | None = None
    #: How many pieces ``arguments`` is streamed in.
    pieces: int = 3


@dataclass(frozen=True)
class Reply:
    """What the server answers to one request.

    ``chunks`` (the streamed text deltas) defaults to ``text`` split after each run of
    whitespace; when given, the answer text is ``"".join(chunks)``. Counters such as
    ``disconnect_after`` count the SSE events the stream has sent (including the provider's
    opening event), not bytes.
    """

    text: str = "Hello from the local test server."
    chunks: Sequence[str] | None = None
    tool_calls: Sequence[ToolCall] = ()
    #: Provider finish/stop reason; default ``stop``/``tool_calls`` (OpenAI chat),
    #: ``end_turn``/``tool_use`` (Anthropic); the Responses API has a status instead.
    finish_reason: str | None = None
    #: Model named in the response; default: the requested model.
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    #: Seconds to wait before the first event, and between events.
    first_delay: float = 0.0
    delay: float = 0.0
    #: HTTP error status (400, 401, 404, 429, 500, 503, 529, …) answered instead of a result.
    status: int = 200
    error_message: str = "Scripted error from the local test server."
    #: Drop the connection (no terminating chunk) after this many stream events.
    disconnect_after: int | None = None
    #: End the HTTP body cleanly after this many stream events, mid-answer (no finish
    #: reason, no ``[DONE]``/``message_stop``): a stream the provider cut short.
    end_after: int | None = None
    #: Send the provider's in-stream error event after this many stream events.
    error_after: int | None = None
    #: Never answer the request (until the server closes): the client times out.
    hang: bool = False
    #: Stop sending (but keep the connection open) after this many stream events.
    stall_after: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Blocks the stream after ``gate_after`` events until the event is set (tests that need
    #: to act while a stream is provably still open).
    gate: threading.Event | None = None
    gate_after: int = 1

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        if not self.text:
            return []
        return re.findall(r"\S+\s*|\s+", self.text)

    def answer(self) -> str:
        return "".join(self.pieces())


Script = Reply | Sequence[Reply] | Callable[["RecordedRequest"], Reply]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any


class _QuietHTTPServer(ThreadingHTTPServer):
    """Clients hanging up mid-response are part of the script here (timeouts, dropped
    streams): log them at debug level instead of printing a traceback to stderr."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        logging.getLogger("steptrace.testing").debug(
            "connection from %s ended abruptly", client_address, exc_info=True
        )


class _StreamAborted(Exception):
    """The scripted stream ends here (disconnect or server shutdown)."""


class LLMServer:
    """A provider API on ``127.0.0.1`` at a free port, served from a background thread.

    Use as a context manager (or call :meth:`start` / :meth:`close`). ``requests`` records
    every request received, in order.
    """

    #: Path prefix clients put in their base URL (``/v1`` for OpenAI, empty for Anthropic).
    base_path = ""

    def __init__(self, script: Script | None = None, *, host: str = "127.0.0.1") -> None:
        self._script: Script = script if script is not None else Reply()
        self._host = host
        self._lock = threading.Lock()
        self._served = 0
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[RecordedRequest] = []

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> LLMServer:
        if self._httpd is not None:
            return self
        httpd = _QuietHTTPServer((self._host, 0), _make_handler(self))
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; hung and stalled requests are released, open connections closed."""
        httpd = self._httpd
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- addresses ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass as the client's ``base_url``."""
        return f"http://{self._host}:{self.port}{self.base_path}"

    # -- scripting ------------------------------------------------------------------------

    @property
    def script(self) -> Script:
        return self._script

    @script.setter
    def script(self, script: Script) -> None:
        with self._lock:
            self._script = script
            self._served = 0

    def _reply_for(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            script = self._script
            index = self._served
            self._served += 1
        if isinstance(script, Reply):
            return script
        if callable(script):
            return script(request)
        replies = list(script)
        return replies[min(index, len(replies) - 1)]

    # -- for subclasses -------------------------------------------------------------------

    def routes(self) -> Mapping[str, Callable[[_Exchange], None]]:
        raise NotImplementedError

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


class _Exchange:
    """One request/response on a handler: the parsed request, its reply, and SSE writing."""

    def __init__(self, server: LLMServer, handler: BaseHTTPRequestHandler, body: Any) -> None:
        self.server = server
        self.handler = handler
        self.body = body if isinstance(body, dict) else {}
        self.request = RecordedRequest(
            method=handler.command,
            path=handler.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        self.reply = server._reply_for(self.request)
        self._events_sent = 0
        self._buffer: list[bytes] | None = None

    @property
    def model(self) -> str:
        return self.reply.model or str(self.body.get("model") or "unknown-model")

    def wait(self, seconds: float) -> None:
        if seconds > 0 and self.server._stopping.wait(seconds):
            raise _StreamAborted

    def hang(self) -> None:
        self.server._stopping.wait()
        raise _StreamAborted

    def send_json(self, status: int, payload: Any, headers: Mapping[str, str] = {}) -> None:
        data = json.dumps(payload).encode()
        h = self.handler
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for key, value in {**headers, **self.reply.headers}.items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)

    def start_stream(self, headers: Mapping[str, str] = {}) -> None:
        h = self.handler
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        for key, value in {**headers, **self.reply.headers}.items():
            h.send_header(key, value)
        h.end_headers()
        reply = self.reply
        instant = (
            reply.delay == 0
            and reply.first_delay == 0
            and reply.gate is None
            and reply.stall_after is None
        )
        # Without pacing, the whole stream goes out in one write, so the server costs the
        # client next to nothing per chunk (benchmarks measure the client side).
        self._buffer = [] if instant else None
        self.wait(reply.first_delay)

    def event(self, data: str, event: str | None = None) -> None:
        """Send one SSE event, honouring the reply's pacing and failure script."""
        reply = self.reply
        n = self._events_sent
        if reply.disconnect_after is not None and n >= reply.disconnect_after:
            self._flush()
            self._drop()
        if reply.end_after is not None and n >= reply.end_after:
            self.end_stream()
            raise _StreamAborted
        if reply.stall_after is not None and n >= reply.stall_after:
            self._flush()
            self.hang()
        if reply.gate is not None and n == reply.gate_after:
            self._flush()
            while not reply.gate.wait(0.05):
                if self.server._stopping.is_set():
                    raise _StreamAborted
        if n and reply.delay:
            self.wait(reply.delay)
        text = (f"event: {event}\n" if event else "") + f"data: {data}\n\n"
        self._chunk(text.encode())
        self._events_sent += 1

    def end_stream(self) -> None:
        if self._buffer is not None:
            self._buffer.append(b"0\r\n\r\n")
            self._flush()
        else:
            self.handler.wfile.write(b"0\r\n\r\n")

    def _chunk(self, payload: bytes) -> None:
        frame = b"%x\r\n%s\r\n" % (len(payload), payload)
        if self._buffer is not None:
            self._buffer.append(frame)
        else:
            self.handler.wfile.write(frame)
            self.handler.wfile.flush()

    def _flush(self) -> None:
        if self._buffer:
            self.handler.wfile.write(b"".join(self._buffer))
            self.handler.wfile.flush()
        if self._buffer is not None:
            self._buffer = []

    def _drop(self) -> None:
        """Close the TCP connection mid-body, the way a network failure looks to the client."""
        conn = self.handler.connection
        try:
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        except OSError:
            pass
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _StreamAborted


def _make_handler(server: LLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "steptrace-llm-test-server"

        def setup(self) -> None:
            super().setup()
            # Like real API servers: no Nagle delay on the small writes of a stream.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server._track(self.connection, True)

        def finish(self) -> None:
            server._track(self.connection, False)
            try:
                super().finish()
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = None
            route = server.routes().get(self.path.split("?", 1)[0])
            if route is None:
                self._not_found()
                return
            exchange = _Exchange(server, self, body)
            try:
                route(exchange)
            except (_StreamAborted, BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def do_GET(self) -> None:
            self._not_found()

        def _not_found(self) -> None:
            data = json.dumps({"error": {"message": f"No route {self.path}"}}).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _word_count(value: Any) -> int:
    """A deterministic stand-in for a tokenizer: words in every string of the request."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, Mapping):
        return sum(_word_count(v) for k, v in value.items() if k not in ("role", "type"))
    if isinstance(value, list):
        return sum(_word_count(v) for v in value)
    return 0


def _split(text: str, pieces: int) -> list[str]:
    pieces = max(1, min(pieces, len(text) or 1))
    size = -(-len(text) // pieces) if text else 0
    return [text[i : i + size] for i in range(0, len(text), size)] if text else [""]


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


# ----------------------------------------------------------------------------------------
# OpenAI
# ----------------------------------------------------------------------------------------

_OPENAI_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


class OpenAIServer(LLMServer):
    """``/v1/chat/completions`` and ``/v1/responses`` (plain and streamed)."""

    base_path = "/v1"

    def routes(self) -> Mapping[str, Callable[[_Exchange], None]]:
        return {
            "/v1/chat/completions": self._chat,
            "/v1/responses": self._responses,
        }

    # -- shared ---------------------------------------------------------------------------

    @staticmethod
    def _headers() -> dict[str, str]:
        return {"x-request-id": f"req_{uuid.uuid4().hex}", "openai-processing-ms": "1"}

    def _error(self, ex: _Exchange) -> None:
        status = ex.reply.status
        kind, code = _OPENAI_ERROR_TYPES.get(status, ("server_error", None))
        headers = self._headers()
        if status == 429:
            headers["retry-after-ms"] = "10"
        ex.send_json(
            status,
            {
                "error": {
                    "message": ex.reply.error_message,
                    "type": kind,
                    "param": None,
                    "code": code,
                }
            },
            headers,
        )

    def _in_stream_error(self, ex: _Exchange) -> None:
        ex.event(
            _dumps(
                {
                    "error": {
                        "message": ex.reply.error_message,
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
            )
        )

    def _usage(self, ex: _Exchange, input_key: str = "messages") -> tuple[int, int]:
        reply = ex.reply
        inp = reply.input_tokens
        if inp is None:
            inp = _word_count(ex.body.get(input_key)) + _word_count(ex.body.get("instructions"))
        out = reply.output_tokens
        if out is None:
            out = len(reply.pieces()) + sum(tc.pieces for tc in reply.tool_calls)
        return inp, out

    @staticmethod
    def _call_ids(reply: Reply) -> list[str]:
        return [
            tc.id or f"call_{i}{uuid.uuid4().hex[:20]}" for i, tc in enumerate(reply.tool_calls)
        ]

    # -- chat completions -----------------------------------------------------------------

    def _answer(
        self,
        ex: _Exchange,
        streamed: Callable[[_Exchange], None],
        plain: Callable[[_Exchange], None],
    ) -> None:
        """Every endpoint: hang or fail as scripted, else answer streamed or not, as asked."""
        if ex.reply.hang:
            ex.hang()
        if ex.reply.status >= 400:
            self._error(ex)
            return
        (streamed if ex.body.get("stream") else plain)(ex)

    def _chat(self, ex: _Exchange) -> None:
        self._answer(ex, self._chat_stream, self._chat_plain)

    def _chat_usage(self, ex: _Exchange) -> dict[str, Any]:
        inp, out = self._usage(ex)
        return {
            "prompt_tokens": inp,
            "completion_tokens": out,
            "total_tokens": inp + out,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _chat_plain(self, ex: _Exchange) -> None:
        reply = ex.reply
        ex.wait(reply.first_delay)
        ids = self._call_ids(reply)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.answer() if (reply.answer() or not reply.tool_calls) else None,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": tc.name, "arguments": tc.arguments},
                }
                for call_id, tc in zip(ids, reply.tool_calls)
            ]
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        ex.send_json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": _CREATED,
                "model": ex.model,
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
                ],
                "usage": self._chat_usage(ex),
                "service_tier": "default",
                "system_fingerprint": "fp_steptrace",
            },
            self._headers(),
        )

    def _chat_stream(self, ex: _Exchange) -> None:
        reply = ex.reply
        include_usage = bool((ex.body.get("stream_options") or {}).get("include_usage"))
        base: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": ex.model,
            "service_tier": "default",
            "system_fingerprint": "fp_steptrace",
        }
        prefix = _dumps(base)[:-1]  # every chunk repeats these fields
        usage_null = ',"usage":null' if include_usage else ""

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return f'{prefix},"choices":[{_dumps(choice)}]{usage_null}}}'

        ex.start_stream(self._headers())
        n_events = 0

        def send(data: str) -> None:
            nonlocal n_events
            if reply.error_after is not None and n_events == reply.error_after:
                self._in_stream_error(ex)
                ex.end_stream()
                raise _StreamAborted
            ex.event(data)
            n_events += 1

        if reply.tool_calls and not reply.pieces():
            send(chunk({"role": "assistant", "content": None, "refusal": None}))
        else:
            send(chunk({"role": "assistant", "content": "", "refusal": None}))
        for piece in reply.pieces():
            send(chunk({"content": piece}))
        for index, (call_id, tc) in enumerate(zip(self._call_ids(reply), reply.tool_calls)):
            send(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": tc.name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            for part in _split(tc.arguments, tc.pieces):
                send(chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]}))
        finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
        send(chunk({}, finish))
        if include_usage:
            send(f'{prefix},"choices":[],"usage":{_dumps(self._chat_usage(ex))}}}')
        send("[DONE]")
        ex.end_stream()

    # -- responses ------------------------------------------------------------------------

    def _responses(self, ex: _Exchange) -> None:
        self._answer(ex, self._responses_stream, self._responses_plain)

    def _responses_plain(self, ex: _Exchange) -> None:
        ex.wait(ex.reply.first_delay)
        ex.send_json(200, self._response_object(ex, "completed"), self._headers())

    def _output_items(self, ex: _Exchange, msg_id: str, call_ids: list[str]) -> list[dict]:
        reply = ex.reply
        items: list[dict[str, Any]] = []
        if reply.pieces() or not reply.tool_calls:
            items.append(self._message_item(msg_id, reply.answer(), "completed"))
        for call_id, tc in zip(call_ids, reply.tool_calls):
            items.append(self._function_item(call_id, tc, tc.arguments, "completed"))
        return items

    @staticmethod
    def _message_item(msg_id: str, text: str | None, status: str) -> dict[str, Any]:
        content = (
            []
            if text is None
            else [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
        )
        return {
            "id": msg_id,
            "type": "message",
            "status": status,
            "content": content,
            "role": "assistant",
        }

    @staticmethod
    def _function_item(call_id: str, tc: ToolCall, arguments: str, status: str) -> dict[str, Any]:
        return {
            "id": f"fc_{call_id}",
            "type": "function_call",
            "status": status,
            "arguments": arguments,
            "call_id": call_id,
            "name": tc.name,
        }

    def _response_object(
        self,
        ex: _Exchange,
        status: str,
        *,
        resp_id: str | None = None,
        msg_id: str | None = None,
        call_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        body = ex.body
        done = status in ("completed", "incomplete")
        usage = None
        output: list[dict[str, Any]] = []
        if done:
            inp, out = self._usage(ex, "input")
            usage = {
                "input_tokens": inp,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": out,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": inp + out,
            }
            output = self._output_items(
                ex,
                msg_id or f"msg_{uuid.uuid4().hex}",
                call_ids if call_ids is not None else self._call_ids(ex.reply),
            )
        return {
            "id": resp_id or f"resp_{uuid.uuid4().hex}",
            "object": "response",
            "created_at": _CREATED,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None
            if status != "incomplete"
            else {"reason": ex.reply.finish_reason or "max_output_tokens"},
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": ex.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": True,
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": {},
        }

    def _responses_stream(self, ex: _Exchange) -> None:
        reply = ex.reply
        resp_id = f"resp_{uuid.uuid4().hex}"
        msg_id = f"msg_{uuid.uuid4().hex}"
        call_ids = self._call_ids(reply)
        seq = 0

        def send(payload: dict[str, Any]) -> None:
            nonlocal seq
            if reply.error_after is not None and seq == reply.error_after:
                ex.event(
                    _dumps(
                        {
                            "type": "error",
                            "sequence_number": seq,
                            "code": "server_error",
                            "message": reply.error_message,
                            "param": None,
                        }
                    ),
                    "error",
                )
                ex.end_stream()
                raise _StreamAborted
            payload = {"type": payload.pop("type"), "sequence_number": seq, **payload}
            ex.event(_dumps(payload), payload["type"])
            seq += 1

        ex.start_stream(self._headers())
        pending = self._response_object(ex, "in_progress", resp_id=resp_id)
        send({"type": "response.created", "response": pending})
        send({"type": "response.in_progress", "response": pending})
        out_index = 0
        if reply.pieces() or not reply.tool_calls:
            send(
                {
                    "type": "response.output_item.added",
                    "output_index": out_index,
                    "item": self._message_item(msg_id, None, "in_progress"),
                }
            )
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            where = {"item_id": msg_id, "output_index": out_index, "content_index": 0}
            send({"type": "response.content_part.added", **where, "part": part})
            for piece in reply.pieces():
                send(
                    {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
                )
            text = reply.answer()
            send({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
            send({"type": "response.content_part.done", **where, "part": {**part, "text": text}})
            send(
                {
                    "type": "response.output_item.done",
                    "output_index": out_index,
                    "item": self._message_item(msg_id, text, "completed"),
                }
            )
            out_index += 1
        for call_id, tc in zip(call_ids, reply.tool_calls):
            item_id = f"fc_{call_id}"
            send(
                {
                    "type": "response.output_item.added",
                    "output_index": out_index,
                    "item": self._function_item(call_id, tc, "", "in_progress"),
                }
            )
            for fragment in _split(tc.arguments, tc.pieces):
                send(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": item_id,
                        "output_index": out_index,
                        "delta": fragment,
                    }
                )
            send(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item_id,
                    "output_index": out_index,
                    "arguments": tc.arguments,
                }
            )
            send(
                {
                    "type": "response.output_item.done",
                    "output_index": out_index,
                    "item": self._function_item(call_id, tc, tc.arguments, "completed"),
                }
            )
            out_index += 1
        status = "incomplete" if reply.finish_reason else "completed"
        final = self._response_object(ex, status, resp_id=resp_id, msg_id=msg_id, call_ids=call_ids)
        send({"type": f"response.{status}", "response": final})
        ex.end_stream()


# ----------------------------------------------------------------------------------------
# Anthropic
# ----------------------------------------------------------------------------------------

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class AnthropicServer(LLMServer):
    """``/v1/messages`` (plain and streamed)."""

    def routes(self) -> Mapping[str, Callable[[_Exchange], None]]:
        return {"/v1/messages": self._messages}

    @staticmethod
    def _headers() -> dict[str, str]:
        return {"request-id": f"req_{uuid.uuid4().hex[:24]}"}

    def _messages(self, ex: _Exchange) -> None:
        reply = ex.reply
        if reply.hang:
            ex.hang()
        if reply.status >= 400:
            headers = {**self._headers(), **reply.headers}
            if reply.status == 429:
                headers["retry-after"] = "0"
            ex.send_json(
                reply.status,
                {
                    "type": "error",
                    "error": {
                        "type": _ANTHROPIC_ERROR_TYPES.get(reply.status, "api_error"),
                        "message": reply.error_message,
                    },
                    "request_id": headers["request-id"],
                },
                headers,
            )
            return
        if ex.body.get("stream"):
            self._stream(ex)
        else:
            self._plain(ex)

    def _usage(self, ex: _Exchange) -> tuple[int, int]:
        reply = ex.reply
        inp = reply.input_tokens
        if inp is None:
            inp = _word_count(ex.body.get("messages")) + _word_count(ex.body.get("system"))
        out = reply.output_tokens
        if out is None:
            out = len(reply.pieces()) + sum(tc.pieces for tc in reply.tool_calls)
        return inp, out

    @staticmethod
    def _tool_ids(reply: Reply) -> list[str]:
        return [tc.id or f"toolu_{uuid.uuid4().hex[:24]}" for tc in reply.tool_calls]

    def _plain(self, ex: _Exchange) -> None:
        reply = ex.reply
        ex.wait(reply.first_delay)
        content: list[dict[str, Any]] = []
        if reply.pieces() or not reply.tool_calls:
            content.append({"type": "text", "text": reply.answer()})
        for tool_id, tc in zip(self._tool_ids(reply), reply.tool_calls):
            content.append(
                {
                    "type": "tool_use",
                    "id": tool_id,
                    "name": tc.name,
                    "input": json.loads(tc.arguments),
                }
            )
        inp, out = self._usage(ex)
        ex.send_json(
            200,
            {
                "id": f"msg_{uuid.uuid4().hex[:24]}",
                "type": "message",
                "role": "assistant",
                "model": ex.model,
                "content": content,
                "stop_reason": reply.finish_reason
                or ("tool_use" if reply.tool_calls else "end_turn"),
                "stop_sequence": None,
                "usage": {
                    "input_tokens": inp,
                    "output_tokens": out,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "service_tier": "standard",
                },
            },
            self._headers(),
        )

    def _stream(self, ex: _Exchange) -> None:
        reply = ex.reply
        inp, out = self._usage(ex)
        n_events = 0

        def send(payload: dict[str, Any]) -> None:
            nonlocal n_events
            if reply.error_after is not None and n_events == reply.error_after:
                ex.event(
                    _dumps(
                        {
                            "type": "error",
                            "error": {"type": "overloaded_error", "message": reply.error_message},
                        }
                    ),
                    "error",
                )
                ex.end_stream()
                raise _StreamAborted
            ex.event(_dumps(payload), payload["type"])
            n_events += 1

        ex.start_stream(self._headers())
        send(
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_{uuid.uuid4().hex[:24]}",
                    "type": "message",
                    "role": "assistant",
                    "model": ex.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": inp,
                        "output_tokens": 1,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "service_tier": "standard",
                    },
                },
            }
        )
        index = 0
        for start, deltas in self._blocks(reply):
            send({"type": "content_block_start", "index": index, "content_block": start})
            if index == 0:
                send({"type": "ping"})
            for delta in deltas:
                send({"type": "content_block_delta", "index": index, "delta": delta})
            send({"type": "content_block_stop", "index": index})
            index += 1
        send(
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": reply.finish_reason
                    or ("tool_use" if reply.tool_calls else "end_turn"),
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": out},
            }
        )
        send({"type": "message_stop"})
        ex.end_stream()

    def _blocks(self, reply: Reply) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        if reply.pieces() or not reply.tool_calls:
            yield (
                {"type": "text", "text": ""},
                [{"type": "text_delta", "text": piece} for piece in reply.pieces()],
            )
        for tool_id, tc in zip(self._tool_ids(reply), reply.tool_calls):
            yield (
                {"type": "tool_use", "id": tool_id, "name": tc.name, "input": {}},
                [
                    {"type": "input_json_delta", "partial_json": part}
                    for part in _split(tc.arguments, tc.pieces)
                ],
            )


def _serve_forever(kind: str, text: str, delay: float) -> None:  # pragma: no cover - manual use
    """``python -m steptrace.testing.llm_servers openai "answer" 0.05``: serve until Ctrl-C."""
    cls = OpenAIServer if kind == "openai" else AnthropicServer
    with cls(Reply(text=text, delay=delay)) as srv:
        print(srv.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    import sys

    args = sys.argv[1:]
    _serve_forever(
        args[0] if args else "openai",
        args[1] if len(args) > 1 else Reply().text,
        float(args[2]) if len(args) > 2 else 0.05,
    )
