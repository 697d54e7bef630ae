"""Issue 5 in real time: the APScheduler jobs of real bots against the fake Slack, with short cadences.

These tests wait on the wall clock by design (a restart after two periods; two replicas for 30 s). Their
assertions leave room for a tick of lateness and for posting jitter, but a duplicate (a gap of about zero)
or a missed period (a gap of two periods) fails them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.scheduler import Scheduler
from core import store
from core.enums import Severity
from tests.fakeslack import FakeSlack
from tests.harness import ALICE, running_bot

DUE = "status update is due"


@pytest.fixture(autouse=True)
def deep_listen_backlog(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The fake Slack's ThreadingHTTPServer listens with Python's default backlog of 5; two bots posting
    through eight threads each overflow it, and a dropped SYN is retried by the kernel after one second,
    which shows up here as a reminder a second late. Slack itself has no such queue."""
    monkeypatch.setattr(ThreadingHTTPServer, "request_queue_size", 128)
    yield


def reminder_times(fake: FakeSlack, channel: str) -> list[float]:
    return [float(m["ts"]) for m in fake.messages(channel) if DUE in m.get("text", "")]


def counting(scheduler: Scheduler) -> list[tuple[float, float, int]]:
    """Record (start, duration, reminders posted) of each tick of this scheduler (patched before start(),
    which binds the job)."""
    counts: list[tuple[float, float, int]] = []
    lock = threading.Lock()
    tick: Callable[..., int] = scheduler.tick

    def counted(now: datetime | None = None) -> int:
        began = time.time()
        posted = tick(now)
        with lock:
            counts.append((began, time.time() - began, posted))
        return posted

    scheduler.tick = counted  # type: ignore[method-assign]
    return counts


def test_a_restart_after_two_periods_sends_one_reminder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    period = 3.0
    env = {"SITREP_CADENCE": "sev3=3s", "SITREP_TICK": "0.2s"}
    with FakeSlack() as fake:
        with running_bot(url, fake=fake, **env) as first:
            first.sitrep.scheduler.start()
            first.command("declare sev3 Short cadence")
            incident = first.incident("INC-1")
            channel, due = incident.channel_id or "", incident.next_update_due
            assert due is not None
            assert time.time() < due.timestamp() - 0.5, "the test machine was too slow to stop before the due time"
        stopped = time.time()  # the scheduler is shut down (close() waits for it)
        assert stopped < due.timestamp() and reminder_times(fake, channel) == []
        time.sleep(max(0.0, due.timestamp() + 2 * period + 0.3 - time.time()))  # two periods go by while down
        with running_bot(url, fake=fake, **env) as second:
            restarted = time.time()
            second.sitrep.scheduler.start()
            [first_time] = fake.wait_for(lambda: reminder_times(fake, channel), timeout=5)
            assert stopped < restarted <= first_time
            next_due = second.incident("INC-1").next_update_due
            assert next_due is not None
            # Until just before the next period, nothing more may come: one catch-up, not one per period.
            time.sleep(max(0.0, next_due.timestamp() - 0.3 - time.time()))
            assert len(reminder_times(fake, channel)) == 1
            # And the rhythm goes on from the catch-up: the next period brings the next reminder.
            fake.wait_for(lambda: len(reminder_times(fake, channel)) == 2, timeout=5)
            second.sitrep.scheduler.stop()
        times = reminder_times(fake, channel)
        assert len(times) == 2 and times[1] - times[0] >= period - 0.3


@pytest.mark.postgres
def test_two_replicas_send_each_reminder_exactly_once(pg_database_url: str) -> None:
    engine = sa.create_engine(pg_database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    period, tick, run_for = 3.0, 1.0, 30.0
    env = {"SITREP_CADENCE": "sev3=3s", "SITREP_TICK": "1s"}
    with (
        FakeSlack() as fake,
        running_bot(pg_database_url, fake=fake, **env) as one,
        running_bot(pg_database_url, fake=fake, **env) as two,
    ):
        assert one.sitrep.engine is not two.sitrep.engine
        deps = one.sitrep.deps
        channels = []
        with deps.tx() as session:
            for n in range(20):
                channel = fake.add_channel(f"inc-replica-{n}", [ALICE], bot_member=True)
                incident = store.declare(
                    session=session, title=f"Replica {n}", severity=Severity.SEV3, declared_by=ALICE,
                    now=datetime.now(UTC), cadence=deps.config.cadence,
                )  # fmt: skip
                incident.channel_id, incident.declare_step = channel, "confirmed"
                channels.append(channel)
        started = time.time()
        counts = [counting(one.sitrep.scheduler), counting(two.sitrep.scheduler)]
        one.sitrep.scheduler.start()
        two.sitrep.scheduler.start()
        time.sleep(run_for)
        one.sitrep.scheduler.stop()
        two.sitrep.scheduler.stop()
        ended = time.time()

        total = 0
        for channel in channels:
            times = reminder_times(fake, channel)
            total += len(times)
            gaps = [round(b - a, 2) for a, b in zip(times, times[1:], strict=False)]
            # A claim moves the due time to claim time + period, so reminders come every period plus up
            # to one tick of lateness: between 30/4 and 30/3 of them. A duplicate would be a gap of ~0,
            # a missed period a gap of two periods.
            assert int(run_for / (period + tick)) <= len(times) <= int(run_for / period) + 1, (channel, times)
            assert all(period - 0.5 <= gap <= period + tick + 1.0 for gap in gaps), (channel, gaps)
            assert times[0] - started <= period + tick + 1.0  # the first partial period
            assert ended - times[-1] <= period + tick + 1.0  # the last one: none missed at the end
        posted = [sum(n for _, _, n in c) for c in counts]
        assert sum(posted) == total  # every message came from exactly one claim of one replica
        assert all(n > 0 for n in posted), posted  # both replicas took part
