"""``steptrace demo``: set up export, the LLM, the web chat and the live view, then run turns.

Everything the demo needs is started here and stopped on the way out, whatever the way out is
(the turns are done, Enter-loop quit, Ctrl-C, SIGTERM from ``docker stop``): the web channel,
the local scripted server, and a final flush so no span of the last turn is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import openai
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

import steptrace
from steptrace import _live
from steptrace.demo import agent, scripted
from steptrace.demo.view import StepTree

DEFAULT_MODEL = "gpt-4.1-mini"
DEFAULT_WEB_PORT = 8765
EXPORT_HINT = (
    "set OTEL_EXPORTER_OTLP_ENDPOINT to export traces (e.g. Jaeger on http://localhost:4318)"
)
SAMPLE_QUESTIONS = (
    "Should I pack an umbrella for Lisbon this weekend?",
    "What should I wear in Oslo this week?",
    "Is it too hot to visit Barcelona right now?",
    "Do I need a rain jacket in Edinburgh?",
    "How do I travel carry-on only?",
)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Options:
    """The command line, parsed (see ``steptrace.cli``)."""

    question: str | None = None
    turns: int = 1
    once: bool = False
    web: bool = True
    host: str = "127.0.0.1"
    port: int | None = None
    token: str | None = None


class DemoError(Exception):
    """A problem the user can fix, reported as one line (exit ``code``), never a traceback."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class ExportProblems(logging.Handler):
    """The OTLP exporter's retries and failures as one short line, not a page of log records.

    The exporter logs every retry of every batch with the full connection error. The demo says
    once that export is failing and why. ``failed`` is whether any export went wrong in the
    session; ``failing`` tells a flush not to wait for a backend that is refusing right now
    (``reset()`` before the flush: a collector that was still starting may be up since).
    """

    LOGGER = "opentelemetry"

    def __init__(self, console: Console, endpoint: str) -> None:
        super().__init__(logging.WARNING)
        self.console = console
        self.endpoint = endpoint
        self.failed = False
        self.failing = False
        self._reported = False

    def reset(self) -> None:
        self.failing = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        lowered = message.lower()
        if "export" not in lowered:  # some other OpenTelemetry warning: shown as usual
            if logging.lastResort is not None:
                logging.lastResort.handle(record)
            return
        self.failed = self.failing = True
        if self._reported:
            return
        self._reported = True
        if "refused" in lowered:
            reason = "connection refused (is the collector running?)"
        elif "timed out" in lowered or "timeout" in lowered:
            reason = "timed out"
        elif "name or service not known" in lowered or "nodename" in lowered:
            reason = "unknown host"
        else:
            reason = message.splitlines()[0][:160]
        try:
            self.console.print(
                f"[yellow]traces: export to {escape(self.endpoint)} failing: {escape(reason)}[/]"
            )
        except Exception:
            self.handleError(record)

    def install(self) -> None:
        logger = logging.getLogger(self.LOGGER)
        logger.addHandler(self)
        logger.propagate = False


@dataclass
class LLM:
    """Which chat model the turns talk to and how to make a client for it."""

    model: str
    make_client: Callable[[], openai.AsyncOpenAI]
    description: str
    detail: str
    server: Any = None

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


# -- set-up -----------------------------------------------------------------------------------


def configure_export() -> tuple[bool, str, str]:
    """``steptrace.configure()`` from ``OTEL_*`` when they ask for export, else no exporter.

    Returns whether spans are exported, a line describing where, and the OTLP endpoint.
    """
    env = os.environ
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    exporters = [e.strip() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    service = None if named else "steptrace-demo"
    try:
        if endpoint or exporters:
            steptrace.configure(service_name=service)
        else:
            steptrace.configure(service_name=service, exporter="none")
            return False, f"not exported: {EXPORT_HINT}", ""
    except (ValueError, TypeError) as exc:
        raise DemoError(f"cannot set up trace export: {exc}", 2) from exc
    exporters = exporters or ["otlp"]
    parts = []
    target = ""
    if "otlp" in exporters:
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        )
        default = "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318"
        target = endpoint or default
        parts.append(f"OTLP {protocol} → {target}")
    if "console" in exporters:
        parts.append("console (stderr)")
    if not parts:
        return False, f"not exported (OTEL_TRACES_EXPORTER={env.get('OTEL_TRACES_EXPORTER')})", ""
    service_name = env.get("OTEL_SERVICE_NAME") or service or "from OTEL_RESOURCE_ATTRIBUTES"
    return True, f"{', '.join(parts)} · service {service_name}", target


