"""The ``steptrace`` command: ``steptrace demo`` (see ``steptrace.demo``) and ``steptrace version``.

Argument parsing and dependency checks only; the demo itself is imported once its extra
(``rich``, ``openai``) is known to be installed, so a missing one is a clear message, not a
traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence

from steptrace._version import __version__


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError("must be between 0 and 65535")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steptrace",
        description="steptrace: every Step of an LLM app is an OpenTelemetry span, "
        "mirrored live to the chat UI.",
    )
    parser.add_argument("--version", action="version", version=f"steptrace {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run a small traced agent turn, live in the terminal and a web chat",
        description="Run a travel-assistant turn (retrieval, a tool call, a streamed LLM "
        "answer) traced with steptrace: live as a step tree here and in the web chat, "
        "exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set. Uses OpenAI when "
        "OPENAI_API_KEY is set (model: OPENAI_MODEL), otherwise a local scripted "
        "OpenAI-compatible server.",
    )
    demo.add_argument("--question", "-q", help="the question of the first turn")
    demo.add_argument(
        "--turns",
        type=_positive,
        default=1,
        metavar="N",
        help="run N turns back to back first (default 1)",
    )
    demo.add_argument(
        "--once",
        action="store_true",
        help="exit after the turn(s) instead of waiting for more (non-interactive)",
    )
    demo.add_argument("--no-web", action="store_true", help="do not start the web chat")
    demo.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface for the web chat (default 127.0.0.1; any other needs --token)",
    )
    demo.add_argument(
        "--port",
        type=_port,
        default=None,
        help="port for the web chat (default 8765, or a free one if that is taken; 0: free)",
    )
    demo.add_argument(
        "--token",
        default=os.environ.get("STEPTRACE_WEB_TOKEN") or None,
        help="access token for the web chat (or $STEPTRACE_WEB_TOKEN)",
    )

    commands.add_parser("version", help="print the steptrace version")
    return parser


def missing_demo_requirements() -> list[str]:
    """What of the ``demo`` extra is not importable (as pip requirements)."""
    from steptrace.demo import REQUIREMENTS

    missing = []
    for module, requirement in REQUIREMENTS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(requirement)
    return missing


def demo(args: argparse.Namespace) -> int:
    missing = missing_demo_requirements()
    if missing:
        wanted = " ".join(f"'{m}'" for m in missing)
        print(
            f"steptrace demo needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed.\n"
            f"Install the demo extra:  pip install 'steptrace[demo]'   (or: pip install {wanted})",
            file=sys.stderr,
        )
        return 1
    from steptrace.demo.app import Options, run

    return run(
        Options(
            question=args.question,
            turns=args.turns,
            once=args.once,
            web=not args.no_web,
            host=args.host,
            port=args.port,
            token=args.token,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``steptrace`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args)
    if args.command == "version":
        print(f"steptrace {__version__}")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
