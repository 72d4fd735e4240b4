"""Real local OTLP endpoints that misbehave on purpose, all on 127.0.0.1 with free ports.

- :func:`refusing_endpoint`: a port nothing listens on (connections are refused).
- :class:`BlackholeServer`: accepts TCP connections and never answers.
- :class:`OtlpHttpReceiver`: OTLP/HTTP ``POST /v1/traces`` that answers a scripted sequence of
  statuses (e.g. 503, 503, then 200) and decodes every accepted request with
  ``opentelemetry-proto``, keeping the spans it received.
- :class:`OtlpGrpcReceiver`: the same over OTLP/gRPC, with scripted gRPC status codes.
- :class:`ReceiverProcess`: either receiver in a child process, counting spans into shared
  memory, so a benchmark's producer does not share a GIL with it.
"""

from __future__ import annotations

import contextlib
import gzip
import multiprocessing
import multiprocessing.sharedctypes
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def refusing_endpoint(scheme: str = "http") -> str:
    """An endpoint URL whose port refuses connections (nothing listens there)."""
    return f"{scheme}://{HOST}:{free_port()}"


def spans_in(request: ExportTraceServiceRequest) -> Iterator[ProtoSpan]:
    """Every span of a decoded OTLP export request."""
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            yield from scope_spans.spans


def attribute_value(span: ProtoSpan, key: str) -> Any:
    """The Python value of one attribute of a decoded span (None when absent)."""
    for kv in span.attributes:
        if kv.key == key:
            return _any_value(kv.value)
    return None


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind is None:
        return None
    return getattr(value, kind)


