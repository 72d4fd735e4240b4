"""``steptrace-web``: the standalone web channel that app processes forward their steps to.

    steptrace-web --port 8765                      # loopback, no token needed
    steptrace-web --host 0.0.0.0 --token "$TOKEN"  # reachable from elsewhere: token required

Apps then call ``steptrace_web.forward("http://127.0.0.1:8765/", token=...)``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from ._channel import WebChannel
from ._security import is_loopback, new_token
from ._visibility import VISIBILITY_MODES

DEFAULT_PORT = 8765


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="steptrace-web",
        description="Serve the steptrace live chat page and accept steps forwarded by apps.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0 picks a free one)")
    parser.add_argument(
        "--token",
        default=os.environ.get("STEPTRACE_WEB_TOKEN"),
        help="access token (or $STEPTRACE_WEB_TOKEN); required off loopback",
    )
    parser.add_argument(
        "--generate-token", action="store_true", help="make up a random token and print it"
    )
    parser.add_argument("--visibility", choices=VISIBILITY_MODES, default="full")
    parser.add_argument("--thread", default=None, help="only accept and show this thread")
    parser.add_argument("--max-ended-steps", type=int, default=1000)
    parser.add_argument("--max-step-chars", type=int, default=100_000)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="steptrace-web: %(message)s")
    token = new_token() if args.generate_token else (args.token or None)
    if token is None and not is_loopback(args.host):
        print(
            f"steptrace-web: binding to {args.host} requires --token (or --generate-token)",
            file=sys.stderr,
        )
        return 2
    try:
        channel = WebChannel(
            args.host,
            args.port,
            token=token,
            visibility=args.visibility,
            thread_id=args.thread,
            listen=False,
            accept_forwarded=True,
            max_ended_steps=args.max_ended_steps,
            max_step_chars=args.max_step_chars,
        )
    except OSError as exc:
        print(f"steptrace-web: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    base = channel.url.split("?")[0]
    print(f"steptrace-web: serving {channel.url}", flush=True)
    hint = f"steptrace_web.forward({base!r}" + (", token=..." if token else "") + ")"
    print(f"steptrace-web: apps forward with {hint}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.5):
        if not channel.running:
            break
    channel.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
