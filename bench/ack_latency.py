"""Ack latency of the bot's HTTP endpoint (issue 3).

Starts the real app against the fake Slack (SQLite) and sends correctly signed requests: a mix of
`/incident status` and message events in an incident channel, 50 per second for 20 s, then a burst of 200
with 20 at a time, then 50 per second for 10 s while 150 idle connections are held open (issue 17: slow or
idle clients must not starve the others). Prints p50, p95, p99 and max ack latency.
Goal: p99 <= 50 ms sustained and crowded, no ack over 3 s.

    .venv/bin/python bench/ack_latency.py [--seconds 20] [--rate 50] [--idle 150]
"""

from __future__ import annotations

import argparse
import itertools
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakeslack import SlackDriver  # noqa: E402
from tests.harness import ALICE, BOB, SIGNING_SECRET, running_bot  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def report(name: str, latencies: list[float], failures: int) -> None:
    ms = [value * 1000 for value in latencies]
    print(
        f"{name:>10}: n={len(ms)} p50={percentile(ms, 0.50):.1f} ms p95={percentile(ms, 0.95):.1f} ms "
        f"p99={percentile(ms, 0.99):.1f} ms max={max(ms):.1f} ms mean={statistics.fmean(ms):.1f} ms "
        f"non-2xx={failures}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--idle", type=int, default=150, help="connections held open in the last phase")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, running_bot(f"sqlite:///{tmp}/bench.db") as bot:
        bot.command("declare sev2 Benchmark incident")
        channel = bot.incident("INC-1").channel_id or ""
        bot.fake.join_as_user(channel, BOB)
        url = f"http://127.0.0.1:{bot.server.port}/slack/events"
        local = threading.local()
        counter = itertools.count()
        lock = threading.Lock()
        failures = [0]
        fresh = threading.Event()  # set: every request on a new connection (kept-open ones outlive a crowd)

        def send(_: int) -> float:
            driver = getattr(local, "driver", None)
            if driver is None:
                driver = local.driver = SlackDriver(url, SIGNING_SECRET, bot.fake)
            if fresh.is_set():
                driver.close_connection()
            if next(counter) % 2:
                event = bot.fake.post_as_user(channel, BOB, "looking at the dashboards")
                started = time.perf_counter()
                response = driver.event(event)
            else:
                payload = driver.payloads.command("status", user=ALICE, channel=channel)
                started = time.perf_counter()
                response = driver._deliver("command", payload)
            elapsed = time.perf_counter() - started
            if response.status // 100 != 2:
                with lock:
                    failures[0] += 1
            return elapsed

        def steady(pool: ThreadPoolExecutor, seconds: float) -> tuple[list[float], int]:
            """`args.rate` requests a second for `seconds`: their latencies and how many were not 2xx."""
            futures = []
            start = time.perf_counter()
            for i in range(int(seconds * args.rate)):
                delay = start + i / args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(send, i))
            latencies = [f.result() for f in futures]
            failed, failures[0] = failures[0], 0
            return latencies, failed

        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            sustained = steady(pool, args.seconds)
            bot.idle(60)
            burst_latencies = list(pool.map(send, range(args.burst)))
            burst_failures, failures[0] = failures[0], 0
            bot.idle(60)
            with held_open(bot.server.port, args.idle):
                fresh.set()
                crowded = steady(pool, args.seconds / 2)
        bot.idle(60)
        print(f"ack latency, SQLite, {args.rate:g}/s for {args.seconds:g} s then a burst of {args.burst} "
              f"({args.concurrency} at a time), then {args.rate:g}/s for {args.seconds / 2:g} s with {args.idle} "
              f"idle connections held open (half with a request half sent), each request on a new connection; "
              f"goal p99 <= 50 ms sustained and crowded, no ack over 3 s")  # fmt: skip
        report("sustained", *sustained)
        report("burst", burst_latencies, burst_failures)
        report("crowded", *crowded)
    return 0


@contextmanager
def held_open(port: int, count: int) -> Iterator[None]:
    """`count` connections to the bot that send nothing, or the start of a request and then nothing."""
    held = []
    try:
        for n in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if n % 2:
                sock.sendall(b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Length: 100\r\n")
            held.append(sock)
        yield
    finally:
        for sock in held:
            sock.close()


if __name__ == "__main__":
    sys.exit(main())
