"""Outbox delivery under load (issue 15): 2,000 rows over 100 incidents and three integrations.

The real app (SQLite by default) with the outbox worker running as the scheduler runs it, against a fake
PagerDuty, a fake Jira and a fake Statuspage that each answer after about 20 ms (Statuspage also refuses more
than one request a second). Each incident gets PagerDuty triggers, a Jira issue and label changes, and half of
them a public incident and an update on the status page. Meanwhile `/incident status` commands are sent to the
bot's HTTP endpoint and their ack time measured.

Prints rows delivered per second for PagerDuty and Jira together (goal: at least 200/s), Statuspage's own rate
(at most 1/s, none refused), and the ack p50/p99 of the commands while the worker runs (goal: p99 at most 50 ms).

    .venv/bin/python bench/outbox.py [--incidents 100] [--rows 2000] [--latency 0.02] [--database-url URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import jira, outbox, paging, statuspage, store  # noqa: E402
from core.enums import Phase, Severity  # noqa: E402
from core.models import OutboxRow  # noqa: E402
from tests.fakejira import EMAIL, PROJECT, TOKEN, FakeJira  # noqa: E402
from tests.fakepagerduty import ROUTING_KEY, FakePagerDuty  # noqa: E402
from tests.fakeslack import SlackDriver  # noqa: E402
from tests.fakestatuspage import API_KEY, COMPONENTS, PAGE_ID, FakeStatuspage  # noqa: E402
from tests.harness import ALICE, SIGNING_SECRET, running_bot  # noqa: E402


class SlowPagerDuty(FakePagerDuty):
    latency = 0.02

    def _handle(self, handler: Any, method: str) -> None:
        time.sleep(self.latency)
        super()._handle(handler, method)


class Remote:
    """A fake served by a process of its own, as the real service would be: its work does not share the bot's
    interpreter lock. `stats()` asks it for what it saw."""

    def __init__(self, factory: Callable[[], Any], latency: float) -> None:
        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(target=_serve, args=(factory, latency, child),
                                                                   daemon=True)  # fmt: skip
        self.process.start()
        self.url, self.events_url = self.conn.recv()

    def stats(self) -> dict[str, Any]:
        self.conn.send("stats")
        return self.conn.recv()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.conn.send("stop")
        self.process.join(10)


def _serve(factory: Callable[[], Any], latency: float, conn: Any) -> None:
    fake = factory()
    fake.latency = latency
    fake.start()
    conn.send((fake.url, getattr(fake, "events_url", None)))
    while (message := conn.recv()) != "stop":
        assert message == "stats"
        conn.send({"ok": [r.at for r in fake.requests if getattr(r, "status", 200) < 300 and hasattr(r, "at")],
                   "too_fast": len(getattr(fake, "too_fast", [])), "refused": len(fake.refused)})  # fmt: skip
    fake.stop()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def enqueue_rows(bot: Any, incidents: int, rows: int) -> dict[str, int]:
    """`incidents` incidents with channels, and `rows` outbox rows over them: half the incidents get a public
    incident and one update (2 Statuspage rows each); the rest is shared by PagerDuty (triggers) and Jira (the
    issue, then label changes)."""
    deps = bot.sitrep.deps
    counts = {"pagerduty": 0, "jira": 0, "statuspage": 0}
    now = deps.now()
    rules = deps.config.jira
    paced = 2 * (incidents // 2)
    per_incident = (rows - paced) // incidents
    extra = (rows - paced) - per_incident * incidents
    with deps.tx() as session:
        for number in range(incidents):
            channel = bot.fake.add_channel(f"inc-bench-{number}", [ALICE], bot_member=True)
            incident = store.declare(session=session, title=f"Bench incident {number}", severity=Severity.SEV3,
                                     declared_by=ALICE, now=now, cadence=deps.config.cadence)  # fmt: skip
            incident.channel_id, incident.channel_name = channel, f"inc-bench-{number}"
            incident.declare_step = "confirmed"
            session.flush()
            mine = per_incident + (1 if number < extra else 0)
            jira_rows = mine // 2
            jira.open_issue(session=session, incident=incident, rules=rules, now=now)
            for step in range(jira_rows - 1):
                before, after = ("sev3", "sev2") if step % 2 == 0 else ("sev2", "sev3")
                outbox.enqueue(session=session, integration=jira.INTEGRATION, operation=jira.LABELS,
                               payload={"add": [after], "remove": [before]}, now=now, incident_id=incident.id,
                               idempotency_key=f"bench:{incident.key}:labels:{step}")  # fmt: skip
            for step in range(mine - jira_rows):  # triggers and resolves in turn, as incidents are paged and end
                if step % 2 == 0:
                    paging.page(session=session, incident=incident, now=now, why=f"bench-{step}")
                else:
                    outbox.enqueue(session=session, integration=paging.INTEGRATION, operation=paging.RESOLVE,
                                   payload=paging.resolve_event(incident), now=now, incident_id=incident.id,
                                   idempotency_key=f"bench:{incident.key}:resolve:{step}")  # fmt: skip
            counts["jira"] += jira_rows
            counts["pagerduty"] += mine - jira_rows
            if number < incidents // 2:
                statuspage.publish(session=session, incident=incident, name=f"Bench {number}", body="Looking",
                                   status="investigating", components={next(iter(COMPONENTS)): "partial_outage"},
                                   now=now)  # fmt: skip
                statuspage.publish_update(session=session, incident=incident, phase=Phase.MONITORING,
                                          body="Fixed", now=now, update_id=number)  # fmt: skip
                counts["statuspage"] += 2
    return counts


def delivered(bot: Any, integration: str | None = None) -> int:
    table = OutboxRow.__table__  # type: ignore[attr-defined]
    query = sa.select(sa.func.count()).where(table.c.state == outbox.DELIVERED)
    if integration:
        query = query.where(table.c.integration.in_(integration.split(",")))
    with bot.sitrep.deps.read() as session:
        return int(session.execute(query).scalar_one())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=100)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--rate", type=float, default=20, help="/incident status commands a second meanwhile")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--batch", type=int, default=None, help="rows claimed at a time (default: the worker's)")
    parser.add_argument("--threads", type=int, default=None, help="rows sent side by side (default: the worker's)")
    args = parser.parse_args()

    pagerduty = Remote(SlowPagerDuty, args.latency)
    jira_fake = Remote(FakeJira, args.latency)
    status_page = Remote(FakeStatuspage, args.latency)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        settings = {"JIRA_URL": jira_fake.url, "JIRA_PROJECT": PROJECT, "JIRA_EMAIL": EMAIL, "JIRA_API_TOKEN": TOKEN,
                    "STATUSPAGE_API_KEY": API_KEY, "STATUSPAGE_PAGE_ID": PAGE_ID,
                    "STATUSPAGE_API_URL": f"{status_page.url}/v1", "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
                    "PAGERDUTY_EVENTS_URL": pagerduty.events_url, "SITREP_JIRA_SEVERITIES": "off"}  # fmt: skip
        with running_bot(url, **settings) as bot:
            bot.command("declare sev4 Where the commands are typed")
            channel = bot.incident("INC-1").channel_id or ""
            worker = bot.sitrep.outbox
            if args.batch:
                worker.batch = args.batch
            if args.threads:
                worker.close()
                worker._pool = ThreadPoolExecutor(args.threads, thread_name_prefix="sitrep-outbox")
                worker._threads = args.threads
            counts = enqueue_rows(bot, args.incidents, args.rows)
            total = sum(counts.values())
            fast = counts["pagerduty"] + counts["jira"]
            print(f"outbox: {total} rows over {args.incidents} incidents: {counts}; remotes answer in "
                  f"{args.latency * 1000:.0f} ms; {bot.settings.database_url.split(':')[0]}")  # fmt: skip

            stop = threading.Event()
            acks: list[float] = []

            def commands() -> None:
                driver = SlackDriver(f"http://127.0.0.1:{bot.server.port}/slack/events", SIGNING_SECRET, bot.fake)
                started = time.perf_counter()
                sent = 0
                while not stop.is_set():
                    wait = started + sent / args.rate - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    payload = driver.payloads.command("status", user=ALICE, channel=channel)
                    began = time.perf_counter()
                    response = driver._deliver("command", payload)
                    acks.append(time.perf_counter() - began)
                    assert response.status == 200
                    sent += 1

            def work() -> None:  # what the scheduler's outbox job does, every 2 s
                while not stop.is_set():
                    bot.sitrep.outbox.deliver()
                    stop.wait(0.05)

            typing_thread = threading.Thread(target=commands, daemon=True)
            worker_thread = threading.Thread(target=work, daemon=True)
            begin, cpu_begin = time.perf_counter(), time.process_time()
            typing_thread.start()
            worker_thread.start()
            fast_done_at = None
            while True:
                time.sleep(0.1)
                done_fast = delivered(bot, "pagerduty,jira")
                if fast_done_at is None and done_fast >= fast:
                    fast_done_at = time.perf_counter() - begin
                    cpu = time.process_time() - cpu_begin
                    ack_ms = sorted(a * 1000 for a in acks)
                if delivered(bot) >= total or time.perf_counter() - begin > 60 + 2 * counts["statuspage"]:
                    break
            elapsed = time.perf_counter() - begin
            stop.set()
            worker_thread.join(30)
            typing_thread.join(10)
            bot.idle(30)
            sp_done = delivered(bot, "statuspage")
            sp_stats = status_page.stats()
            sp_times = sorted(sp_stats["ok"])
            print(f"PagerDuty + Jira: {fast} rows in {fast_done_at:.1f} s = {fast / (fast_done_at or 1):.0f} rows/s "
                  f"(goal >= 200/s); CPU of the bot's process (fake Slack included) {cpu * 1000 / fast:.1f} ms a row, "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
            if len(sp_times) > 1:
                span = sp_times[-1] - sp_times[0]
                print(f"Statuspage: {sp_done} of {counts['statuspage']} rows in {elapsed:.1f} s, "
                      f"{(len(sp_times) - 1) / span:.2f} requests/s, {sp_stats['too_fast']} refused as too fast "
                      f"(limit 1/s)")  # fmt: skip
            print(f"ack of /incident status while PagerDuty and Jira rows went out: n={len(ack_ms)} "
                  f"p50={percentile(ack_ms, 0.5):.1f} ms p99={percentile(ack_ms, 0.99):.1f} ms "
                  f"max={max(ack_ms):.1f} ms (goal p99 <= 50 ms)")  # fmt: skip
            refused = sum(remote.stats()["refused"] for remote in (pagerduty, jira_fake, status_page))
            print(f"requests refused for their shape: {refused}; rows not delivered: {total - delivered(bot)}")
    for fake in (pagerduty, jira_fake, status_page):
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
