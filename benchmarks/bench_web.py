"""Web channel benchmark: delivery latency to many browsers, and the cost of a stalled one.

    .venv/bin/python benchmarks/bench_web.py [--clients 50] [--tokens 5000] [--rate 1000]

Prints, from one run:

1. Delivery latency while one Step streams ``--tokens`` tokens (at ``--rate`` tokens/s, 0 for
   an unpaced burst) to ``--clients`` WebSocket clients: for every token and every client, the
   time from ``step.stream_token()`` in the app to the token's arrival at the client (median,
   p99, max), plus how many frames each client needed (coalescing).
   The clients run in a separate process; both processes read the same system-wide monotonic
   clock, so the latencies are direct measurements.
2. The app's streaming throughput (``stream_token`` calls per second in the app thread) with one
   stalled client connected (it completed the WebSocket handshake and never reads again),
   divided by the throughput with no client at all. Rounds alternate (none, stalled, none, ...)
   and both the overall ratio (all tokens over all streaming time, per mode) and the median of
   the per-pair ratios are printed, so machine load that drifts during the run cancels out.
   Rounds are short on purpose: steptrace's live bus currently coalesces a backlog of tokens in
   time quadratic in its size, which would otherwise dominate. Target: >= 0.9x.
   The process CPU time per token (app, dispatcher and server together) is printed as well: it
   is the load-independent view of what the stalled client costs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

TOKEN_RE = re.compile(r"\[(\d+):(\d+)\]")


# -- the clients (run in their own process) ---------------------------------------------------


async def _client(url: str, ready: asyncio.Event, results: list, ready_count: list) -> None:
    """Timestamp every frame on arrival; parse only after the stream, so that parsing 50
    clients' frames in one process does not count as delivery latency."""
    from websockets.asyncio.client import connect

    received: list[tuple[int, str]] = []
    async with connect(url, proxy=None, max_size=None) as ws:
        while True:
            text = await ws.recv()
            now = time.monotonic_ns()
            if '"event":"snapshot"' in text[:40]:
                ready_count[0] += 1
                if ready_count[0] == ready_count[1]:
                    ready.set()
                continue
            received.append((now, text))
            if text.startswith('{"event":"update_message"') and '"end":null' not in text:
                if '"name":"bench-stream"' in text:
                    break
    latencies: list[int] = []
    frames = 0
    for now, text in received:
        frame = json.loads(text)
        if frame["event"] == "stream_token":
            frames += 1
            carried = frame["data"]["token"]
        elif frame["event"] == "stream_start":  # the first token travels inside the step dict
            frames += 1
            carried = frame["data"]["output"]
        else:
            continue
        latencies.extend(now - int(sent) for _, sent in TOKEN_RE.findall(carried))
    results.append({"latencies": latencies, "frames": frames, "tokens": len(latencies)})


async def _clients_main(url: str, count: int) -> None:
    ready = asyncio.Event()
    results: list = []
    ready_count = [0, count]
    tasks = [asyncio.create_task(_client(url, ready, results, ready_count)) for _ in range(count)]
    await ready.wait()
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    all_latencies = sorted(x for r in results for x in r["latencies"])
    print(
        json.dumps(
            {
                "samples": len(all_latencies),
                "median_ms": statistics.median(all_latencies) / 1e6,
                "p99_ms": all_latencies[int(len(all_latencies) * 0.99) - 1] / 1e6,
                "max_ms": all_latencies[-1] / 1e6,
                "frames_per_client": statistics.mean(r["frames"] for r in results),
                "tokens_per_client": min(r["tokens"] for r in results),
            }
        ),
        flush=True,
    )


# -- the app side -----------------------------------------------------------------------------


