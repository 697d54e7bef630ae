"""Scheduler at scale (issue 5): 5,000 open incidents, 10% due per tick, Slack answered in about 5 ms.

Prints the median and p99 tick time on SQLite and on PostgreSQL (a fresh database it creates and drops).
Goal: at most 100 ms per tick with nothing due, at most 1 s with 500 due.

    .venv/bin/python bench/scheduler_scale.py [--incidents 5000] [--ticks 20] [--no-postgres]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from bot.app import create_app  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from core.clock import FrozenClock  # noqa: E402
from core.db import make_engine, upgrade  # noqa: E402
from core.models import Incident  # noqa: E402
from tests.fakeslack import FakeSlack  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PERIOD = timedelta(minutes=10)  # sev2's cadence here; ticks are a minute apart, so 10% fall due each tick


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def serve_fake(incidents: int, pipe: Connection) -> None:
    """The fake Slack in a process of its own, as Slack is: the figures are the bot's, not the fake's."""
    # Python's HTTP server listens with a backlog of 5: the bot's posting threads overflow it and the kernel
    # retries a dropped SYN after a whole second, a stall of the fake's own that Slack does not have.
    ThreadingHTTPServer.request_queue_size = 256
    with FakeSlack() as fake:
        fake.add_user("U0IC", "ic")
        channels = [fake.add_channel(f"inc-scale-{n}", ["U0IC"], bot_member=True) for n in range(incidents)]
        fake.latency = 0.005
        pipe.send((fake.api_url, fake.bot_token, channels))
        pipe.recv()  # until told to stop


def run(url: str, label: str, incidents: int, ticks: int) -> None:
    start = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    clock = FrozenClock(start)
    engine = make_engine(url)
    upgrade(engine)
    here, there = multiprocessing.Pipe()
    process = multiprocessing.Process(target=serve_fake, args=(incidents, there), daemon=True)
    process.start()
    api_url, token, channels = here.recv()
    try:
        rows = [
            {"key": f"INC-{n + 1}", "title": f"Scale {n}", "severity": "sev2", "status": "open",
             "phase": "investigating", "private": False, "declared_by": "U0IC", "commander_id": "U0IC",
             "declared_at": start,
             "channel_id": channels[n], "declare_step": "confirmed", "services": [], "impact": {},
             "severity_reasons": [], "contributing_factors": [], "lessons": [], "five_whys": [], "people": {},
             "missed_reminders": 0, "next_update_due": start + PERIOD * ((n % 10) + 1) / 10}
            for n in range(incidents)
        ]  # fmt: skip
        with engine.begin() as connection:
            connection.execute(sa.insert(Incident.__table__), rows)  # type: ignore[attr-defined]
        settings = load_settings(
            SLACK_BOT_TOKEN=token, SLACK_SIGNING_SECRET="x", SLACK_API_URL=api_url,
            DATABASE_URL=url, SITREP_CADENCE="sev2=10m",
        )  # fmt: skip
        sitrep = create_app(settings, clock=clock, engine=engine, migrate=False)
        busy, idle, posted = [], [], 0
        try:
            for n in range(1, ticks + 1):
                clock.set(start + PERIOD * n / 10)
                began = time.perf_counter()
                posted += sitrep.scheduler.tick()
                busy.append(time.perf_counter() - began)
                began = time.perf_counter()
                assert sitrep.scheduler.tick() == 0
                idle.append(time.perf_counter() - began)
        finally:
            sitrep.close()
    finally:
        here.send("stop")
        process.join(10)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{label}: {incidents:,} open incidents, {ticks} ticks, {posted:,} reminders posted "
          f"({posted / ticks:.0f} per tick), Slack latency 5 ms")  # fmt: skip
    print(f"  load average {load} on {os.cpu_count()} CPUs (the fake Slack shares them)")
    for name, values, goal in (("nothing due", idle, 0.1), ("500 due", busy, 1.0)):
        print(f"  {name:>11}: median {statistics.median(values) * 1000:.0f} ms, p99 "
              f"{percentile(values, 0.99) * 1000:.0f} ms (goal <= {goal * 1000:.0f} ms)")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=5000)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/scale.db", "SQLite", args.incidents, args.ticks)
    if args.no_postgres:
        return 0
    name = f"sitrep_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        run(sa.make_url(PG_ADMIN).set(database=name).render_as_string(False), "PostgreSQL", args.incidents, args.ticks)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
