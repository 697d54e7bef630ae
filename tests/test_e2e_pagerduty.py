"""PagerDuty end to end (SPEC §13.1, §13.2): the real app over HTTP, the fake Slack, and a fake PagerDuty that
refuses what PagerDuty's published OpenAPI refuses. Time is frozen: the outbox worker runs when the test says."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from bot.observability import configure_logging
from core import outbox
from core.clock import FrozenClock
from tests.fakepagerduty import API_TOKEN, ROUTING_KEY, FakePagerDuty
from tests.fakeslack import FakeSlack
from tests.harness import ALICE, Harness, running_bot

pytestmark = pytest.mark.e2e
WEBHOOK_SECRET = "whsec-0123456789abcdef"


@pytest.fixture
def pagerduty() -> Iterator[FakePagerDuty]:
    fake = FakePagerDuty().start()
    yield fake
    fake.stop()


def pd_env(pagerduty: FakePagerDuty, **more: str) -> dict[str, str]:
    return {
        "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "PAGERDUTY_EVENTS_URL": pagerduty.events_url,
        "PAGERDUTY_API_TOKEN": API_TOKEN,
        "PAGERDUTY_API_URL": pagerduty.url,
        "PAGERDUTY_ESCALATION_POLICY": "PPOLICY1",
        "PAGERDUTY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        **more,
    }


@pytest.fixture
def bot(database_url: str, clock: FrozenClock, pagerduty: FakePagerDuty) -> Iterator[Harness]:
    with running_bot(database_url, clock=clock, **pd_env(pagerduty)) as harness:
        yield harness


def deliver_until_quiet(bot: Harness, clock: FrozenClock, *, steps: int = 20) -> None:
    """Run the outbox worker, a minute of virtual time apart, as its scheduler job would."""
    for _ in range(steps):
        bot.sitrep.outbox.deliver()
        clock.advance(minutes=1)


def texts(bot: Harness, channel: str) -> list[str]:
    return [message.get("text", "") for message in bot.fake.messages(channel)]


def test_a_sev1_declare_sends_one_accepted_trigger_even_after_two_500s(
    bot: Harness, clock: FrozenClock, pagerduty: FakePagerDuty
) -> None:
    pagerduty.fail_next(500, times=2)
    bot.command("declare sev1 Checkout <b>errors</b> & timeouts")
    incident = bot.incident("INC-1")
    deliver_until_quiet(bot, clock)
    [trigger] = pagerduty.events("trigger")
    assert len(pagerduty.events("trigger", accepted=False)) == 3 and not pagerduty.refused
    assert trigger == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "sitrep-INC-1",
        "client": "sitrep",
        "payload": {
            "summary": "INC-1 SEV1: Checkout <b>errors</b> & timeouts",
            "source": "sitrep",
            "severity": "critical",
            "custom_details": {"severity": "SEV1", "commander": ALICE, "channel": f"#{incident.channel_name}"},
        },
        "links": [{"href": f"{bot.sitrep.deps.team_url.rstrip('/')}/archives/{incident.channel_id}",
                   "text": f"Slack #{incident.channel_name}"}],
    }  # fmt: skip
    told = [t for t in texts(bot, incident.channel_id or "") if "PagerDuty accepted" in t]
    assert told == [":pager: PagerDuty accepted the page for *INC-1* (dedup key `sitrep-INC-1`)."]
    response = bot.command("status", channel=incident.channel_id)
    assert "*Links:* PagerDuty: triggered" in "\n".join(bot.answers(response))

    bot.command("resolve Bad deploy", channel=incident.channel_id)
    deliver_until_quiet(bot, clock, steps=3)
    assert pagerduty.events("resolve") == [
        {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "sitrep-INC-1"}
    ]
    assert len(pagerduty.events("trigger")) == 1 and not pagerduty.refused


def test_a_sev3_declare_sends_nothing(bot: Harness, clock: FrozenClock, pagerduty: FakePagerDuty) -> None:
    bot.command("declare sev3 A slow report")
    incident = bot.incident("INC-1")
    deliver_until_quiet(bot, clock, steps=2)
    assert pagerduty.events(accepted=False) == []
    with bot.sitrep.deps.tx() as session:
        assert outbox.rows_of(session=session, incident_id=incident.id or 0) == []
    bot.command("resolve Nothing paged", channel=incident.channel_id)
    deliver_until_quiet(bot, clock, steps=2)
    assert pagerduty.events(accepted=False) == []


def test_page_severity_raise_and_reopen_each_trigger_once(
    bot: Harness, clock: FrozenClock, pagerduty: FakePagerDuty
) -> None:
    bot.command("declare sev3 A slow report")
    channel = bot.incident("INC-1").channel_id
    bot.command("page", channel=channel)
    deliver_until_quiet(bot, clock, steps=2)
    assert [e["payload"]["severity"] for e in pagerduty.events("trigger")] == ["warning"]
    bot.command("severity sev2 Spreading", channel=channel)  # into a paged severity: pages
    bot.command("severity sev1 Worse", channel=channel)  # within the paged ones: no second page
    deliver_until_quiet(bot, clock, steps=2)
    assert [e["payload"]["summary"] for e in pagerduty.events("trigger")] == [
        "INC-1 SEV3: A slow report", "INC-1 SEV2: A slow report"]  # fmt: skip
    bot.command("resolve Fixed", channel=channel)
    bot.command("reopen", channel=channel)
    deliver_until_quiet(bot, clock, steps=2)
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger", "trigger", "resolve", "trigger"]
    assert {e["dedup_key"] for e in pagerduty.events()} == {"sitrep-INC-1"} and not pagerduty.refused


def test_page_without_a_routing_key_says_how_to_turn_it_on(database_url: str, clock: FrozenClock) -> None:
    with running_bot(database_url, clock=clock) as bot:
        bot.command("declare sev1 Checkout errors")
        channel = bot.incident("INC-1").channel_id
        response = bot.command("page", channel=channel)
        assert any("PAGERDUTY_ROUTING_KEY" in text for text in bot.answers(response))


def test_a_429_is_retried_after_its_retry_after(bot: Harness, clock: FrozenClock, pagerduty: FakePagerDuty) -> None:
    pagerduty.fail_next(429, **{"Retry-After": "120"})
    bot.command("declare sev2 Checkout errors")
    bot.sitrep.outbox.deliver()
    assert len(pagerduty.events(accepted=False)) == 1
    clock.advance(seconds=119)
    bot.sitrep.outbox.deliver()
    assert len(pagerduty.events(accepted=False)) == 1  # not before PagerDuty said
    clock.advance(seconds=1)
    bot.sitrep.outbox.deliver()
    assert len(pagerduty.events("trigger")) == 1 and len(pagerduty.events(accepted=False)) == 2


def test_pagerduty_down_at_declare_then_a_restart_then_back_sends_one_trigger(
    database_url: str, clock: FrozenClock, pagerduty: FakePagerDuty
) -> None:
    pagerduty.down = True
    fake_slack = FakeSlack().start()
    with running_bot(database_url, clock=clock, fake=fake_slack, **pd_env(pagerduty)) as first:
        first.command("declare sev1 Checkout errors")
        deliver_until_quiet(first, clock, steps=3)
        [claimed] = _claim_and_crash(first, clock)  # and the process dies holding a lease
    assert claimed.attempts == 4 and pagerduty.events("trigger") == []
    pagerduty.down = False
    with running_bot(database_url, clock=clock, fake=fake_slack, **pd_env(pagerduty)) as second:
        tried = len(pagerduty.events(accepted=False))
        second.sitrep.outbox.deliver()  # the dead process's lease still holds the row
        assert len(pagerduty.events(accepted=False)) == tried
        clock.advance(outbox.LEASE)
        deliver_until_quiet(second, clock, steps=3)
        assert len(pagerduty.events("trigger")) == 1
        channel = second.incident("INC-1").channel_id or ""
        assert sum("PagerDuty accepted" in t for t in texts(second, channel)) == 1
    fake_slack.stop()


def _claim_and_crash(bot: Harness, clock: FrozenClock) -> list[outbox.Delivery]:
    clock.advance(hours=1)
    with bot.sitrep.deps.tx() as session:
        return outbox.claim(session=session, now=clock.now())


@pytest.mark.postgres
def test_two_replicas_on_postgresql_deliver_each_trigger_once(
    pg_database_url: str, clock: FrozenClock, pagerduty: FakePagerDuty
) -> None:
    url = _empty_schema(pg_database_url)
    with ExitStack() as stack:
        one = stack.enter_context(running_bot(url, clock=clock, **pd_env(pagerduty)))
        two = stack.enter_context(running_bot(url, clock=clock, fake=one.fake, **pd_env(pagerduty)))
        for n in range(8):
            one.command(f"declare sev1 Outage number {n}")
        start = threading.Barrier(2)

        def run(bot: Harness) -> None:
            start.wait()
            for _ in range(5):
                bot.sitrep.outbox.deliver()

        threads = [threading.Thread(target=run, args=(bot,)) for bot in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        keys = [e["dedup_key"] for e in pagerduty.events("trigger", accepted=False)]
        assert sorted(keys) == sorted(f"sitrep-INC-{n}" for n in range(1, 9))  # each sent once, by one of them


def _empty_schema(url: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return url


def test_a_delivery_that_finally_fails_is_told_once_in_the_channel(
    database_url: str, clock: FrozenClock, pagerduty: FakePagerDuty
) -> None:
    pagerduty.down = True
    with running_bot(database_url, clock=clock, **pd_env(pagerduty, SITREP_OUTBOX_GIVE_UP="1h")) as bot:
        bot.command("declare sev1 Checkout errors")
        channel = bot.incident("INC-1").channel_id or ""
        deliver_until_quiet(bot, clock, steps=90)
        failed = [t for t in texts(bot, channel) if "could not" in t]
        assert failed == [
            ":warning: sitrep could not trigger *PagerDuty* for INC-1 and has stopped trying: PagerDuty answered 503."
        ]
        metrics = bot.sitrep.deps.metrics.exposition().decode()
        assert "sitrep_outbox_pending 0.0" in metrics
        assert 'sitrep_outbox_failures_total{integration="pagerduty"}' in metrics
        response = bot.command("status", channel=channel)
        assert "PagerDuty: trigger failed: PagerDuty answered 503" in "\n".join(bot.answers(response))


def test_a_refused_event_gives_up_at_once(database_url: str, clock: FrozenClock, pagerduty: FakePagerDuty) -> None:
    env = pd_env(pagerduty, PAGERDUTY_ROUTING_KEY="not-the-right-key-000")
    with running_bot(database_url, clock=clock, **env) as bot:
        bot.command("declare sev1 Checkout errors")
        deliver_until_quiet(bot, clock, steps=3)
        assert len(pagerduty.events(accepted=False)) == 1
        channel = bot.incident("INC-1").channel_id or ""
        assert sum("could not trigger" in t for t in texts(bot, channel)) == 1


# --- on call ---------------------------------------------------------------------------------------


def test_oncall_lists_people_and_declare_invites_level_one(
    bot: Harness, clock: FrozenClock, pagerduty: FakePagerDuty
) -> None:
    bot.fake.add_user("U0OSCAR", "oscar", real_name="Oscar", email="oscar@example.com")
    bot.fake.add_user("U0PAT", "pat", real_name="Pat", email="pat@example.com")
    pagerduty.add_oncall("PU1", "Oscar O", "oscar@example.com", 1)
    pagerduty.add_oncall("PU2", "Pat P", "pat@example.com", 2)
    pagerduty.add_oncall("PU3", "Nobody N", "nobody@example.com", 1)
    pagerduty.add_oncall("PU4", "Other", "other@example.com", 1, policy="POTHER")
    bot.command("declare sev1 Checkout errors")
    incident = bot.incident("INC-1")
    members = bot.fake.channel(incident.channel_id or "").members
    assert "U0OSCAR" in members and "U0PAT" not in members
    assert not pagerduty.refused
    response = bot.command("oncall", channel=incident.channel_id)
    answer = "\n".join(bot.answers(response))
    assert "Level 1: Oscar O (<@U0OSCAR>)" in answer and "Level 2: Pat P (<@U0PAT>)" in answer
    assert "Nobody N (nobody@example.com, not found in Slack)" in answer and "Other" not in answer
    [reply] = [e for e in bot.fake.ephemerals(user=ALICE) if "On call now" in e.get("text", "")]
    buttons = [el for block in reply["blocks"] if block["type"] == "actions" for el in block["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Invite Oscar O", "Invite Pat P"]
    invite = buttons[1]
    bot.slack.block_action(invite["action_id"], invite["value"], user=ALICE, channel=incident.channel_id)
    bot.idle()
    assert "U0PAT" in bot.fake.channel(incident.channel_id or "").members


# --- webhooks --------------------------------------------------------------------------------------


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook(bot: Harness, body: bytes, signature: str | None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-PagerDuty-Signature"] = signature
    request = urllib.request.Request(f"http://127.0.0.1:{bot.server.port}/hooks/pagerduty", data=body,
                                     headers=headers, method="POST")  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def event(event_id: str, event_type: str, data: dict[str, Any], agent: str = "Oscar O") -> bytes:
    return json.dumps({"event": {
        "id": event_id, "event_type": event_type, "resource_type": "incident", "occurred_at": "2026-01-15T14:05:00Z",
        "agent": {"id": "PU1", "type": "user_reference", "summary": agent}, "client": None, "data": data,
    }}).encode()  # fmt: skip


def pd_incident(key: str, *, number: int = 42, title: str = "Checkout errors") -> dict[str, Any]:
    return {"id": "PINC1", "type": "incident", "number": number, "title": title, "status": "acknowledged",
            "incident_key": key, "html_url": "https://x.pagerduty.com/incidents/PINC1", "urgency": "high",
            "service": {"id": "PSVC", "type": "service_reference", "summary": "Payments API"}}  # fmt: skip


def _pd_entries(bot: Harness) -> list[tuple[str, str, str]]:
    from core import store

    with bot.sitrep.deps.tx() as session:
        incident = store.incident_by_key(session=session, key="INC-1")
        return [(e.kind.value, e.text, e.actor) for e in store.entries_of(session=session, incident=incident)
                if e.source == "pagerduty"]  # fmt: skip


def test_webhook_signatures_are_checked_before_anything_happens(bot: Harness) -> None:
    bot.command("declare sev1 Checkout errors")
    body = event("EV1", "incident.acknowledged", pd_incident("sitrep-INC-1"))
    assert webhook(bot, body, None)[0] == 401
    assert webhook(bot, body, sign(body, "wrong-secret"))[0] == 401
    assert webhook(bot, body, sign(body + b" "))[0] == 401
    assert webhook(bot, body, "v1=zz,v0=" + sign(body)[3:])[0] == 401  # only v1 signatures count
    assert _pd_entries(bot) == []
    rotated = f"{sign(body, 'the-old-secret')}, {sign(body)}"
    assert webhook(bot, body, rotated) == (202, "timeline\n")
    assert webhook(bot, body, sign(body)) == (202, "duplicate\n")  # the same event again: one entry
    assert _pd_entries(bot) == [("escalation", "PagerDuty: page acknowledged by Oscar O", "Oscar O")]


def test_webhook_events_become_timeline_entries_or_triage(
    database_url: str, clock: FrozenClock, pagerduty: FakePagerDuty
) -> None:
    slack = FakeSlack().start()
    triage = slack.add_channel("triage", [ALICE], bot_member=True)
    env = pd_env(pagerduty, SITREP_TRIAGE_CHANNEL=triage)
    with running_bot(database_url, clock=clock, fake=slack, **env) as bot:
        bot.command("declare sev1 Checkout errors")
        pagerduty.incidents["PINC1"] = pd_incident("sitrep-INC-1")
        note = {"id": "PNOTE", "type": "incident_note", "content": "Rolled back <!channel>", "trimmed": False,
                "incident": {"id": "PINC1", "type": "incident_reference", "html_url": "https://x.pagerduty.com/i"}}
        for body in (event("EV2", "incident.annotated", note, agent="Pat P"),
                     event("EV3", "incident.resolved", pd_incident("sitrep-INC-1")),
                     event("EV4", "incident.acknowledged", pd_incident("another-system-key")),
                     event("EV5", "incident.triggered", pd_incident("sitrep-INC-1")),
                     event("EV6", "incident.triggered", pd_incident("db-disk-full", number=7, title="Disk <full>")),
                     event("EV6", "incident.triggered", pd_incident("db-disk-full", number=7, title="Disk <full>"))):
            assert webhook(bot, body, sign(body))[0] == 202  # fmt: skip
        assert _pd_entries(bot) == [
            ("note", "PagerDuty note by Pat P: Rolled back <!channel>", "Pat P"),
            ("note", "PagerDuty: alert resolved by Oscar O", "Oscar O"),
        ]
        posted = texts(bot, triage)
        assert len(posted) == 1 and "PagerDuty #7 triggered:* Disk &lt;full&gt;" in posted[0]
        slack.fail_next("chat.postMessage", error="internal_error")  # not posted: 5xx, and the retry posts
        body = event("EV7", "incident.triggered", pd_incident("other-key", number=8, title="Queue stuck"))
        assert webhook(bot, body, sign(body))[0] == 500
        assert webhook(bot, body, sign(body))[0] == 202
        assert sum("Queue stuck" in t for t in texts(bot, triage)) == 1
        assert "Payments API" in posted[0]
        assert "<https://x.pagerduty.com/incidents/PINC1|open in PagerDuty>" in posted[0]
        assert webhook(bot, b"{not json", sign(b"{not json"))[0] == 202  # signed but not understood: no retry
    slack.stop()


def test_webhooks_are_off_without_a_secret(database_url: str, clock: FrozenClock) -> None:
    with running_bot(database_url, clock=clock) as bot:
        body = event("EV1", "incident.acknowledged", pd_incident("sitrep-INC-1"))
        assert webhook(bot, body, sign(body))[0] == 404


# --- secrets ---------------------------------------------------------------------------------------


def test_no_secret_reaches_a_log_line(
    database_url: str, clock: FrozenClock, pagerduty: FakePagerDuty, caplog: pytest.LogCaptureFixture
) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        with running_bot(database_url, clock=clock, **pd_env(pagerduty, SITREP_OUTBOX_GIVE_UP="1h")) as bot:
            configure_logging(secrets=bot.settings.secret_values(), stream=stream, level=logging.DEBUG)
            root.addHandler(caplog.handler)  # unscrubbed: what sitrep itself writes
            pagerduty.fail_next(500)
            pagerduty.fail_next(429, **{"Retry-After": "5"})
            bot.command("declare sev1 Checkout errors")
            bot.command("oncall", channel=bot.incident("INC-1").channel_id)
            deliver_until_quiet(bot, clock, steps=3)
            pagerduty.down = True
            bot.command("declare sev2 Another one")
            deliver_until_quiet(bot, clock, steps=70)
            body = event("EV1", "incident.acknowledged", pd_incident("sitrep-INC-1"))
            webhook(bot, body, sign(body))
            webhook(bot, body, "v1=" + WEBHOOK_SECRET)
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    written = stream.getvalue() + "\n".join(r.getMessage() + str(vars(r)) for r in caplog.records)
    assert "outbox row given up" in written and "outbox row failed" in written  # the logs were written
    for secret in (ROUTING_KEY, API_TOKEN, WEBHOOK_SECRET):
        assert secret not in written


def test_settings_name_the_pagerduty_variables() -> None:
    from bot.settings import SettingsError, load_settings

    base = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}
    settings = load_settings(**base)
    assert settings.pagerduty_routing_key is None and settings.page_severities == {"sev1", "sev2"}
    assert settings.outbox_give_up.total_seconds() == 24 * 3600
    assert load_settings(**base, SITREP_PAGE_SEVERITIES="sev1").page_severities == {"sev1"}
    with pytest.raises(SettingsError, match="SITREP_PAGE_SEVERITIES"):
        load_settings(**base, SITREP_PAGE_SEVERITIES="sev9")
    with pytest.raises(SettingsError, match="SITREP_OUTBOX_GIVE_UP"):
        load_settings(**base, SITREP_OUTBOX_GIVE_UP="soon")
    with pytest.raises(SettingsError, match="PAGERDUTY_ESCALATION_POLICY"):
        load_settings(**base, PAGERDUTY_ESCALATION_POLICY="my policy")
    assert ROUTING_KEY in load_settings(**base, PAGERDUTY_ROUTING_KEY=ROUTING_KEY).secret_values()
