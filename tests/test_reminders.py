"""Issue 5: status-update reminders (SPEC §7) in virtual time, on SQLite and PostgreSQL.

The bot runs for real against the fake Slack, but its clock is a FrozenClock and the scheduler is never
started: each test moves the clock and calls `tick()` itself, so nothing depends on how fast the machine is.
The real-time tests (restart, two replicas) are in test_scheduler_e2e.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from core import reminders as core_reminders
from core import store
from core.cadence import parse_cadence
from core.clock import FrozenClock
from core.enums import Severity
from core.reminders import Claim
from handlers.reminders import escalation_mention, reminder_message
from tests.harness import ALICE, BOB, CAROL, Harness, running_bot

ENV = {
    "SITREP_CADENCE": "sev1=10m,sev2=30m,sev3=1h,sev4=off",
    "SITREP_ESCALATE_AFTER": "2",
    "SITREP_ESCALATION_TARGETS": "sev2=S0ONCALL,sev1=U0BOSS",
}
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def bot(database_url: str, clock: FrozenClock) -> Iterator[Harness]:
    with running_bot(database_url, clock=clock, **ENV) as harness:
        yield harness


@pytest.fixture
def channel(bot: Harness) -> str:
    """INC-1, sev2 (30 min cadence), declared at START by Alice (commander), Bob the comms lead."""
    bot.command("declare sev2 Checkout errors")
    channel = bot.incident("INC-1").channel_id
    assert channel
    bot.command(f"role comms <@{BOB}>", channel=channel)
    return channel


def reminder_messages(bot: Harness, channel: str) -> list[dict[str, Any]]:
    return [m for m in bot.fake.messages(channel) if "status update is due" in m.get("text", "")]


def texts(bot: Harness, channel: str) -> list[str]:
    return [m["text"] for m in reminder_messages(bot, channel)]


def at(clock: FrozenClock, **delta: float) -> None:
    clock.set(START + timedelta(**delta))


def tick(bot: Harness, clock: FrozenClock, **delta: float) -> int:
    """Move the clock to START + delta and run one scheduler tick; how many reminders it posted."""
    at(clock, **delta)
    return bot.sitrep.scheduler.tick()


def test_the_first_reminder_comes_one_period_after_declaring_and_only_once(
    bot: Harness, clock: FrozenClock, channel: str
) -> None:
    assert bot.incident("INC-1").next_update_due == START + timedelta(minutes=30)
    assert tick(bot, clock, minutes=29, seconds=59) == 0
    assert tick(bot, clock, minutes=30) == 1
    assert tick(bot, clock, minutes=30) == 0  # claimed: a second tick at the same moment finds nothing
    assert tick(bot, clock, minutes=59, seconds=59) == 0

    [message] = reminder_messages(bot, channel)
    assert f"<@{ALICE}>" in message["text"] and f"<@{BOB}>" in message["text"]
    assert "S0ONCALL" not in message["text"]
    buttons = {e["action_id"]: e["value"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]}
    incident_id = str(bot.incident("INC-1").id)
    assert buttons["sitrep_post_update"] == incident_id
    assert {k: v for k, v in buttons.items() if k.startswith("sitrep_snooze_")} == {
        "sitrep_snooze_15m": f"{incident_id}:15",
        "sitrep_snooze_30m": f"{incident_id}:30",
        "sitrep_snooze_1h": f"{incident_id}:60",
    }
    incident = bot.incident("INC-1")
    assert incident.missed_reminders == 1
    assert incident.last_reminder_at == START + timedelta(minutes=30)
    assert incident.next_update_due == START + timedelta(minutes=60)


def test_while_no_update_comes_a_reminder_is_posted_once_every_period(
    bot: Harness, clock: FrozenClock, channel: str
) -> None:
    posted = [tick(bot, clock, minutes=minute) for minute in range(0, 151)]  # a tick every virtual minute
    assert [minute for minute, n in enumerate(posted) if n] == [30, 60, 90, 120, 150]
    assert len(texts(bot, channel)) == 5


def test_the_post_update_button_of_a_reminder_opens_the_update_modal(
    bot: Harness, clock: FrozenClock, channel: str
) -> None:
    assert tick(bot, clock, minutes=30) == 1
    message = reminder_messages(bot, channel)[-1]
    opened = len(bot.fake.calls_to("views.open"))
    response = bot.slack.block_action(
        "sitrep_post_update", str(bot.incident("INC-1").id), user=ALICE, channel=channel, message=message["ts"]
    )
    assert response.status == 200
    bot.idle()
    assert len(bot.fake.calls_to("views.open")) == opened + 1


def test_a_status_update_moves_the_next_reminder_and_resets_the_count(
    bot: Harness, clock: FrozenClock, channel: str
) -> None:
    assert tick(bot, clock, minutes=30) == 1
    assert tick(bot, clock, minutes=60) == 1
    assert bot.incident("INC-1").missed_reminders == 2
    at(clock, minutes=70)
    bot.command("update identified found the bad deploy", channel=channel)
    incident = bot.incident("INC-1")
    assert incident.missed_reminders == 0
    assert incident.next_update_due == START + timedelta(minutes=100)
    assert tick(bot, clock, minutes=90) == 0  # the old rhythm (every 30 min from the start) is gone
    assert tick(bot, clock, minutes=99, seconds=59) == 0
    assert tick(bot, clock, minutes=100) == 1
    assert bot.incident("INC-1").missed_reminders == 1


def test_after_escalate_after_missed_reminders_the_target_of_the_severity_is_mentioned(
    bot: Harness, clock: FrozenClock, channel: str
) -> None:
    for minute in (30, 60, 90, 120):
        assert tick(bot, clock, minutes=minute) == 1
    first, second, third, fourth = texts(bot, channel)
    # SITREP_ESCALATE_AFTER=2: two reminders went unanswered, so the third one escalates, and so on.
    assert "S0ONCALL" not in first and "S0ONCALL" not in second
    assert "<!subteam^S0ONCALL>" in third and "<!subteam^S0ONCALL>" in fourth
    assert f"<@{ALICE}>" in third and f"<@{BOB}>" in third

    at(clock, minutes=125)
    bot.command("update mitigated rolled back", channel=channel)  # an update ends the run of missed ones
    assert tick(bot, clock, minutes=155) == 1
    assert "S0ONCALL" not in texts(bot, channel)[-1]


def test_a_user_escalation_target_is_mentioned_as_a_user(bot: Harness, clock: FrozenClock) -> None:
    bot.command("declare sev1 Database down")
    channel = bot.incident("INC-1").channel_id or ""
    for minute in (10, 20, 30):
        assert tick(bot, clock, minutes=minute) == 1
    assert "<@U0BOSS>" in texts(bot, channel)[-1]
    assert "U0BOSS" not in texts(bot, channel)[1]


def test_escalation_mentions() -> None:
    assert escalation_mention("S0123ABC") == "<!subteam^S0123ABC>"
    assert escalation_mention("U0456DEF") == "<@U0456DEF>"
    assert escalation_mention("W0456DEF") == "<@W0456DEF>"


def test_the_comms_lead_is_not_mentioned_twice_when_the_commander_holds_both_roles() -> None:
    claim = Claim(1, "INC-1", "T", Severity.SEV2, "C1", ALICE, 1, None)
    text, _ = reminder_message(claim, comms=ALICE, escalation=None)
    assert text.count(f"<@{ALICE}>") == 1


def test_a_snooze_moves_the_next_reminder_to_now_plus_the_snooze(
    bot: Harness, clock: FrozenClock, channel: str
) -> None:
    assert tick(bot, clock, minutes=30) == 1
    message = reminder_messages(bot, channel)[-1]
    incident_id = bot.incident("INC-1").id
    at(clock, minutes=32)
    bot.fake.join_as_user(channel, CAROL)  # snoozing changes the incident: it takes membership (SPEC §15)
    response = bot.slack.block_action(
        "sitrep_snooze_1h", f"{incident_id}:60", user=CAROL, channel=channel, message=message["ts"]
    )
    assert response.status == 200
    bot.idle()
    assert bot.incident("INC-1").next_update_due == START + timedelta(minutes=92)
    assert any("INC-1" in reply for reply in bot.replies(CAROL))  # answered privately
    assert tick(bot, clock, minutes=60) == 0  # the regular one is snoozed away
    assert tick(bot, clock, minutes=91, seconds=59) == 0
    assert tick(bot, clock, minutes=92) == 1


def test_a_snooze_of_a_resolved_incident_is_refused_and_changes_nothing(
    bot: Harness, clock: FrozenClock, channel: str
) -> None:
    assert tick(bot, clock, minutes=30) == 1
    message = reminder_messages(bot, channel)[-1]
    at(clock, minutes=31)
    bot.command("resolve rolled back", channel=channel)
    response = bot.slack.block_action(
        "sitrep_snooze_15m", f"{bot.incident('INC-1').id}:15", user=ALICE, channel=channel, message=message["ts"]
    )
    assert response.status == 200
    bot.idle()
    assert bot.incident("INC-1").next_update_due is None
    assert tick(bot, clock, minutes=500) == 0


def test_a_severity_change_mid_period_uses_the_new_cadence_from_the_change(
    bot: Harness, clock: FrozenClock, channel: str
) -> None:
    at(clock, minutes=12)
    bot.command("severity sev1 spreading to EU", channel=channel)  # sev1: 10 minutes, counted from the change
    assert bot.incident("INC-1").next_update_due == START + timedelta(minutes=22)
    assert tick(bot, clock, minutes=21, seconds=59) == 0
    assert tick(bot, clock, minutes=22) == 1
    assert tick(bot, clock, minutes=30) == 0  # sev2's old due time means nothing now
    assert tick(bot, clock, minutes=32) == 1

    at(clock, minutes=35)
    bot.command("severity sev3 contained", channel=channel)  # and down again: one hour from the change
    assert tick(bot, clock, minutes=94) == 0
    assert tick(bot, clock, minutes=95) == 1


def test_a_severity_whose_cadence_is_off_gets_no_reminders(bot: Harness, clock: FrozenClock, channel: str) -> None:
    at(clock, minutes=5)
    bot.command("severity sev4 cosmetic only", channel=channel)
    assert bot.incident("INC-1").next_update_due is None
    assert tick(bot, clock, hours=48) == 0


def test_resolve_stops_the_reminders_and_reopen_starts_them_again(
    bot: Harness, clock: FrozenClock, channel: str
) -> None:
    assert tick(bot, clock, minutes=30) == 1
    at(clock, minutes=40)
    bot.command("resolve pool too small", channel=channel)
    assert bot.incident("INC-1").next_update_due is None
    assert tick(bot, clock, minutes=60) == 0
    assert tick(bot, clock, hours=10) == 0

    at(clock, hours=10, minutes=5)
    bot.command("reopen", channel=channel)
    incident = bot.incident("INC-1")
    assert incident.next_update_due == START + timedelta(hours=10, minutes=35)
    assert incident.missed_reminders == 0
    assert tick(bot, clock, hours=10, minutes=34) == 0
    assert tick(bot, clock, hours=10, minutes=35) == 1
    assert len(texts(bot, channel)) == 2


def test_periods_missed_while_down_give_one_catch_up_reminder(bot: Harness, clock: FrozenClock, channel: str) -> None:
    assert tick(bot, clock, minutes=30) == 1
    # No tick for five hours (ten periods): one catch-up, then the rhythm starts again from it.
    assert tick(bot, clock, hours=5, minutes=30) == 1
    assert tick(bot, clock, hours=5, minutes=30) == 0
    assert tick(bot, clock, hours=5, minutes=59) == 0
    assert tick(bot, clock, hours=6) == 1
    assert len(texts(bot, channel)) == 3
    assert bot.incident("INC-1").missed_reminders == 3  # periods while down are not counted as missed


def test_a_failed_post_is_retried_and_posted_once_and_its_claim_kept(
    bot: Harness, clock: FrozenClock, channel: str
) -> None:
    before = len(bot.fake.calls_to("chat.postMessage"))
    bot.fake.fail_next("chat.postMessage", 500, times=3)
    # The client's ServerErrorRetryHandler tries three times; all three fail, so the claim goes back.
    assert tick(bot, clock, minutes=30) == 0
    assert texts(bot, channel) == []
    incident = bot.incident("INC-1")
    assert incident.next_update_due == START + timedelta(minutes=30)  # still due
    assert incident.missed_reminders == 0
    assert tick(bot, clock, minutes=30, seconds=10) == 1  # the next tick posts it
    assert tick(bot, clock, minutes=30, seconds=20) == 0
    assert len(texts(bot, channel)) == 1
    attempts = bot.fake.calls_to("chat.postMessage")[before:]
    assert [call.status for call in attempts] == [500, 500, 500, 200]
    incident = bot.incident("INC-1")
    assert incident.missed_reminders == 1
    assert incident.next_update_due == START + timedelta(minutes=60, seconds=10)


def test_a_post_that_succeeds_within_the_clients_retries_is_posted_once(
    bot: Harness, clock: FrozenClock, channel: str
) -> None:
    bot.fake.fail_next("chat.postMessage", 500, times=2)
    assert tick(bot, clock, minutes=30) == 1
    assert tick(bot, clock, minutes=30, seconds=10) == 0
    assert len(texts(bot, channel)) == 1


def test_an_update_during_a_failed_post_is_not_undone_by_putting_the_claim_back(
    bot: Harness, clock: FrozenClock, channel: str
) -> None:
    """The claim goes back only if nothing moved the incident in between."""
    deps = bot.sitrep.deps
    at(clock, minutes=30)
    with deps.tx() as session:
        [claim] = core_reminders.claim_due(session=session, now=clock.now(), cadence=deps.config.cadence)
    at(clock, minutes=31)
    bot.command("update monitoring all good", channel=channel)
    with deps.tx() as session:
        assert not core_reminders.release(session=session, claim=claim, now=clock.now())
    assert bot.incident("INC-1").next_update_due == START + timedelta(minutes=61)
    assert bot.incident("INC-1").missed_reminders == 0


def test_the_digest_and_action_items_due_tomorrow_are_sent_once(bot: Harness, clock: FrozenClock) -> None:
    bot.command("declare sev2 Public one")
    bot.command("declare sev2 --private Secret one")
    channel = bot.incident("INC-1").channel_id or ""
    tomorrow = (clock.now() + timedelta(days=1)).date().isoformat()
    later = (clock.now() + timedelta(days=3)).date().isoformat()
    bot.command(f"action Add alerts <@{BOB}> P1 due:{tomorrow}", channel=channel)
    bot.command(f"action Write runbook <@{CAROL}> P2 due:{later}", channel=channel)
    scheduler = bot.sitrep.scheduler
    assert scheduler.digest() and not scheduler.digest()
    digest = bot.fake.messages(bot.announce)[-1]["text"]
    assert "INC-1" in digest and "INC-2" not in digest
    assert scheduler.remind_action_items() == 1 and scheduler.remind_action_items() == 0
    assert any("Add alerts" in m["text"] for m in bot.fake.dms(BOB))
    assert not bot.fake.dms(CAROL)
    clock.advance(timedelta(days=1))  # the next day: a new digest; Bob's item is no longer due tomorrow
    assert scheduler.digest()
    assert scheduler.remind_action_items() == 0
    clock.advance(timedelta(days=1))
    assert scheduler.remind_action_items() == 1 and any("Write runbook" in m["text"] for m in bot.fake.dms(CAROL))


# --- the claim itself, without Slack --------------------------------------------------------------------------


def declare_many(sessions: sessionmaker[Session], count: int, now: datetime) -> None:
    cadence = parse_cadence("sev2=30m")
    with sessions.begin() as session:
        for n in range(count):
            incident = store.declare(
                session=session, title=f"Claim {n}", severity=Severity.SEV2, declared_by=ALICE, now=now,
                cadence=cadence,
            )  # fmt: skip
            incident.channel_id, incident.declare_step = f"C{n:05d}", "confirmed"


def test_concurrent_claims_never_share_an_incident(sessions: sessionmaker[Session]) -> None:
    """Eight threads claim at the same moment (FOR UPDATE SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on
    SQLite): every due incident is claimed by exactly one of them."""
    declare_many(sessions, 60, START)
    now, cadence = START + timedelta(minutes=30), parse_cadence("sev2=30m")
    barrier, results, errors = threading.Barrier(8), [], []

    def claim() -> None:
        try:
            barrier.wait()
            for _ in range(3):
                with sessions.begin() as session:
                    results.extend(c.incident_id for c in core_reminders.claim_due(
                        session=session, now=now, cadence=cadence, limit=10))  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == sorted(set(results)) and len(results) == 60


def test_a_digest_that_cannot_be_posted_is_not_marked_as_sent(bot: Harness, clock: FrozenClock) -> None:
    bot.command("declare sev2 Public one")
    scheduler = bot.sitrep.scheduler
    bot.fake.fail_next("chat.postMessage", 500, times=3)
    assert not scheduler.digest()  # logged, the process goes on
    assert scheduler.digest()  # the day's claim went back, so the next run posts it
    assert not scheduler.digest()
    assert sum("Open incidents" in m["text"] for m in bot.fake.messages(bot.announce)) == 1


def test_an_owner_who_cannot_be_told_keeps_neither_the_others_nor_a_later_run_from_it(
    bot: Harness, clock: FrozenClock
) -> None:
    bot.command("declare sev2 Public one")
    channel = bot.incident("INC-1").channel_id or ""
    tomorrow = (clock.now() + timedelta(days=1)).date().isoformat()
    bot.command(f"action Add alerts <@{BOB}> P1 due:{tomorrow}", channel=channel)
    bot.command(f"action Fix pool <@{CAROL}> P1 due:{tomorrow}", channel=channel)
    scheduler = bot.sitrep.scheduler
    bot.fake.fail_next("chat.postMessage", 500, times=3)  # the first DM fails after the client's retries
    assert scheduler.remind_action_items() == 1
    assert len(bot.fake.dms(BOB)) + len(bot.fake.dms(CAROL)) == 1
    assert scheduler.remind_action_items() == 1  # the one that failed, again
    assert scheduler.remind_action_items() == 0
    assert len(bot.fake.dms(BOB)) == 1 and len(bot.fake.dms(CAROL)) == 1


def test_an_incident_without_its_channel_yet_is_not_claimed(sessions: sessionmaker[Session]) -> None:
    declare_many(sessions, 2, START)
    with sessions.begin() as session:
        incident = store.incident_by_key(session=session, key="INC-2")
        incident.channel_id = None
        session.add(incident)
    with sessions.begin() as session:
        claims = core_reminders.claim_due(
            session=session, now=START + timedelta(hours=1), cadence=parse_cadence("sev2=30m")
        )
    assert [claim.key for claim in claims] == ["INC-1"]


@pytest.mark.parametrize("value", ["{id}:100000", "{id}", "x:15", "{id}:-15"])
def test_a_snooze_value_that_is_not_one_of_the_buttons_is_refused(
    bot: Harness, clock: FrozenClock, channel: str, value: str
) -> None:
    response = bot.slack.block_action(
        "sitrep_snooze_15m", value.format(id=bot.incident("INC-1").id), user=ALICE, channel=channel
    )
    assert response.status == 200
    bot.idle()
    assert bot.incident("INC-1").next_update_due == START + timedelta(minutes=30)
    assert any("snooze" in reply for reply in bot.replies(ALICE))


def test_on_start_the_days_missed_cron_runs_are_caught_up_once(bot: Harness, clock: FrozenClock) -> None:
    """SITREP_DIGEST_TIME is 09:00 UTC here (the default); START is 09:00."""
    at(clock, minutes=-10)
    bot.command("declare sev2 Public one")
    channel = bot.incident("INC-1").channel_id or ""
    tomorrow = (START + timedelta(days=1)).date().isoformat()
    bot.command(f"action Add alerts <@{BOB}> P1 due:{tomorrow}", channel=channel)
    scheduler = bot.sitrep.scheduler

    def digests() -> int:
        return sum("Open incidents" in m["text"] for m in bot.fake.messages(bot.announce))

    scheduler.catch_up()  # before the digest time: the cron job will do it
    assert digests() == 0 and not bot.fake.dms(BOB)
    at(clock, hours=2, minutes=1)  # started too late for a morning digest, not for the owners
    scheduler.catch_up()
    assert digests() == 0 and len(bot.fake.dms(BOB)) == 1
    at(clock, days=1, minutes=30)  # the next day, half an hour late: the digest comes, once
    scheduler.catch_up()
    scheduler.catch_up()
    assert scheduler.digest() is False
    assert digests() == 1 and len(bot.fake.dms(BOB)) == 1


def test_the_scheduler_starts_stops_and_starts_again(bot: Harness) -> None:
    scheduler = bot.sitrep.scheduler
    for _ in range(2):
        scheduler.start()
        scheduler.start()  # a second start is a no-op
        scheduler.stop()
        scheduler.stop()
    scheduler.start()
    assert scheduler._posters.submit(lambda: 1).result() == 1  # the posting pool came back with it
    scheduler.stop()


def test_the_digest_lists_the_most_severe_first_and_says_which_updates_are_overdue(
    bot: Harness, clock: FrozenClock
) -> None:
    bot.command("declare sev3 Slow search")
    at(clock, minutes=5)
    bot.command("declare sev1 Payments down")
    at(clock, minutes=45)
    bot.command("update investigating looking at the payments gateway", channel=bot.incident("INC-2").channel_id)
    at(clock, minutes=50)
    bot.command("update identified a bad certificate", channel=bot.incident("INC-2").channel_id)
    at(clock, hours=1, minutes=55)
    bot.command("declare sev2 Fresh one")
    at(clock, hours=2)  # sev1's update (10 min after 09:50) is overdue; sev3's hour from 09:00 is too
    assert bot.sitrep.scheduler.tick() == 2  # reminded: their due times move on, but they stay overdue
    assert bot.sitrep.scheduler.digest()
    lines = bot.fake.messages(bot.announce)[-1]["text"].splitlines()
    assert "(3)" in lines[0] and len(lines) == 4
    assert lines[1].startswith("• *INC-2* SEV1") and "last update 1 h 10 min ago" in lines[1]
    assert lines[2].startswith("• *INC-3* SEV2") and "overdue" not in lines[2]
    assert lines[3].startswith("• *INC-1* SEV3") and "no status update yet" in lines[3]
    assert "overdue" in lines[1] and "overdue" in lines[3]


def test_a_reminder_post_that_outlives_the_client_timeout_is_not_posted_again(
    bot: Harness, clock: FrozenClock, channel: str
) -> None:
    """Issue 17 item 6: Slack posts the reminder but answers after the client gave up. The next tick finds the
    message by its metadata key instead of posting it a second time, and counts it once."""
    bot.sitrep.deps.client.timeout = 1  # the posting threads open their connections at the first tick, with this
    bot.fake.slow_next("chat.postMessage", 2.5)
    assert tick(bot, clock, minutes=30) == 0  # timed out: as far as the bot knows, not posted
    assert len(texts(bot, channel)) == 1  # but Slack has it
    assert tick(bot, clock, minutes=30, seconds=10) == 1  # found, not posted again
    assert tick(bot, clock, minutes=30, seconds=20) == 0
    assert len(texts(bot, channel)) == 1
    incident = bot.incident("INC-1")
    assert incident.missed_reminders == 1
    assert incident.next_update_due == START + timedelta(minutes=60, seconds=10)