def measure_latency(clients: int, tokens: int, rate: float) -> dict:
    import steptrace_web

    import steptrace

    channel = steptrace_web.serve()
    worker = subprocess.Popen(
        [sys.executable, __file__, "--worker", f"ws://127.0.0.1:{channel.port}/ws", str(clients)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError("the client process did not connect")
        interval = 1.0 / rate if rate > 0 else 0.0
        start = time.perf_counter()
        with steptrace.Step(name="bench-stream", type="llm") as step:
            for i in range(tokens):
                step.stream_token(f"[{i}:{time.monotonic_ns()}] ")
                if interval:
                    next_at = start + (i + 1) * interval
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
        report = json.loads(worker.stdout.readline())
        worker.wait(60)
        return report
    finally:
        if worker.poll() is None:
            worker.kill()
        channel.stop()


def stalled_client(port: int) -> socket.socket:
    """Open the feed with a raw WebSocket handshake, then never read again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = sock.recv(4096)
    if b" 101 " not in response.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"handshake failed: {response[:80]!r}")
    return sock


def stream_round(tokens: int, piece: str) -> tuple[float, float]:
    """Tokens per second the app thread achieves streaming into one step, and the CPU time the
    whole process (app, steptrace's dispatcher, the server) spent per token, delivery included."""
    import steptrace

    cpu_start = time.process_time()
    with steptrace.Step(name="throughput", type="llm") as step:
        start = time.perf_counter()
        for _ in range(tokens):
            step.stream_token(piece)
        elapsed = time.perf_counter() - start
    steptrace.flush(30)
    return tokens / elapsed, (time.process_time() - cpu_start) / tokens


def saturate(channel) -> None:
    """Push filler until the stalled client's socket buffers are full and its outbox has given
    up (it waits for a resync it cannot receive): the steady state of a client that stopped
    reading. The filler is deleted again so that it does not weigh on later snapshots."""
    filler = "f" * 200_000
    names = []
    for i in range(500):
        name = f"filler-{time.monotonic_ns()}-{i}"
        names.append(name)
        channel.publish("new_message", {"id": name, "name": "filler", "output": filler})
        channel.flush()
        clients = list(channel.hub.clients)
        if clients and clients[0].outbox.resync_needed:
            time.sleep(0.2)
            if clients[0].outbox.resync_needed:
                break
    else:
        raise RuntimeError("the stalled client never backed up")
    for name in names:
        channel.publish("delete_message", {"id": name})
    channel.flush()


def measure_stall_cost(tokens: int, rounds: int) -> dict:
    import steptrace_web

    import steptrace

    piece = "lorem ipsum " * 4
    channel = steptrace_web.serve(client_buffer_bytes=1_000_000)
    stalled = None
    try:
        stream_round(tokens // 10, piece)  # warm up
        without, with_stalled, cpu_without, cpu_stalled = [], [], [], []
        for _ in range(rounds):
            rate, cpu = stream_round(tokens, piece)
            without.append(rate)
            cpu_without.append(cpu)
            stalled = stalled_client(channel.port)
            saturate(channel)
            rate, cpu = stream_round(tokens, piece)
            with_stalled.append(rate)
            cpu_stalled.append(cpu)
            resyncs = sum(c.outbox.resyncs for c in list(channel.hub.clients))
            stalled.close()
            stalled = None
            while channel.client_count:
                time.sleep(0.01)
            steptrace.flush(30)
        pair_ratios = [w / n for w, n in zip(with_stalled, without)]
        # Aggregate throughput: all tokens over all time spent streaming, per mode.
        none_total = len(without) * tokens / sum(tokens / r for r in without)
        stalled_total = len(with_stalled) * tokens / sum(tokens / r for r in with_stalled)
        return {
            "none_tok_s": none_total,
            "stalled_tok_s": stalled_total,
            "aggregate_ratio": stalled_total / none_total,
            "ratio": statistics.median(pair_ratios),
            "ratio_range": (min(pair_ratios), max(pair_ratios)),
            "resyncs_last_round": resyncs,
            "cpu_us_none": statistics.median(cpu_without) * 1e6,
            "cpu_us_stalled": statistics.median(cpu_stalled) * 1e6,
        }
    finally:
        if stalled is not None:
            stalled.close()
        channel.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=1000.0, help="tokens/s; 0 = burst")
    parser.add_argument("--throughput-tokens", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--worker", nargs=2, metavar=("URL", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(_clients_main(args.worker[0], int(args.worker[1])))
        return

    pace = f"{args.rate:g} tokens/s" if args.rate > 0 else "unpaced burst"
    print(f"steptrace-web benchmark ({os.cpu_count()} CPUs)")
    report = measure_latency(args.clients, args.tokens, args.rate)
    print(
        f"1. delivery latency, {args.clients} clients, one step streaming {args.tokens} tokens "
        f"({pace}):\n"
        f"   median {report['median_ms']:.1f} ms   p99 {report['p99_ms']:.1f} ms   "
        f"max {report['max_ms']:.1f} ms   ({report['samples']} token deliveries)\n"
        f"   frames per client: {report['frames_per_client']:.0f} for {args.tokens} tokens "
        f"(all {report['tokens_per_client']} tokens reached every client)"
    )
    if args.rate > 0:
        burst = measure_latency(args.clients, args.tokens, 0)
        print(
            f"   same, unpaced burst: median {burst['median_ms']:.1f} ms   "
            f"p99 {burst['p99_ms']:.1f} ms   frames per client {burst['frames_per_client']:.0f}"
        )
    cost = measure_stall_cost(args.throughput_tokens, args.rounds)
    verdict = "meets" if min(cost["ratio"], cost["aggregate_ratio"]) >= 0.9 else "MISSES"
    print(
        f"2. app streaming throughput, one stalled client vs none "
        f"({args.rounds} alternating pairs of rounds, {args.throughput_tokens} tokens each):\n"
        f"   none {cost['none_tok_s']:,.0f} tok/s   stalled {cost['stalled_tok_s']:,.0f} tok/s   "
        f"ratio {cost['aggregate_ratio']:.2f}x overall, {cost['ratio']:.2f}x median of pairs "
        f"(pairs {cost['ratio_range'][0]:.2f}-{cost['ratio_range'][1]:.2f}); "
        f"{verdict} the 0.9x target\n"
        f"   process CPU per token: none {cost['cpu_us_none']:.2f} us   "
        f"stalled {cost['cpu_us_stalled']:.2f} us   "
        f"(the stalled client was resynchronised {cost['resyncs_last_round']}x in the last round)"
    )


if __name__ == "__main__":
    main()
