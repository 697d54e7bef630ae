"""Incident statistics at scale (issue 16): `sitrep stats --since 365d` over 10,000 resolved incidents.

Each incident has a timeline of about a dozen entries (trigger, detection, declaration, status updates, notes,
resolution), status updates and action items, spread over the last year. Prints, on SQLite and on PostgreSQL
(a throw-away database it creates on the server of --database-url and drops):
- in the process: the figures (core.stats) and the text and the chart (handlers.stats), median of --runs runs,
  and the first run apart (it imports matplotlib);
- the whole command `sitrep stats --since 365d --chart FILE`, wall time of a new process each run (Python's
  start and every import included), median of --runs runs.
Goal: at most 500 ms, chart included.

    .venv/bin/python bench/stats.py [--incidents 10000] [--runs 5] [--database-url URL] [--no-postgres]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.timeline_ingest import fresh_database  # noqa: E402
from core.db import make_engine, session_factory, upgrade  # noqa: E402
from core.models import ActionItem, Incident, StatusUpdate, TimelineEntry  # noqa: E402
from core.stats import compute  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
MIN = timedelta(minutes=1)


def fill(url: str, incidents: int, now: datetime) -> int:
    """Insert the incidents, their entries, status updates and action items; returns the number of entries."""
    engine = make_engine(url)
    upgrade(engine)
    rng = random.Random(16)
    rows, entries, updates, items = [], [], [], []
    for n in range(1, incidents + 1):
        declared = now - timedelta(days=rng.uniform(0.5, 364), minutes=rng.randint(0, 1440))
        detected = declared - rng.randint(1, 30) * MIN
        started = detected - rng.randint(1, 60) * MIN
        resolved = declared + rng.randint(20, 600) * MIN
        monitoring = declared + (resolved - declared) * 0.7
        rows.append({
            "id": n, "key": f"INC-{n}", "title": f"Incident {n}", "severity": rng.choice(SEVERITIES),
            "status": "resolved", "phase": "resolved", "private": n % 10 == 0, "declared_by": "U0IC",
            "commander_id": "U0IC", "declared_at": declared, "resolved_at": resolved, "channel_id": f"C{n:08d}",
            "declare_step": "confirmed", "services": [], "impact": {}, "severity_reasons": [],
            "contributing_factors": [], "lessons": [], "five_whys": [], "people": {}, "missed_reminders": 0,
            "archived_at": None,
        })  # fmt: skip

        def entry(kind: str, at: datetime, text: str, details: dict[str, str] | None = None, n: int = n) -> None:
            entries.append({"incident_id": n, "occurred_at": at, "recorded_at": at, "kind": kind, "actor": "U0IC",
                            "text": text, "source": "bot", "kind_locked": False, "details": details or {}})  # fmt: skip

        entry("trigger", started, "deploy of v42")
        entry("detection", detected, "alert fired")
        entry("declaration", declared, "declared")
        for step, (phase, at) in enumerate(
            (("investigating", declared + 10 * MIN), ("identified", declared + 40 * MIN), ("monitoring", monitoring))
        ):
            entry("status_update", at, f"update {step}", {"status": phase})
            updates.append({"incident_id": n, "posted_at": at, "phase": phase, "text": f"update {step}",
                            "author_id": "U0IC", "due_at": at + rng.choice((-5, 5)) * MIN,
                            "reminders_before": rng.choice((0, 0, 0, 1))})  # fmt: skip
        for note in range(5):
            entry("note", declared + (note + 1) * 3 * MIN, f"note {note}")
        entry("resolution", resolved, "Resolved: pool exhaustion")
        for item in range(2):
            items.append({"incident_id": n, "title": f"follow-up {item}", "priority": "P2",
                          "status": "done" if rng.random() < 0.4 else "open", "created_at": resolved,
                          "created_by": "U0IC"})  # fmt: skip
    with engine.begin() as connection:
        for table, values in ((Incident, rows), (TimelineEntry, entries), (StatusUpdate, updates), (ActionItem, items)):
            for start in range(0, len(values), 5000):
                connection.execute(sa.insert(table.__table__), values[start : start + 5000])  # type: ignore[attr-defined]
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT setval('incidents_id_seq', :n)"), {"n": incidents})
            connection.execute(sa.text("ANALYZE"))
    engine.dispose()
    return len(entries)


def in_process(url: str, runs: int, chart: Path) -> tuple[float, list[float], list[float], list[float]]:
    """(first run, then each run's total, its chart part and its CPU time in this process), in seconds."""
    from handlers.stats import longest_shown, render_chart, render_text

    engine = make_engine(url)
    totals, charts, cpu = [], [], []
    try:
        for _ in range(runs + 1):
            began, cpu_began = time.perf_counter(), time.process_time()
            with session_factory(engine)() as session:
                now = datetime.now(UTC)
                stats = compute(session=session, since=now - timedelta(days=365), until=now, zone=UTC)
            render_text(stats, period="365d", tz="UTC", longest=longest_shown(stats, lambda _: False))
            drawn = time.perf_counter()
            png = render_chart(stats)
            assert png is not None
            chart.write_bytes(png)
            ended = time.perf_counter()
            totals.append(ended - began)
            charts.append(ended - drawn)
            cpu.append(time.process_time() - cpu_began)
    finally:
        engine.dispose()
    return totals[0], totals[1:], charts[1:], cpu[1:]


def whole_command(url: str, runs: int, chart: Path) -> tuple[list[float], list[float]]:
    """Wall and CPU time of each run of the command in a new process."""
    sitrep = str(Path(sys.executable).with_name("sitrep"))
    times, cpu = [], []
    for _ in range(runs):
        began, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run([sitrep, "stats", "--since", "365d", "--database-url", url, "--chart", str(chart)],
                              capture_output=True, text=True, cwd=ROOT)  # fmt: skip
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(time.perf_counter() - began)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        assert done.returncode == 0, done.stderr
    return times, cpu


def run(url: str, label: str, incidents: int, runs: int) -> None:
    now = datetime.now(UTC)
    began = time.perf_counter()
    entries = fill(url, incidents, now)
    filled = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / "chart.png"
        first, totals, charts, cpu = in_process(url, runs, chart)
        size = chart.stat().st_size
        commands, command_cpu = whole_command(url, runs, chart)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{label}: {incidents:,} resolved incidents over 365 days, {entries:,} timeline entries "
          f"(filled in {filled:.0f} s); load average {load} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"  in the process (goal <= 500 ms): median {ms(totals)} (of which the chart {ms(charts)}, "
          f"{size:,} bytes), max {max(totals) * 1000:.0f} ms, CPU of this process {ms(cpu)}; "
          f"first run {first * 1000:.0f} ms (imports matplotlib)")  # fmt: skip
    print(f"  sitrep stats --since 365d --chart FILE, a new process each time (Python's start and imports "
          f"included): median {ms(commands)}, CPU {ms(command_cpu)}")  # fmt: skip


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", default=PG_ADMIN, help="PostgreSQL server to make a throw-away database on")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    servers = (None,) if args.no_postgres else (None, args.database_url)
    for server, label in zip(servers, ("SQLite", "PostgreSQL"), strict=False):
        name = f"sitrep_bench_{uuid.uuid4().hex[:8]}"
        with tempfile.TemporaryDirectory() as tmp, fresh_database(server, tmp, name) as url:
            run(url, label, args.incidents, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
