"""Issue 5: status-update reminders, exactly once, in virtual time and in real time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core import store
from core.clock import FrozenClock
from core.enums import Severity
from tests.fakeslack import FakeSlack
from tests.harness import ALICE, BOB, Harness, running_bot

ENV = {
    "SITREP_CADENCE": "sev1=10m,sev2=30m,sev3=1h,sev4=off",
    "SITREP_ESCALATE_AFTER": "2",
    "SITREP_ESCALATION_TARGETS": "sev2=S0ONCALL,sev1=U0BOSS",
}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def bot(database_url: str, clock: FrozenClock) -> Iterator[Harness]:
    with running_bot(database_url, clock=clock, **ENV) as harness:
        yield harness


def reminders(bot: Harness, channel: str) -> list[str]:
    return [m["text"] for m in bot.fake.messages(channel) if "status update is due" in m.get("text", "")]


def tick(bot: Harness, clock: FrozenClock, **delta: float) -> int:
    clock.set(START[0] + timedelta(**delta))
    return bot.sitrep.scheduler.tick()


START: list[datetime] = []


def test_every_transition_of_the_cadence(bot: Harness, clock: FrozenClock) -> None:
    START[:] = [clock.now()]
    bot.command("declare sev2 Checkout errors")
    channel = bot.incident("INC-1").channel_id or ""
    bot.command(f"role comms <@{BOB}>", channel=channel)
    assert tick(bot, clock, minutes=29) == 0
    assert tick(bot, clock, minutes=30) == 1 and tick(bot, clock, minutes=30) == 0
    first = reminders(bot, channel)[-1]
    assert ALICE in first and BOB in first and "S0ONCALL" not in first
    assert tick(bot, clock, minutes=60) == 1
    assert tick(bot, clock, minutes=90) == 1  # the third in a row: the escalation target is mentioned too
    assert "<!subteam^S0ONCALL>" in reminders(bot, channel)[-1]

    clock.set(START[0] + timedelta(minutes=95))
    bot.command("update identified found it", channel=channel)  # resets the count, re-arms +30m
    assert tick(bot, clock, minutes=124) == 0
    assert tick(bot, clock, minutes=125) == 1 and "S0ONCALL" not in reminders(bot, channel)[-1]

    clock.set(START[0] + timedelta(minutes=126))
    message = bot.fake.messages(channel)[-1]
    bot.slack.block_action("sitrep_snooze_1h", f"{bot.incident('INC-1').id}:60", user=ALICE, channel=channel,
                           message=message["ts"])  # fmt: skip
    bot.idle()
    assert tick(bot, clock, minutes=185) == 0
    assert tick(bot, clock, minutes=186) == 1

    clock.set(START[0] + timedelta(minutes=190))
    bot.command("severity sev1 spreading", channel=channel)  # re-armed with sev1's 10 minutes
    assert tick(bot, clock, minutes=199) == 0
    assert tick(bot, clock, minutes=200) == 1

    clock.set(START[0] + timedelta(minutes=201))
    bot.command("resolve pool too small", channel=channel)
    assert tick(bot, clock, minutes=300) == 0
    clock.set(START[0] + timedelta(minutes=301))
    bot.command("reopen", channel=channel)
    assert tick(bot, clock, minutes=310) == 0
    assert tick(bot, clock, minutes=311) == 1

    # Down for five hours: one catch-up reminder, not one per missed period.
    assert tick(bot, clock, minutes=611) == 1 and tick(bot, clock, minutes=611) == 0
    assert len(reminders(bot, channel)) == 8


def test_a_failed_post_is_retried_and_posted_once_and_its_claim_kept(bot: Harness, clock: FrozenClock) -> None:
    START[:] = [clock.now()]
    bot.command("declare sev1 DB down")
    channel = bot.incident("INC-1").channel_id or ""
    bot.fake.fail_next("chat.postMessage", 500, times=3)
    assert tick(bot, clock, minutes=10) == 0  # the client tried three times
    assert reminders(bot, channel) == []
    assert bot.incident("INC-1").next_update_due is not None
    assert tick(bot, clock, minutes=10, seconds=1) == 1
    assert tick(bot, clock, minutes=10, seconds=2) == 0
    assert len(reminders(bot, channel)) == 1


def test_the_digest_and_action_items_due_tomorrow_are_sent_once(bot: Harness, clock: FrozenClock) -> None:
    bot.command("declare sev2 Public one")
    bot.command("declare sev2 --private Secret one")
    channel = bot.incident("INC-1").channel_id or ""
    tomorrow = (clock.now() + timedelta(days=1)).date().isoformat()
    bot.command(f"action Add alerts <@{BOB}> P1 due:{tomorrow}", channel=channel)
    scheduler = bot.sitrep.scheduler
    assert scheduler.digest() and not scheduler.digest()
    digest = bot.fake.messages(bot.announce)[-1]["text"]
    assert "INC-1" in digest and "INC-2" not in digest
    assert scheduler.remind_action_items() == 1 and scheduler.remind_action_items() == 0
    assert any("Add alerts" in m["text"] for m in bot.fake.dms(BOB))


def test_a_restart_sends_one_reminder_for_the_periods_missed(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/restart.db"
    env = {"SITREP_CADENCE": "sev3=2s", "SITREP_TICK": "0.2s"}
    with FakeSlack() as fake:
        with running_bot(url, fake=fake, **env) as first:
            first.command("declare sev3 Short cadence")
            channel = first.incident("INC-1").channel_id or ""
        time.sleep(4.5)  # down for two periods and more
        with running_bot(url, fake=fake, **env) as second:
            second.sitrep.scheduler.start()
            fake.wait_for(lambda: reminders(second, channel), timeout=5)
            time.sleep(1.0)  # well under one period: no second reminder may come
            assert len(reminders(second, channel)) == 1


@pytest.mark.postgres
def test_two_replicas_send_each_reminder_exactly_once(pg_database_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(pg_database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    env = {"SITREP_CADENCE": "sev3=3s", "SITREP_TICK": "1s"}
    with (
        FakeSlack() as fake,
        running_bot(pg_database_url, fake=fake, **env) as one,
        running_bot(pg_database_url, fake=fake, **env) as two,
    ):
        deps = one.sitrep.deps
        channels = []
        with deps.tx() as session:
            for n in range(20):
                channel = fake.add_channel(f"inc-replica-{n}", [ALICE], bot_member=True)
                incident = store.declare(
                    session=session, title=f"Replica {n}", severity=Severity.SEV3, declared_by=ALICE,
                    now=deps.now(), cadence=deps.settings.cadence,
                )  # fmt: skip
                incident.channel_id, incident.declare_step = channel, "confirmed"
                channels.append(channel)
        started = time.time()
        one.sitrep.scheduler.start()
        two.sitrep.scheduler.start()
        time.sleep(30)
        one.sitrep.scheduler.stop()
        two.sitrep.scheduler.stop()
        for channel in channels:
            times = [float(m["ts"]) for m in fake.messages(channel) if "status update is due" in m["text"]]
            gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
            assert 8 <= len(times) <= 11, (channel, len(times))
            # A duplicate would come within moments of the first; a missed period would leave a gap of two.
            # Between them: the 3 s period, plus up to one 1 s tick of lateness, plus posting jitter.
            assert all(1.5 <= gap <= 5.5 for gap in gaps), (channel, gaps)
            assert times[0] - started <= 4.5
