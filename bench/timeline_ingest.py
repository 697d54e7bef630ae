"""Timeline ingest (issue 4): 2,000 reaction events over 50 incident channels, 20 at a time, 10% delivered
twice (a Slack retry with the same event id). Prints events stored per second and duplicates found.
Goal: at least 500 events/s and 0 duplicates.

The bot runs as it does in production, `sitrep run` in its own process; this process plays Slack (the fake
Web API) and sends the signed event deliveries.

    .venv/bin/python bench/timeline_ingest.py [--rounds 3] [--database-url postgresql://…]

Each round has a fresh bot and database; the last line is the median over the rounds. A shared machine's
speed varies from minute to minute, so one round alone says little: each round prints the CPU time the host
took for other machines meanwhile, and the bot's CPU time per delivery (1 to 2 ms when the machine runs well).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from core import store  # noqa: E402
from core.clock import SystemClock  # noqa: E402
from core.db import READ_ONLY, make_engine, normalise_url, session_factory, transaction, upgrade  # noqa: E402
from core.enums import Severity  # noqa: E402
from core.models import TimelineEntry  # noqa: E402
from tests.fakeslack import FakeSlack, SlackDriver  # noqa: E402

SECRET = "bench-signing-secret"
BOB = "U0BOB"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the bot did not become healthy")


def stolen_seconds() -> float:
    """CPU time the host gave to other machines while this one's was waiting (steal, from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def bot_cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of the bot's process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / os.sysconf("SC_CLK_TCK"), int(fields[12]) / os.sysconf("SC_CLK_TCK")