def instrument_openai() -> bool:
    """Turn openai calls into ``llm`` steps; False if the instrumentation is unavailable (the
    agent then makes the ``llm`` step itself)."""
    instrument = getattr(steptrace, "instrument", None)
    if instrument is None:
        return False
    try:
        instrument("openai")
    except Exception:
        return False
    return True


def choose_llm() -> LLM:
    """OpenAI when ``OPENAI_API_KEY`` is set, otherwise the local scripted server."""
    if os.environ.get("OPENAI_API_KEY"):
        model = os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL
        base = os.environ.get("OPENAI_BASE_URL")
        where = f" at {base}" if base else ""
        return LLM(
            model=model,
            make_client=lambda: openai.AsyncOpenAI(max_retries=1, timeout=60.0),
            description=f"OpenAI{where}, model {model} (OPENAI_MODEL to change it)",
            detail="",
        )
    server = scripted.start_server()
    base_url = server.base_url
    return LLM(
        model=scripted.MODEL,
        make_client=lambda: openai.AsyncOpenAI(
            base_url=base_url, api_key="local-scripted-server", max_retries=0
        ),
        description="using a local scripted OpenAI-compatible server "
        "(set OPENAI_API_KEY to use OpenAI)",
        detail=f"{base_url} · model {scripted.MODEL}",
        server=server,
    )


def start_web(options: Options) -> tuple[Any, str | None]:
    """The web chat channel (or None) and a note to show when it is not running."""
    if not options.web:
        return None, "off (--no-web)"
    try:
        import steptrace_web  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return None, (
            "not installed: pip install steptrace-web "
            "(from a checkout: pip install -e exporters/web) to watch the steps in a browser"
        )
    loopback = options.host.strip("[]") in LOOPBACK or options.host.startswith("127.")
    if not loopback and not options.token:
        raise DemoError(
            f"binding the web chat to {options.host} exposes it beyond this machine: "
            "pass --token TOKEN (or set STEPTRACE_WEB_TOKEN)",
            2,
        )
    port = DEFAULT_WEB_PORT if options.port is None else options.port
    try:
        channel = steptrace_web.serve(options.host, port, token=options.token)
    except OSError as exc:
        if options.port is not None:
            raise DemoError(f"cannot serve the web chat on {options.host}:{port}: {exc}") from exc
        channel = steptrace_web.serve(options.host, 0, token=options.token)  # 8765 is taken
    except ValueError as exc:
        raise DemoError(f"cannot start the web chat: {exc}", 2) from exc
    return channel, None


