"""POST /hooks/alertmanager (SPEC §13.3) end to end: the real app over HTTP against the fake Slack.

Payloads here are built by hand in Alertmanager's shape; tests/test_alertmanager.py runs a real Alertmanager."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.settings import SettingsError, load_settings
from core import store
from core.clock import FrozenClock
from core.enums import EntryKind, Severity
from tests.fakeslack import FakeSlack
from tests.harness import ALICE, BOB, Harness, running_bot
from tests.hooks import API_TOKEN, WEBHOOK_TOKEN, HookClient, alert, notification

pytestmark = pytest.mark.e2e


@dataclass
class AlertBot:
    bot: Harness
    hooks: HookClient
    triage: str
    clock: FrozenClock

    def triage_messages(self) -> list[dict[str, Any]]:
        return self.bot.fake.messages(self.triage)

    def send(self, payload: dict[str, Any]) -> None:
        answer = self.hooks.alertmanager(payload)
        assert answer.status == 200, answer
        self.bot.idle()


def buttons(message: dict[str, Any]) -> list[str]:
    return [e["action_id"] for b in message.get("blocks", []) if b["type"] == "actions" for e in b["elements"]]


def text_of(message: dict[str, Any]) -> str:
    return "\n".join(b["text"]["text"] for b in message.get("blocks", []) if b["type"] == "section")


def alert_bot(database_url: str, **env: str) -> Iterator[AlertBot]:
    fake = FakeSlack().start()
    triage = fake.add_channel("alerts", [ALICE, BOB], bot_member=True)
    clock = FrozenClock(datetime(2026, 12, 4, 5, 0, tzinfo=UTC))
    settings = {"SITREP_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "SITREP_TRIAGE_CHANNEL": triage, **env}
    try:
        with running_bot(database_url, fake=fake, clock=clock, **settings) as bot:
            yield AlertBot(bot, HookClient(f"http://127.0.0.1:{bot.server.port}"), triage, clock)
    finally:
        fake.stop()


@pytest.fixture
def alerts(database_url: str) -> Iterator[AlertBot]:
    yield from alert_bot(database_url)


def test_a_firing_group_posts_one_triage_message_edited_as_it_changes(alerts: AlertBot) -> None:
    alerts.send(notification("DiskFull", [alert("DiskFull", summary="Disk 95% full on db-1")]))
    [message] = alerts.triage_messages()
    body = text_of(message)
    assert "*Firing*" in body and "*DiskFull*: Disk 95% full on db-1" in body
    assert "instance=db-1" in body and "severity=critical" in body and "since 2026-12-04 05:00 UTC" in body
    assert "<http://prometheus.example:9090/graph?g0.expr=up%7Binstance%3D%22db-1%22%7D|source>" in body
    assert "<http://alertmanager.example:9093|Alertmanager>" in body
    assert buttons(message) == ["sitrep_alert_declare", "sitrep_alert_dismiss"]

    two = [alert("DiskFull", summary="Disk 95% full on db-1"), alert("DiskFull", instance="db-2", summary="db-2")]
    alerts.send(notification("DiskFull", two))
    [edited] = alerts.triage_messages()
    assert edited["ts"] == message["ts"] and "edited" in edited and "2 of 2 alerts firing" in text_of(edited)

    resolved = [alert("DiskFull", status="resolved", instance=i) for i in ("db-1", "db-2")]
    alerts.send(notification("DiskFull", resolved))
    [done] = alerts.triage_messages()
    assert done["ts"] == message["ts"] and "*Resolved*" in text_of(done) and buttons(done) == []
    assert len(alerts.bot.fake.calls_to("chat.postMessage")) == 1


def test_notifications_arriving_together_post_the_group_once(alerts: AlertBot) -> None:
    def send(n: int) -> int:
        alerts_now = [alert("Latency", instance=f"web-{i}") for i in range(n + 1)]
        return alerts.hooks.alertmanager(notification("Latency", alerts_now)).status

    with ThreadPoolExecutor(10) as pool:
        statuses = list(pool.map(send, range(10)))
    alerts.bot.idle()
    assert statuses == [200] * 10
    [message] = alerts.triage_messages()
    assert "Latency" in text_of(message)
    posts = [c for c in alerts.bot.fake.calls_to("chat.postMessage") if c.args.get("channel") == alerts.triage]
    assert len(posts) == 1


def test_more_than_20_new_groups_a_minute_are_summed_up_in_one_message(alerts: AlertBot) -> None:
    for n in range(25):
        alerts.send(notification(f"Alert{n:02d}", [alert(f"Alert{n:02d}")]))
    messages = alerts.triage_messages()
    assert len(messages) == 21
    own = [m for m in messages if buttons(m)]
    assert len(own) == 20
    [summary] = [m for m in messages if not buttons(m)]
    assert "*5 more alert groups*" in text_of(summary)
    assert all(f"*Alert{n}*" in text_of(summary) for n in range(20, 25))
    # A summed-up group that changes edits the summary, never posts.
    alerts.send(notification("Alert24", [alert("Alert24", status="resolved")]))
    assert len(alerts.triage_messages()) == 21
    assert ":white_check_mark: *Alert24*" in text_of(alerts.bot.fake.messages(alerts.triage)[-1])
    # A minute later there is room again.
    alerts.clock.advance(timedelta(minutes=1, seconds=1))
    alerts.send(notification("Later", [alert("Later")]))
    assert buttons(alerts.triage_messages()[-1]) == ["sitrep_alert_declare", "sitrep_alert_dismiss"]


def test_declare_from_an_alert_links_the_group_to_the_incident(alerts: AlertBot) -> None:
    alerts.send(notification("CheckoutErrors", [alert("CheckoutErrors", summary="Checkout 5xx above 5%")]))
    [message] = alerts.triage_messages()
    alerts.bot.slack.block_action("sitrep_alert_declare", user=ALICE, channel=alerts.triage, message=message["ts"])
    alerts.bot.idle()
    view = alerts.bot.fake.last_view("sitrep_declare")
    assert view is not None
    title = next(b for b in view["blocks"] if b["block_id"] == "title")["element"]
    severity = next(b for b in view["blocks"] if b["block_id"] == "severity")["element"]
    assert title["initial_value"] == "Checkout 5xx above 5%"
    assert severity["initial_option"]["value"] == "sev2"  # critical -> sev2 by default
    answer = alerts.bot.slack.view_submission(
        view, {"title": {"title": "Checkout 5xx above 5%"}, "severity": {"severity": "sev2"}}, user=ALICE
    )
    assert answer.status == 200
    alerts.bot.idle()
    incident = alerts.bot.incident("INC-1")
    assert incident.severity == Severity.SEV2 and incident.title == "Checkout 5xx above 5%"
    [linked] = alerts.triage_messages()
    assert "Declared as *INC-1*" in text_of(linked) and buttons(linked) == []

    # The group's further alerts and its resolution are the incident's timeline now.
    two = [alert("CheckoutErrors", summary="Checkout 5xx above 5%"), alert("CheckoutErrors", instance="db-2")]
    alerts.send(notification("CheckoutErrors", two))
    alerts.send(notification("CheckoutErrors", [alert("CheckoutErrors", status="resolved", instance=i)
                                                for i in ("db-1", "db-2")]))  # fmt: skip
    with alerts.bot.sitrep.deps.read() as session:
        timeline = store.entries_of(session=session, incident=incident)
    entries = [(e.kind, e.text) for e in timeline if e.source == "alert"]
    assert entries == [
        (EntryKind.TRIGGER, "Alert firing: CheckoutErrors: Checkout 5xx above 5%"),
        (EntryKind.DETECTION, "Alert firing: CheckoutErrors"),
        (EntryKind.NOTE, "Alert group resolved: CheckoutErrors"),
    ]
    [still_one] = alerts.triage_messages()
    assert "*Resolved*" in text_of(still_one)


def test_dismiss_marks_the_message_and_takes_its_buttons(alerts: AlertBot) -> None:
    alerts.send(notification("Noisy", [alert("Noisy", severity="info")]))
    [message] = alerts.triage_messages()
    alerts.bot.slack.block_action("sitrep_alert_dismiss", user=BOB, channel=alerts.triage, message=message["ts"])
    alerts.bot.idle()
    [dismissed] = alerts.triage_messages()
    assert f"Dismissed by <@{BOB}>" in text_of(dismissed) and buttons(dismissed) == []


def test_tokens_and_bodies_are_checked_before_anything_is_stored(alerts: AlertBot) -> None:
    payload = notification("X", [alert("X")])
    assert alerts.hooks.alertmanager(payload, token="wrong-token-0123456789").status == 401
    assert alerts.hooks.alertmanager(payload, token=None).status == 401
    assert alerts.hooks.post("/hooks/alertmanager", payload, headers={"Authorization": WEBHOOK_TOKEN}).status == 401
    bad = alerts.hooks.alertmanager({**payload, "alerts": [{"labels": {"alertname": 3}}]})
    assert bad.status == 400 and bad.body["field"] == "alerts[0].labels"
    assert alerts.hooks.alertmanager({**payload, "groupKey": ""}).body["field"] == "groupKey"
    assert alerts.hooks.alertmanager(b"{not json").status == 400
    alerts.bot.idle()
    assert alerts.triage_messages() == []
    # The API is off: its token is unset.
    assert alerts.hooks.declare({"title": "x"}, token=API_TOKEN).status == 404


def test_the_endpoint_is_off_without_its_token(database_url: str) -> None:
    with running_bot(database_url) as bot:
        hooks = HookClient(f"http://127.0.0.1:{bot.server.port}")
        assert hooks.alertmanager(notification("X", [alert("X")])).status == 404


def test_tokens_appear_in_no_log_line(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wrong-token-secret-0123456789"
    with caplog.at_level(logging.DEBUG):
        for bot in alert_bot(database_url, SITREP_API_TOKEN=API_TOKEN):
            bot.send(notification("Y", [alert("Y")]))
            assert bot.hooks.alertmanager(notification("Y", [alert("Y")]), token=wrong).status == 401
            assert bot.hooks.declare({"title": "From CI"}).status == 201
            assert bot.hooks.declare({"title": "From CI"}, token=wrong).status == 401
            bot.bot.idle()
    lines = [record.getMessage() + " " + repr(vars(record)) for record in caplog.records]
    assert any("alertmanager" in line for line in lines) and any("api_incidents" in line for line in lines)
    for secret in (WEBHOOK_TOKEN, API_TOKEN, wrong):
        assert not [line for line in lines if secret in line]


def test_the_settings_of_alerts_name_the_variable_when_wrong() -> None:
    base = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SLACK_APP_TOKEN": ""}
    settings = load_settings(**base, SITREP_ALERT_SEVERITY="critical=sev1, page=2")
    assert settings.alert_severity == {"critical": Severity.SEV1, "page": Severity.SEV2}
    assert load_settings(**base).alert_severity["warning"] == Severity.SEV3
    with pytest.raises(SettingsError, match=r"^SITREP_TRIAGE_CHANNEL: required when SITREP_WEBHOOK_TOKEN"):
        load_settings(**base, SITREP_WEBHOOK_TOKEN=WEBHOOK_TOKEN)
    with pytest.raises(SettingsError, match=r"^SITREP_API_TOKEN: use a random token of at least 16"):
        load_settings(**base, SITREP_API_TOKEN="short")
    with pytest.raises(SettingsError, match=r"^SITREP_ALERT_SEVERITY: "):
        load_settings(**base, SITREP_ALERT_SEVERITY="critical")
    assert load_settings(**base, SITREP_API_TOKEN="").api_token is None


def test_a_message_that_slack_refused_is_brought_up_to_date_by_the_scheduler(alerts: AlertBot) -> None:
    alerts.bot.fake.fail_next("chat.postMessage", error="fatal_error")
    alerts.send(notification("Flaky", [alert("Flaky")]))
    assert alerts.triage_messages() == []
    assert alerts.bot.sitrep.scheduler.alert_messages() == 1
    alerts.bot.idle()
    [message] = alerts.triage_messages()
    assert "*Flaky*" in text_of(message)
    assert alerts.bot.sitrep.scheduler.alert_messages() == 0


def test_two_replicas_post_a_group_once_and_make_one_incident_per_key(database_url: str) -> None:
    """Two bots on one database (replicas behind a load balancer): the same group and the same Idempotency-Key
    arriving at both at once still make one triage message and one incident."""
    fake = FakeSlack().start()
    triage = fake.add_channel("alerts", [ALICE, BOB], bot_member=True)
    env = {"SITREP_WEBHOOK_TOKEN": WEBHOOK_TOKEN, "SITREP_TRIAGE_CHANNEL": triage, "SITREP_API_TOKEN": API_TOKEN}
    try:
        with running_bot(database_url, fake=fake, **env) as one, running_bot(database_url, fake=fake, **env) as two:
            clients = [HookClient(f"http://127.0.0.1:{bot.server.port}") for bot in (one, two)]

            def send(n: int) -> tuple[int, int]:
                client = clients[n % 2]
                grouped = client.alertmanager(notification("Shared", [alert("Shared", instance=f"h{n}")]))
                declared = client.declare({"title": "Shared outage"}, key="both-replicas")
                return grouped.status, declared.status

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(send, range(16)))
            one.idle()
            two.idle()
            assert {grouped for grouped, _ in answers} == {200}
            assert sorted(declared for _, declared in answers) == [200] * 15 + [201]
            assert len(fake.messages(triage)) == 1
            assert sorted(c.name for c in map(fake.channel, list(fake.channels)) if c.name.startswith("inc-")) == [
                one.incident("INC-1").channel_name
            ]
    finally:
        fake.stop()


def test_a_burst_of_notifications_edits_the_message_once_with_the_last_state(alerts: AlertBot) -> None:
    alerts.send(notification("Burst", [alert("Burst", instance="h0")]))
    for n in range(2, 6):  # within a second of the post: one edit at most a second, showing the last of them
        answer = alerts.hooks.alertmanager(notification("Burst", [alert("Burst", instance=f"h{i}") for i in range(n)]))
        assert answer.status == 200
    alerts.bot.idle()
    [message] = alerts.triage_messages()
    assert "5 of 5 alerts firing" in text_of(message)
    assert len(alerts.bot.fake.calls_to("chat.update")) == 1
