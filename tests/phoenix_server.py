"""A private Arize Phoenix server for integration tests: a real OTLP backend we can read back.

Phoenix lives in its own virtualenv (`.venv-phoenix`, made by `scripts/bootstrap.sh`) because it
pins its own OpenTelemetry, protobuf and pydantic versions. Each server gets a temporary working
directory, an in-memory database and free ports on 127.0.0.1, and is always stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
PHOENIX_PYTHON = REPO_ROOT / ".venv-phoenix" / "bin" / "python"

STARTUP_TIMEOUT_S = 90.0  # healthy after about 10 s on an idle machine; allow for a loaded one
POLL_INTERVAL_S = 0.2

# Phoenix's gRPC server hard-codes `[::]:<port>`, ignoring PHOENIX_HOST. This launcher, run by the
# Phoenix venv's interpreter, rewrites every address its gRPC servers are asked to bind to
# 127.0.0.1 (same port), then runs Phoenix's own `phoenix serve` entry point.
_LAUNCHER = """
import sys

import grpc.aio

_make_server = grpc.aio.server


def _loopback(address):
    return "127.0.0.1:" + address.rpartition(":")[2]


def _loopback_server(*args, **kwargs):
    server = _make_server(*args, **kwargs)
    add_insecure, add_secure = server.add_insecure_port, server.add_secure_port
    server.add_insecure_port = lambda address: add_insecure(_loopback(address))
    server.add_secure_port = lambda address, creds: add_secure(_loopback(address), creds)
    return server


grpc.aio.server = _loopback_server

from phoenix.server.main import main

sys.argv = ["phoenix", "serve"]
main()
"""


class PhoenixError(RuntimeError):
    """Phoenix did not start, or the expected spans never arrived."""


@dataclass
class PhoenixServer:
    """A running Phoenix server and how to talk to it."""

    base_url: str
    """REST API and UI root, e.g. `http://127.0.0.1:41234`."""
    http_endpoint: str
    """OTLP/HTTP base for `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends `/v1/traces`)."""
    grpc_endpoint: str
    """OTLP/gRPC endpoint for `OTEL_EXPORTER_OTLP_ENDPOINT` with protocol `grpc`."""
    process: subprocess.Popen[bytes]
    log_path: Path

    def spans(
        self, project: str, trace_id: str, count: int = 1, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Spans of one trace in one project, polled until at least `count` have arrived.

        Phoenix ingests asynchronously (an OTLP 200 means queued) and answers 404 for a project
        until its first span lands, so both are retried until `timeout`.
        """
        deadline = time.monotonic() + timeout
        found: list[dict[str, Any]] = []
        last_problem = "no response yet"
        with httpx.Client(base_url=self.base_url, timeout=10.0) as client:
            while True:
                try:
                    found = _all_pages(client, f"/v1/projects/{project}/spans", trace_id)
                    last_problem = f"{len(found)} span(s) so far"
                except _ProjectNotFound:
                    last_problem = f"project {project!r} does not exist (yet)"
                if len(found) >= count:
                    return found
                if time.monotonic() > deadline:
                    names = sorted(span["name"] for span in found)
                    raise PhoenixError(
                        f"expected {count} span(s) of trace {trace_id} in project {project!r} "
                        f"within {timeout:.0f} s; {last_problem}: {names}"
                    )
                time.sleep(POLL_INTERVAL_S)

    def listening_addresses(self) -> list[tuple[str, int]]:
        """(ip, port) of every listening TCP socket of the server process and its children."""
        import psutil

        root = psutil.Process(self.process.pid)
        addresses = []
        for proc in [root, *root.children(recursive=True)]:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    addresses.append((conn.laddr.ip, conn.laddr.port))
        return sorted(addresses)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's combined stdout/stderr, for failure messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"


class _ProjectNotFound(Exception):
    pass


def _all_pages(client: httpx.Client, path: str, trace_id: str) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = []
    params: dict[str, str | int] = {"trace_id": trace_id, "limit": 1000}
    while True:
        response = client.get(path, params=params)
        if response.status_code == 404:
            raise _ProjectNotFound
        response.raise_for_status()
        body = response.json()
        spans.extend(body["data"])
        if not body.get("next_cursor"):
            return spans
        params["cursor"] = body["next_cursor"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def phoenix_available() -> bool:
    """Whether `.venv-phoenix` exists (created by `scripts/bootstrap.sh`)."""
    return PHOENIX_PYTHON.exists()


@contextlib.contextmanager
def run_phoenix() -> Iterator[PhoenixServer]:
    """Start a private Phoenix, wait until it is healthy, yield it, and always stop it."""
    with tempfile.TemporaryDirectory(prefix="steptrace-phoenix-") as workdir:
        http_port, grpc_port = free_port(), free_port()
        while grpc_port == http_port:
            grpc_port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
        env.update(
            PHOENIX_WORKING_DIR=workdir,
            PHOENIX_HOST="127.0.0.1",
            PHOENIX_PORT=str(http_port),
            PHOENIX_GRPC_PORT=str(grpc_port),
            PHOENIX_SQL_DATABASE_URL="sqlite:///:memory:",
            PHOENIX_TELEMETRY_ENABLED="false",
            PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",
            PHOENIX_LOG_MIGRATIONS="false",
            PHOENIX_LOGGING_LEVEL="warning",
        )
        log_path = Path(workdir) / "phoenix.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(PHOENIX_PYTHON), "-c", _LAUNCHER],
                env=env,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        base_url = f"http://127.0.0.1:{http_port}"
        server = PhoenixServer(
            base_url=base_url,
            http_endpoint=base_url,
            grpc_endpoint=f"http://127.0.0.1:{grpc_port}",
            process=process,
            log_path=log_path,
        )
        try:
            _wait_until_healthy(server, grpc_port)
            yield server
        finally:
            _stop(process)


def _wait_until_healthy(server: PhoenixServer, grpc_port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while True:
            if server.process.poll() is not None:
                raise PhoenixError(
                    f"phoenix exited with code {server.process.returncode} while starting:\n"
                    + server.log_tail()
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{server.base_url}/healthz").status_code == 200 and _accepts(
                    grpc_port
                ):
                    return
            if time.monotonic() > deadline:
                raise PhoenixError(
                    f"phoenix not healthy after {STARTUP_TIMEOUT_S:.0f} s:\n" + server.log_tail()
                )
            time.sleep(POLL_INTERVAL_S)


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