# -- running ----------------------------------------------------------------------------------


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """``docker stop`` sends SIGTERM: leave the same clean way as Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Demo:
    """One demo session: the console, the live tree, the LLM and the web channel."""

    def __init__(self, options: Options, console: Console) -> None:
        self.options = options
        self.console = console
        self.tree = StepTree()
        self.thread_id = f"demo-{uuid.uuid4().hex[:6]}"
        self.exporting = False
        self.export_line = ""
        self.export_problems: ExportProblems | None = None
        self.exported = False
        self.export_failed = False
        self.manual_llm_step = False
        self.llm: LLM | None = None
        self.web: Any = None
        self.web_note: str | None = None
        self.turns_run = 0
        self.failed = 0
        self.in_turn = False
        self._next_sample = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.exporting, self.export_line, endpoint = configure_export()
        if self.exporting and endpoint:
            self.export_problems = ExportProblems(self.console, endpoint)
            self.export_problems.install()
        self.manual_llm_step = not instrument_openai()
        self.web, self.web_note = start_web(self.options)
        self.llm = choose_llm()
        steptrace.add_listener(self.tree)

    def stop(self) -> None:
        """Flush and stop everything that was started (safe to call after a partial start)."""
        with contextlib.suppress(Exception):
            steptrace.remove_listener(self.tree)
        if self.web is not None:
            with contextlib.suppress(Exception):
                self.web.stop()
        if self.llm is not None:
            self.llm.close()
        problems = self.export_problems
        timeout = 5.0
        if problems is not None:
            timeout = 2.0 if problems.failed else 5.0  # it failed before: do not hang on exit
            problems.reset()
        flushed = _flush_unless_failing(problems, timeout)
        # A backend that refused the spans or did not take them in 5 s will not in one more.
        shut = steptrace.shutdown(5.0 if flushed else 1.0)
        self.export_failed = problems is not None and problems.failed
        self.exported = self.exporting and flushed and shut and not self.export_failed
        if self.exporting and not self.exported and not self.export_failed:
            self.console.print("[yellow]traces: not every span was exported within 5 s[/]")

    # -- screens ----------------------------------------------------------------------------

    def print_header(self) -> None:
        assert self.llm is not None
        grid = Table.grid(padding=(0, 2, 0, 0))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        llm = Text(self.llm.description)
        if self.llm.detail:
            llm.append("\n" + self.llm.detail, style="dim")
        if self.manual_llm_step:
            llm.append("\nopenai auto-instrumentation unavailable: a manual llm step", style="dim")
        grid.add_row("llm", llm)
        grid.add_row("traces", Text(self.export_line, style="" if self.exporting else "yellow"))
        if self.web is not None:
            web = Text(self.web.url, style="bold cyan")
            web.append("  every step, live", style="dim")
        else:
            web = Text(self.web_note or "off", style="yellow")
        grid.add_row("web", web)
        c = self.console
        c.print()
        c.print("[bold]steptrace demo[/] · a travel assistant, traced step by step")
        c.print(Padding(grid, (0, 0, 1, 2)))

    def next_question(self) -> str:
        if self.turns_run == 0 and self.options.question:
            return self.options.question
        question = SAMPLE_QUESTIONS[self._next_sample % len(SAMPLE_QUESTIONS)]
        self._next_sample += 1
        return question

    def run_turn(self, question: str) -> agent.TurnResult:
        """One turn under the live tree; prints the trace id and token usage after it."""
        assert self.llm is not None
        llm = self.llm
        self.turns_run += 1
        turn = self.turns_run
        _live.BUS.flush(2.0)  # late events of the previous turn, before forgetting it
        self.tree.reset()
        self.console.print(f"[bold cyan]❯[/] [bold]{escape(question)}[/]")

        async def go() -> agent.TurnResult:
            async with llm.make_client() as client:
                return await agent.run_turn(
                    question,
                    client,
                    llm.model,
                    thread_id=self.thread_id,
                    turn=turn,
                    manual_llm_step=self.manual_llm_step,
                )

        self.in_turn = True
        with Live(self.tree, console=self.console, refresh_per_second=12, transient=False):
            try:
                result = asyncio.run(go())
            finally:
                _live.BUS.flush(2.0)  # the final ✓ of every step, before the last frame
        self.in_turn = False
        if not self.console.is_terminal:
            self.console.print()  # Live leaves its last frame without a line end
        if self.exporting:  # in the backend by the time its trace id is shown
            _flush_unless_failing(self.export_problems, timeout=3.0)
        self.print_result(result)
        return result

    def print_result(self, result: agent.TurnResult) -> None:
        c = self.console
        if result.error is not None:
            self.failed += 1
            kind = type(result.error).__name__
            c.print(f"[bold red]✗ the turn failed:[/] {kind}: {escape(str(result.error))}")
        line = f"[dim]trace[/] [bold]{result.trace_id or '-'}[/]"
        if result.input_tokens is not None:
            line += f" [dim]· tokens {result.input_tokens} in, {result.output_tokens} out[/]"
        c.print(line)
        jaeger = _jaeger_ui(result.trace_id) if self.exporting else None
        if jaeger:
            c.print(f"[dim]in Jaeger:[/] {jaeger}")
        c.print()

    # -- the session ------------------------------------------------------------------------

    def run(self) -> int:
        for _ in range(max(1, self.options.turns)):
            self.run_turn(self.next_question())
        if self.options.once:
            return 1 if self.failed else 0
        return self.serve()

    def serve(self) -> int:
        """After the first turns: more turns on Enter (in a terminal), the web chat until Ctrl-C."""
        c = self.console
        interactive = _stdin_is_terminal()
        if not interactive:
            if self.web is None:
                return 1 if self.failed else 0
            c.print(
                f"Serving the web chat at [bold cyan]{self.web.url}[/] until Ctrl-C "
                "[dim](stdin is not a terminal: no more turns)[/]"
            )
            while self.web.running:
                threading.Event().wait(0.5)
            return 0
        if self.web is not None:
            c.print(f"[dim]The web chat stays up at[/] [cyan]{self.web.url}[/]")
        while True:
            upcoming = SAMPLE_QUESTIONS[self._next_sample % len(SAMPLE_QUESTIONS)]
            try:
                typed = c.input(
                    f"[dim]Enter: next question ({escape(upcoming)}) · or type your own · "
                    "Ctrl-C: quit[/]\n[bold]question ›[/] "
                ).strip()
            except EOFError:
                return 0
            question = typed or self.next_question()
            self.run_turn(question)


def _flush_unless_failing(problems: ExportProblems | None, timeout: float = 5.0) -> bool:
    """``steptrace.flush``, given up as soon as the exporter reports that export fails."""
    outcome: list[bool] = []
    worker = threading.Thread(
        target=lambda: outcome.append(steptrace.flush(timeout)), name="demo-flush", daemon=True
    )
    worker.start()
    deadline = time.monotonic() + timeout + 0.5
    while worker.is_alive() and time.monotonic() < deadline:
        if problems is not None and problems.failing:
            return False
        worker.join(0.05)
    return bool(outcome and outcome[0])


def _stdin_is_terminal() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False


def _jaeger_ui(trace_id: str | None) -> str | None:
    """Jaeger's trace page, when the OTLP endpoint is on Jaeger's ports (4317/4318)."""
    if not trace_id:
        return None
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"
    )
    try:
        port = urlsplit(endpoint).port
    except ValueError:
        return None
    if port not in (4317, 4318):
        return None
    return f"http://localhost:16686/trace/{trace_id}"


def run(options: Options) -> int:
    """Run the demo; returns the process exit code."""
    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False)
    demo = Demo(options, console)
    code = 0
    with _sigterm_as_interrupt():
        try:
            demo.start()
            demo.print_header()
            code = demo.run()
        except DemoError as exc:
            errors.print(f"[bold red]steptrace demo:[/] {escape(str(exc))}")
            code = exc.code
        except KeyboardInterrupt:
            code = 130 if demo.in_turn else 0
            console.print("\n[dim]interrupted[/]" if code else "")
        finally:
            with contextlib.suppress(KeyboardInterrupt):
                demo.stop()
    if demo.turns_run:
        if demo.exported:
            exported = " · traces exported"
        elif demo.export_failed:
            exported = " · [yellow]trace export had errors (see above)[/]"
        elif demo.exporting:
            exported = " · [yellow]traces not exported[/]"
        else:
            exported = ""
        console.print(f"[dim]done · {demo.turns_run} turn(s){exported}[/]")
    return code