@contextmanager
def fresh_database(server_url: str | None, tmp: str, name: str) -> Iterator[str]:
    """An empty database for one round: a SQLite file, or a database created on the given PostgreSQL server."""
    if server_url is None or server_url.startswith("sqlite"):
        yield f"sqlite:///{tmp}/{name}.db"
        return
    admin = sa.create_engine(normalise_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(normalise_url(server_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server (each round creates and drops a database of its own there); "
                             "default: a fresh SQLite file per round")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each with a fresh bot and database")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    rates = []
    for number in range(1, args.rounds + 1):
        name = f"sitrep_ingest_{os.getpid()}_{number}"
        with tempfile.TemporaryDirectory() as tmp, fresh_database(args.database_url, tmp, name) as url:
            rate = one_round(args, url, tmp, number)
        if rate is None:
            return 1
        rates.append(rate)
    if len(rates) > 1:
        print(f"median of {len(rates)} rounds: {statistics.median(rates):.0f} events stored/s "
              f"(min {min(rates):.0f}, max {max(rates):.0f}); goal >= 500")  # fmt: skip
    return 0


def one_round(args: argparse.Namespace, url: str, tmp: str, number: int) -> float | None:
    """One round; its events stored per second, or None when entries were lost or duplicated."""
    with FakeSlack() as fake:
        engine = make_engine(url)
        upgrade(engine)
        sessions = session_factory(engine)
        fake.add_user(BOB, "bob")
        cadence = {s: None for s in Severity}
        channels = []
        for n in range(args.channels):
            channel = fake.add_channel(f"inc-bench-{n}", [BOB], bot_member=True)
            with transaction(sessions) as session:
                incident = store.declare(session=session, title=f"Bench {n}", severity=Severity.SEV2,
                                         declared_by=BOB, now=SystemClock().now(), cadence=cadence)  # fmt: skip
                incident.channel_id, incident.declare_step = channel, "confirmed"
            channels.append(channel)
        events = []
        for i in range(args.events):
            channel = channels[i % len(channels)]
            message = fake.post_as_user(channel, BOB, f"step {i}: restarted worker {i % 7}")
            events.append(fake.react_as_user(channel, message["ts"], BOB, "pushpin"))

        port = free_port()
        env = {**os.environ, "SLACK_BOT_TOKEN": fake.bot_token, "SLACK_SIGNING_SECRET": SECRET,
               "SLACK_API_URL": fake.api_url, "DATABASE_URL": url, "PORT": str(port)}  # fmt: skip
        env.pop("SLACK_APP_TOKEN", None)
        bot_log = Path(tmp) / "bot.log"
        bot = subprocess.Popen([str(Path(sys.executable).parent / "sitrep"), "run"], env=env, cwd=tmp,
                               stdout=subprocess.DEVNULL, stderr=bot_log.open("w"))  # fmt: skip
        try:
            wait_healthy(port)
            if os.environ.get("SITREP_BENCH_PROFILE"):  # e.g. SITREP_BENCH_PROFILE=/tmp/bot.txt (py-spy installed)
                spy = [str(Path(sys.executable).parent / "py-spy"), "record", "--gil", "--format", "raw", "-d", "10"]
                subprocess.Popen([*spy, "-o", os.environ["SITREP_BENCH_PROFILE"], "-p", str(bot.pid)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            local = threading.local()
            rng = random.Random(7)
            deliveries: list[tuple[int, int | None]] = [(i, None) for i in range(len(events))]
            deliveries += [(i, 1) for i in rng.sample(range(len(events)), len(events) // 10)]
            rng.shuffle(deliveries)

            # Slack's side of each delivery (envelope, JSON, signature, the HTTP request itself) is prepared before
            # the clock starts, and sent over plain keep-alive sockets, as a load generator does: what is timed
            # and what takes the CPU is, as far as can be, the bot taking them in.
            signer = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SECRET, fake)
            prepared = []
            for index, retry in deliveries:
                body = json.dumps(signer.payloads.event(events[index], event_id=f"EvBench{index:06d}")).encode()
                headers = {"Content-Type": "application/json", **signer.signed_headers(body.decode())}
                if retry is not None:
                    headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                prepared.append(
                    f"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}"
                    f"Content-Length: {len(body)}\r\n\r\n".encode() + body
                )

            def send(request: bytes) -> int:
                conn = getattr(local, "conn", None)
                if conn is None:
                    conn = local.conn = socket.create_connection(("127.0.0.1", port))
                    local.reader = conn.makefile("rb")
                conn.sendall(request)
                status = int(local.reader.readline().split()[1])
                length = 0
                while (line := local.reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                local.reader.read(length)
                return status

            def stored() -> int:
                # A read-only look (DEFERRED on SQLite), so that polling never takes the bot's write lock.
                with engine.connect().execution_options(**{READ_ONLY: True}) as connection:
                    query = (
                        sa.select(sa.func.count())
                        .select_from(TimelineEntry)
                        .where(
                            TimelineEntry.message_ts.is_not(None)  # type: ignore[union-attr]
                        )
                    )
                    return int(connection.scalar(query) or 0)

            started, own_cpu, bot_start_cpu = time.perf_counter(), time.process_time(), sum(bot_cpu_seconds(bot.pid))
            stolen = stolen_seconds()
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                statuses = list(pool.map(send, prepared))
            acked = time.perf_counter() - started
            last, progress_at = -1, time.monotonic()
            while (now_stored := stored()) < len(events) and time.monotonic() - progress_at < 30:
                if now_stored != last:
                    last, progress_at = now_stored, time.monotonic()
                time.sleep(0.02)
            elapsed, stolen = time.perf_counter() - started, stolen_seconds() - stolen
            time.sleep(1)  # let any late duplicate land before counting
            with engine.connect().execution_options(**{READ_ONLY: True}) as connection:
                count = stored()
                distinct = connection.scalar(sa.select(sa.func.count(sa.distinct(TimelineEntry.message_ts))))
            (user, system), own_cpu = bot_cpu_seconds(bot.pid), time.process_time() - own_cpu
            cpu = user + system - bot_start_cpu  # its work, not its start
        finally:
            bot.terminate()
            bot.wait(10)
            engine.dispose()
        database = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
        print(
            f"round {number}: timeline ingest on {database}: {len(deliveries)} deliveries ({len(events)} events, "
            f"{len(deliveries) - len(events)} retried), {args.concurrency} at a time; the bot in a process of "
            "its own"
        )
        print(f"  acked in {acked:.2f} s; all stored in {elapsed:.2f} s: {len(events) / elapsed:.0f} events stored/s "
              f"(CPU time taken by the host for other machines meanwhile: {stolen:.1f} s)")  # fmt: skip
        print(f"  bot CPU time: {cpu:.1f} s ({cpu / len(deliveries) * 1000:.1f} ms per delivery; "
              f"{system:.1f} s of it in the kernel); "
              f"this process (Slack's side): {own_cpu:.1f} s")  # fmt: skip
        reads = len(fake.calls_to("conversations.history")) + len(fake.calls_to("conversations.replies"))
        print(f"  Slack reads by the bot: {reads} for {len(events)} events")
        lines = bot_log.read_text().splitlines()
        errors = [line for line in lines if '"level": "error"' in line]
        print(f"  errors logged by the bot: {len(errors)}" + (f"; the first: {errors[0][:2000]}" if errors else ""))
        failed = sum(1 for s in statuses if s // 100 != 2)
        print(f"  entries stored: {count}, duplicates found: {count - (distinct or 0)}, non-2xx answers: {failed}")
    if count != len(events) or distinct != len(events) or failed:
        print("  FAILED: entries were lost or duplicated, or deliveries refused")
        return None
    return len(events) / elapsed


if __name__ == "__main__":
    sys.exit(main())