class BlackholeServer:
    """Accepts connections and never reads or answers: a backend that hangs."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="blackhole", daemon=True)

    def endpoint(self, scheme: str = "http") -> str:
        return f"{scheme}://{HOST}:{self.port}"

    @property
    def connections(self) -> int:
        """How many connections it has accepted (and left hanging)."""
        return len(self._held)

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def __enter__(self) -> BlackholeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._thread.join(2)
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self._listener.close()


@dataclass
class _Received:
    """What a receiver got, shared between its serving threads and the test."""

    lock: Any = field(default_factory=threading.RLock)  # RLock: predicates read state
    spans: list[ProtoSpan] = field(default_factory=list)
    answered: list[int | str] = field(default_factory=list)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)


class _Receiver:
    """What both OTLP receivers share: the scripted answers and the spans received."""

    def __init__(self, answers: Iterable[Any], keep_spans: bool, latency_s: float = 0.0) -> None:
        self._answers = list(answers)
        self._latency_s = latency_s
        self._keep_spans = keep_spans
        self._received = _Received()
        self.span_count = 0
        self.rejected_span_count = 0

    def _next_answer(self, ok: Any) -> Any:
        with self._received.lock:
            return self._answers.pop(0) if self._answers else ok

    def _record(self, answer: Any, request: ExportTraceServiceRequest, accepted: bool) -> None:
        spans = list(spans_in(request))
        with self._received.changed:
            self._received.answered.append(answer)
            if accepted:
                self.span_count += len(spans)
                if self._keep_spans:
                    self._received.spans.extend(spans)
            else:
                self.rejected_span_count += len(spans)
            self._received.changed.notify_all()

    @property
    def span_names(self) -> list[str]:
        """Names of the spans accepted, in arrival order."""
        return [span.name for span in self.spans]

    @property
    def spans(self) -> list[ProtoSpan]:
        """The spans of every request answered with success, in arrival order."""
        with self._received.lock:
            return list(self._received.spans)

    @property
    def answered(self) -> list[Any]:
        """The answer given to each request so far, in order."""
        with self._received.lock:
            return list(self._received.answered)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` (called with the receiver's state settled) holds."""
        deadline = time.monotonic() + timeout
        with self._received.changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._received.changed.wait(remaining)
            return True

    def wait_for_spans(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` spans were accepted."""
        return self.wait_for(lambda: self.span_count >= count, timeout)


class OtlpHttpReceiver(_Receiver):
    """OTLP/HTTP receiver answering ``answers`` (HTTP statuses) in order, then 200 forever.

    Only requests answered 200 count as received; the spans of the others are counted in
    ``rejected_span_count``. ``port`` may be fixed, to bring a receiver up
    on an address that refused connections a moment before (a backend coming back).
    """

    def __init__(
        self,
        answers: Iterable[int] = (),
        *,
        port: int = 0,
        keep_spans: bool = True,
        retry_after: float | None = None,
        latency_s: float = 0.0,
    ) -> None:
        super().__init__(answers, keep_spans, latency_s)
        self._retry_after = retry_after
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver._handle(self, body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer((HOST, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def endpoint(self) -> str:
        """The base endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``); traces go to ``/v1/traces``."""
        return f"http://{HOST}:{self.port}"

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if handler.path != "/v1/traces":
            self._reply(handler, 404, b"")
            return
        if self._latency_s:
            time.sleep(self._latency_s)  # a slow (or far away) backend
        status = self._next_answer(200)
        encoding = handler.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        self._record(status, ExportTraceServiceRequest.FromString(body), status == 200)
        payload = ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
        self._reply(handler, status, payload)

    def _reply(self, handler: BaseHTTPRequestHandler, status: int, payload: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/x-protobuf")
        handler.send_header("Content-Length", str(len(payload)))
        if status in (429, 503) and self._retry_after is not None:
            handler.send_header("Retry-After", str(int(self._retry_after)))
        handler.end_headers()
        handler.wfile.write(payload)

    def __enter__(self) -> OtlpHttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class OtlpGrpcReceiver(_Receiver):
    """OTLP/gRPC receiver answering ``answers`` (``grpc.StatusCode``) in order, then OK."""

    def __init__(
        self,
        answers: Iterable[Any] = (),
        *,
        port: int = 0,
        keep_spans: bool = True,
        latency_s: float = 0.0,
    ) -> None:
        import grpc  # type: ignore[import-untyped]
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

        super().__init__(answers, keep_spans, latency_s)
        receiver = self

        class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                if receiver._latency_s:
                    time.sleep(receiver._latency_s)
                code = receiver._next_answer(grpc.StatusCode.OK)
                receiver._record(code.name, request, code is grpc.StatusCode.OK)
                if code is grpc.StatusCode.OK:
                    return ExportTraceServiceResponse()
                context.abort(code, f"scripted {code.name}")

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), self._server)
        self.port = self._server.add_insecure_port(f"{HOST}:{port}")
        if not self.port:
            raise OSError(f"cannot bind {HOST}:{port}")

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> OtlpGrpcReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None).wait(5)


def _serve_counting(
    kind: str,
    latency_s: float,
    ready: Any,
    port_out: multiprocessing.sharedctypes.Synchronized,
    count_out: multiprocessing.sharedctypes.Synchronized,
    stop: Any,
) -> None:
    """Child-process body: serve until ``stop`` is set, mirroring the span count."""
    receiver_type = OtlpHttpReceiver if kind == "http" else OtlpGrpcReceiver
    with receiver_type(keep_spans=False, latency_s=latency_s) as receiver:
        port_out.value = receiver.port
        ready.set()
        while not stop.is_set():
            count_out.value = receiver.span_count
            stop.wait(0.01)
        count_out.value = receiver.span_count


class ReceiverProcess:
    """An OTLP receiver (``"http"`` or ``"grpc"``) in a child process, counting spans;
    ``latency_s`` delays every answer (a slow or distant backend)."""

    def __init__(self, kind: str, latency_s: float = 0.0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._ready = ctx.Event()
        self._stop = ctx.Event()
        self._port = ctx.Value("i", 0)
        self._count = ctx.Value("q", 0)
        self.last_change_at = 0.0
        self._process = ctx.Process(
            target=_serve_counting,
            args=(kind, latency_s, self._ready, self._port, self._count, self._stop),
            daemon=True,
        )

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self._port.value}"

    @property
    def span_count(self) -> int:
        return int(self._count.value)

    def wait_for_spans(self, count: int, timeout: float, idle: float = 2.0) -> int:
        """Wait until ``count`` spans arrived, or none arrived for ``idle`` s; return the count.

        ``last_change_at`` (``time.perf_counter()``) is then when the count last moved.
        """
        deadline = time.perf_counter() + timeout
        last = self.span_count
        self.last_change_at = time.perf_counter()
        while time.perf_counter() < deadline and last < count:
            time.sleep(0.002)
            now_count = self.span_count
            if now_count != last:
                last, self.last_change_at = now_count, time.perf_counter()
            elif time.perf_counter() - self.last_change_at > idle:
                break
        return last

    def __enter__(self) -> ReceiverProcess:
        self._process.start()
        if not self._ready.wait(30):
            self._process.kill()
            raise RuntimeError("OTLP receiver process did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
