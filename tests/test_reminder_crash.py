"""Issue 17: `kill -9` at random moments of a reminder round (SPEC §7, §15).

A real process (tests/reminder_round.py) runs one scheduler tick against a shared database and the fake Slack,
served over HTTP by this test process, and is killed with SIGKILL at a seeded random moment of the round: before
its claim, between claim and posts, between posts and their confirmation, or after. Then a fresh app ticks once
the lease has run out. Every incident must get its reminder of the round, none two, and each round counts as
exactly one missed reminder."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bot.app import create_app
from bot.settings import load_settings
from core import store
from core.clock import FrozenClock
from core.db import make_engine, session_factory, upgrade
from core.enums import Severity
from core.models import Incident
from core.reminders import LEASE
from tests import reminder_round
from tests.fakeslack import FakeSlack
from tests.harness import ALICE

ROUNDS = 20
INCIDENTS = 40
SEED = 1717
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DUE = "status update is due"
ROOT = Path(__file__).resolve().parent.parent


def reminders_in(fake: FakeSlack, channels: list[str]) -> list[int]:
    """How many reminders each channel holds."""
    return [sum(DUE in m.get("text", "") for m in fake.messages(channel)) for channel in channels]


def start_round(database_url: str, api_url: str, at: datetime) -> subprocess.Popen[str]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.reminder_round", database_url, api_url, at.isoformat()],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    return worker


def test_kill_9_at_random_moments_of_a_reminder_round_loses_and_doubles_nothing(database_url: str) -> None:
    rng = random.Random(SEED)
    fake = FakeSlack().start()
    fake.latency = 0.05  # each Slack call takes a while, so that kills land between posts and their confirmation
    engine = make_engine(database_url)
    upgrade(engine)
    channels = [fake.add_channel(f"inc-{n}", [ALICE], bot_member=True) for n in range(INCIDENTS)]
    settings = load_settings(
        SLACK_BOT_TOKEN=fake.bot_token, SLACK_SIGNING_SECRET="x", SLACK_APP_TOKEN="", SLACK_API_URL=fake.api_url,
        DATABASE_URL=database_url, SITREP_CADENCE=reminder_round.CADENCE,
    )  # fmt: skip
    with session_factory(engine).begin() as session:
        for channel in channels:
            incident = store.declare(
                session=session, title=f"Crash {channel}", severity=Severity.SEV1, declared_by=ALICE,
                now=START - timedelta(hours=1), cadence=settings.cadence,
            )  # fmt: skip
            incident.channel_id, incident.declare_step = channel, "confirmed"
    clock = FrozenClock(START)
    fresh = create_app(settings, clock=clock, migrate=False)
    moments: Counter[str] = Counter()
    try:
        for round_ in range(ROUNDS):
            at = START + timedelta(hours=round_)
            with engine.connect() as connection:
                due = dict(connection.execute(sa.select(Incident.id, Incident.next_update_due)).all())  # type: ignore[call-overload]
            assert all(when <= at for when in due.values())
            worker = start_round(database_url, fake.api_url, at)
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
            time.sleep(rng.uniform(0.0, 0.25))  # the seeded random moment of the kill
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)

            done = sum(1 for count in reminders_in(fake, channels) if count == round_ + 1)
            moments["before any post" if done == 0 else "after the round" if done == INCIDENTS else "mid-round"] += 1

            clock.set(at + LEASE + timedelta(seconds=1))  # a fresh process, once the dead one's lease has run out
            fresh.scheduler.tick()
            assert reminders_in(fake, channels) == [round_ + 1] * INCIDENTS, f"round {round_}: lost or doubled"
            with engine.connect() as connection:
                missed = set(connection.execute(sa.select(Incident.missed_reminders)).scalars())
            assert missed == {round_ + 1}, f"round {round_}: each round counts as one missed reminder"
    finally:
        fresh.close()
        engine.dispose()
        fake.stop()
    print(f"kill moments over {ROUNDS} rounds: {dict(moments)}")
    assert moments["mid-round"] >= 1, f"no kill landed inside a round: {dict(moments)}"
