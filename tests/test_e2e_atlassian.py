"""Issue 15 end to end: Jira and Statuspage through the outbox, the real bot over HTTP against the fake Slack, a
fake Jira and a fake Statuspage that check every request's shape and credentials. The outbox worker is run by the
test (`deliver`), as the scheduler would every 2 seconds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from core import jira as core_jira
from core import outbox, store
from core import statuspage as core_statuspage
from core.models import ActionItem, OutboxRow
from tests.fakejira import EMAIL, PAT, PROJECT, TOKEN, FakeJira
from tests.fakeslack import FakeSlack
from tests.fakestatuspage import API_KEY, PAGE_ID, FakeStatuspage
from tests.harness import ALICE, BOB, CAROL, DAVE, Harness, running_bot

pytestmark = pytest.mark.e2e


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    fake = FakeJira().start()
    yield fake
    fake.stop()


@pytest.fixture
def status_page() -> Iterator[FakeStatuspage]:
    fake = FakeStatuspage().start()
    yield fake
    fake.stop()


def slack_with_emails() -> FakeSlack:
    fake = FakeSlack().start()
    for user, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"), (DAVE, "dave")):
        fake.add_user(user, name, real_name=name.title(), email=f"{name}@example.com")
    return fake


def env(jira: FakeJira | None, status_page: FakeStatuspage | None, **more: str) -> dict[str, str]:
    found: dict[str, str] = {}
    if jira is not None:
        found |= {"JIRA_URL": jira.url, "JIRA_PROJECT": PROJECT}
        found |= {"JIRA_EMAIL": EMAIL, "JIRA_API_TOKEN": TOKEN} if jira.cloud else {"JIRA_PAT": PAT}
    if status_page is not None:
        found |= {"STATUSPAGE_API_KEY": API_KEY, "STATUSPAGE_PAGE_ID": PAGE_ID,
                  "STATUSPAGE_API_URL": f"{status_page.url}/v1"}  # fmt: skip
    return found | more


@pytest.fixture
def bot(database_url: str, jira: FakeJira, status_page: FakeStatuspage) -> Iterator[Harness]:
    fake = slack_with_emails()
    try:
        with running_bot(database_url, fake=fake, **env(jira, status_page)) as harness:
            yield harness
    finally:
        fake.stop()


def deliver(bot: Harness) -> int:
    return bot.sitrep.outbox.deliver()


def declare(bot: Harness, text: str = "declare sev2 Checkout errors") -> str:
    bot.command(text)
    channel = [c for c in bot.fake.channels.values() if c.name.startswith("inc-")][-1].id
    for user in (BOB, CAROL):
        bot.fake.join_as_user(channel, user)
    return channel


def make_public(bot: Harness, channel: str, **values: object) -> None:
    """`/incident statuspage`, then the form submitted (a title, a message and a status unless given)."""
    bot.command("statuspage", channel=channel)
    view = bot.fake.last_view("sitrep_statuspage")
    assert view is not None
    state = {"name": "Checkout errors", "body": "Looking", "status": "investigating"} | values
    response = bot.slack.view_submission(view, {block: {block: value} for block, value in state.items()}, user=ALICE)
    assert response.status == 200
    bot.idle()


def channel_texts(bot: Harness, channel: str) -> list[str]:
    return [m.get("text", "") for m in bot.fake.messages(channel)]


def test_jira_follows_the_incident_from_declare_to_resolve_and_its_action_items(
    bot: Harness, jira: FakeJira
) -> None:
    alice = jira.add_user("alice@example.com", "alice")
    channel = declare(bot)
    assert deliver(bot) == 1
    issue = jira.issue("OPS-1")["fields"]
    assert issue["summary"] == "INC-1 SEV2: Checkout errors"
    assert issue["labels"] == ["incident", "sev2", "sitrep-INC-1"] and issue["priority"] == {"name": "High"}
    assert issue["project"] == {"key": PROJECT} and issue["issuetype"] == {"name": "Task"}
    assert f"/archives/{channel}" in jira.text_of(issue["description"])  # the channel link, in ADF
    bookmarks = bot.fake.channel(channel).bookmarks
    assert [(b["title"], b["link"]) for b in bookmarks] == [("Jira OPS-1", f"{jira.url}/browse/OPS-1")]
    assert any("Jira issue" in t and "OPS-1" in t for t in channel_texts(bot, channel))

    bot.command(f"action Add pool saturation alerts <@{ALICE}> P1 due:2026-12-20", channel=channel)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    bot.command(f"action Load test the new ORM <@{BOB}> due:{tomorrow}", channel=channel)
    assert deliver(bot) == 2
    item = jira.issue("OPS-2")["fields"]
    assert item["summary"] == "Add pool saturation alerts" and item["assignee"] == {"accountId": alice}
    assert item["priority"] == {"name": "Highest"} and item["duedate"] == "2026-12-20"
    assert "assignee" not in jira.issue("OPS-3")["fields"]  # bob has no Jira account: unassigned
    assert jira.links == {("Relates", "OPS-2", "OPS-1"), ("Relates", "OPS-3", "OPS-1")}

    bot.command("severity sev1 EU too", channel=channel)
    deliver(bot)
    assert jira.issue("OPS-1")["fields"]["labels"] == ["incident", "sitrep-INC-1", "sev1"]
    status = bot.answers(bot.command("status", channel=channel))
    assert any("Jira: OPS-1" in text for text in status), status

    bot.command("resolve The ORM upgrade opened 3x more connections per request", channel=channel)
    deliver(bot)
    comment = jira.text_of(jira.comments["OPS-1"][0]["body"])
    assert "Root cause: The ORM upgrade opened 3x more connections per request" in comment
    assert "Summary:" in comment and "INC-1" in comment
    assert jira.issue("OPS-1")["fields"]["status"]["name"] == "Done"

    jira.set_status("OPS-2", "Done")  # someone closes the follow-up in Jira
    jira.set_status("OPS-3", "In Progress")
    assert bot.sitrep.scheduler.sync_jira() == ["OPS-2"]
    with bot.sitrep.deps.read() as session:
        items = {i.jira_key: i for i in session.exec(select(ActionItem))}
    assert items["OPS-2"].status == "done" and items["OPS-2"].jira_status == "Done"
    assert items["OPS-3"].status == "open" and items["OPS-3"].jira_status == "In Progress"
    assert [r.path for r in jira.calls("POST", "/search")] == ["/rest/api/3/search/jql"]  # one search
    # the PIR, the App Home and the due-date reminder show each item's Jira key and state
    bot.command("pir", channel=channel)
    pir = [f for f in bot.fake.files.values() if str(f.get("name", f.get("filename", ""))).endswith("-pir.md")][-1]
    content = pir["content"].decode() if isinstance(pir["content"], bytes) else str(pir["content"])
    assert "| done, Jira OPS-2 (Done) |" in content and "| open, Jira OPS-3 (In Progress) |" in content
    assert bot.slack.event({"type": "app_home_opened", "user": BOB, "channel": "D0HOME", "tab": "home"}).status == 200
    bot.idle()
    assert "Jira OPS-3 (In Progress)" in json.dumps(bot.fake.home_views[BOB])
    assert bot.sitrep.scheduler.remind_action_items() == 1
    assert any("Load test the new ORM · Jira OPS-3 (In Progress)" in m["text"] for m in bot.fake.dms(BOB))
    assert jira.refused == [] and jira.calls() and all(r.status != 401 for r in jira.requests)


def test_jira_is_opened_by_hand_below_the_filed_severities_and_takes_the_items_so_far(
    bot: Harness, jira: FakeJira
) -> None:
    channel = declare(bot, "declare sev3 Slow search")
    bot.command("action Tune the index", channel=channel)
    assert deliver(bot) == 0 and jira.issues == {}
    answers = bot.answers(bot.command("jira", channel=channel))
    assert any("Opening a Jira issue" in a for a in answers)
    assert deliver(bot) == 2
    assert jira.issue("OPS-1")["fields"]["labels"][:2] == ["incident", "sev3"]
    assert jira.links == {("Relates", "OPS-2", "OPS-1")}
    again = bot.answers(bot.command("jira", channel=channel), user=ALICE)
    assert any("has a Jira issue already (OPS-1)" in a for a in again)
    assert len(jira.issues) == 2


def test_jira_down_or_limiting_loses_nothing_and_makes_nothing_twice(bot: Harness, jira: FakeJira) -> None:
    declare(bot)
    jira.fail_next(500)
    assert deliver(bot) == 0
    with bot.sitrep.deps.read() as session:
        row = outbox.rows_of(session=session, incident_id=1, integration="jira")[0]
    assert row.state == "pending" and row.attempts == 1 and "500" in (row.last_error or "")
    assert row.next_attempt_at > datetime.now(UTC)  # backed off
    # back: the retry is due later; deliver as if that time had come
    later = row.next_attempt_at
    jira.fail_next(429, Retry_After="7")
    assert bot.sitrep.outbox.deliver(later) == 0
    with bot.sitrep.deps.read() as session:
        row = outbox.rows_of(session=session, incident_id=1, integration="jira")[0]
    assert (row.next_attempt_at - later).total_seconds() == pytest.approx(7, abs=0.01)  # Retry-After honoured
    assert bot.sitrep.outbox.deliver(row.next_attempt_at) == 1
    assert list(jira.issues) == ["OPS-1"]


def test_statuspage_publishes_by_hand_phase_by_phase_and_resolves(
    bot: Harness, status_page: FakeStatuspage
) -> None:
    channel = declare(bot)
    make_public(bot, channel, name="Checkout errors for some customers", body="We are looking into failed payments.",
                impact_partial_outage=["cmp0pay0003"], impact_degraded_performance=["cmp0api0001"])
    assert deliver(bot) == 2  # the public incident, and the Jira issue of a SEV2
    (public,) = status_page.incidents.values()
    assert public["name"] == "Checkout errors for some customers" and public["status"] == "investigating"
    assert status_page.components["cmp0pay0003"]["status"] == "partial_outage"
    assert status_page.components["cmp0api0001"]["status"] == "degraded_performance"
    assert any(public["shortlink"] in t for t in channel_texts(bot, channel))  # the channel shows the link

    bot.command("update identified Connection pool exhausted", channel=channel)  # not public: stays inside
    bot.command("update monitoring --public A fix is deployed; we are watching", channel=channel)
    deliver(bot)
    assert [(u["status"], u["body"]) for u in public["incident_updates"]] == [
        ("investigating", "We are looking into failed payments."),
        ("monitoring", "A fix is deployed; we are watching"),
    ]
    update = bot.fake.last_view("sitrep_update")
    assert update is None  # the text command opened no form
    bot.command("update", channel=channel)
    update = bot.fake.last_view("sitrep_update")
    assert update is not None and "publish" in json.dumps(update["blocks"])
    bot.slack.view_submission(update, {"phase": {"phase": "monitoring"}, "text": {"text": "Error rate normal"},
                                       "publish": {"publish": ["publish"]}}, user=ALICE)  # fmt: skip
    bot.idle()
    deliver(bot)
    assert public["incident_updates"][-1]["body"] == "Error rate normal"

    bot.command("resolve Pool size raised", channel=channel)
    deliver(bot)
    assert public["status"] == "resolved"
    assert {c["status"] for c in status_page.components.values()} == {"operational"}
    assert status_page.refused == [] and status_page.too_fast == []
    status = bot.answers(bot.command("status", channel=channel))
    assert any("Statuspage: resolved" in s for s in status), status


def test_a_private_incident_publishes_nothing_and_files_nothing_by_itself(
    bot: Harness, jira: FakeJira, status_page: FakeStatuspage
) -> None:
    channel = declare(bot, "declare sev1 --private Leaked credentials")
    bot.command("update identified Key rotated", channel=channel)
    answers = bot.answers(bot.command("update monitoring --public Watching", channel=channel))
    assert any("no public incident yet" in a for a in answers), answers
    bot.command("resolve Key rotated", channel=channel)
    deliver(bot)
    assert status_page.requests == [] and jira.requests == []
    with bot.sitrep.deps.read() as session:
        assert outbox.rows_of(session=session, incident_id=1) == []


def test_jira_server_with_a_personal_access_token(database_url: str, status_page: FakeStatuspage) -> None:
    jira = FakeJira(cloud=False).start()
    jira.add_user("alice@example.com", "alice")
    fake = slack_with_emails()
    try:
        with running_bot(database_url, fake=fake, **env(jira, None)) as bot:
            channel = declare(bot, "declare sev1 Everything down")
            bot.command(f"action Write the runbook <@{ALICE}> P2", channel=channel)
            deliver(bot)
            bot.command("resolve Bad deploy", channel=channel)
            deliver(bot)
            assert jira.issue("OPS-1")["fields"]["description"].endswith(f"/archives/{channel}")  # plain text
            assert jira.issue("OPS-2")["fields"]["assignee"] == {"name": "alice"}
            assert "Root cause: Bad deploy" in jira.comments["OPS-1"][0]["body"]
            assert jira.issue("OPS-1")["fields"]["status"]["name"] == "Done"
            jira.set_status("OPS-2", "Done")
            assert bot.sitrep.scheduler.sync_jira() == ["OPS-2"]
            assert jira.refused == [] and {r.path.split("/")[3] for r in jira.requests} == {"2"}
    finally:
        fake.stop()
        jira.stop()


def test_a_restart_in_the_middle_loses_nothing_and_makes_nothing_twice(
    database_url: str, jira: FakeJira, status_page: FakeStatuspage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after Jira and Statuspage made things but before the outbox recorded it: the next process
    finds them (tracking label, metadata) instead of making them again, and sends what was still waiting."""
    fake = slack_with_emails()
    try:
        with running_bot(database_url, fake=fake, **env(jira, status_page)) as bot:
            channel = declare(bot)
            bot.command("action Add alerts", channel=channel)
            make_public(bot, channel)
            crash_after_send(bot, monkeypatch)
            bot.command("update monitoring --public Fixed", channel=channel)
        assert len(jira.issues) == 1 and len(status_page.incidents) == 1  # made, but not recorded
        assert bot.fake.channel(channel).bookmarks == []
        with running_bot(database_url, fake=fake, **env(jira, status_page)) as bot:
            with bot.sitrep.deps.tx() as session:  # the leases of the dead process run out
                session.execute(OutboxRow.__table__.update().values(lease_until=None))  # type: ignore[attr-defined]
            for _ in range(6):
                deliver(bot)
            with bot.sitrep.deps.read() as session:
                rows = outbox.rows_of(session=session, incident_id=1)
                incident = store.incident_by_key(session=session, key="INC-1")
            assert {r.state for r in rows} == {"delivered"} and incident.jira_key == "OPS-1"
            assert [b["title"] for b in bot.fake.channel(channel).bookmarks] == ["Jira OPS-1"]
            notices = [t for t in channel_texts(bot, channel) if "Jira issue" in t or "is public" in t]
            assert len(notices) == 2, notices
        assert sorted(jira.issues) == ["OPS-1", "OPS-2"] and jira.links == {("Relates", "OPS-2", "OPS-1")}
        (public,) = status_page.incidents.values()
        assert [u["body"] for u in public["incident_updates"]] == ["Looking", "Fixed"]
        # The new process cannot know when the dead one last called Statuspage: its first call may come too soon,
        # and is then answered 429 with Retry-After, which the outbox honours (one such call at most).
        assert len(status_page.too_fast) <= 1 and jira.refused == [] and status_page.refused == []
    finally:
        fake.stop()


class Crash(BaseException):
    """The process dying (not an error any code handles)."""


def crash_after_send(bot: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claim the due rows and send them, the process dying right after each remote answered: before the sender
    records the new issue or public incident, and before the outbox records the delivery."""

    def die(**_: object) -> None:
        raise Crash

    worker = bot.sitrep.outbox
    now = bot.sitrep.deps.now()
    with monkeypatch.context() as patch:
        for name in ("record_issue", "record_item_issue"):
            patch.setattr(core_jira, name, die)
        patch.setattr(core_statuspage, "record_public", die)
        with bot.sitrep.deps.tx() as session:
            claimed = outbox.claim(session=session, now=now, limit=50, exclude=("statuspage",))
            claimed += outbox.claim(session=session, now=now, limit=1, only=("statuspage",))
        for delivery in claimed:
            with pytest.raises(Crash):
                worker.senders[delivery.integration].send(delivery, now)


def test_a_burst_of_public_updates_keeps_to_one_request_a_second(
    database_url: str, status_page: FakeStatuspage
) -> None:
    """Six updates published at once go out in order, one a second, none refused, in one run of the worker."""
    fake = slack_with_emails()
    try:
        with running_bot(database_url, fake=fake, **env(None, status_page)) as bot:
            channel = declare(bot)
            make_public(bot, channel)
            for number in range(1, 6):
                bot.command(f"update identified --public Step {number}", channel=channel)
            assert deliver(bot) == 6
        (public,) = status_page.incidents.values()
        assert [u["body"] for u in public["incident_updates"]] == ["Looking"] + [f"Step {n}" for n in range(1, 6)]
        arrivals = [r.at for r in status_page.requests]
        assert len(arrivals) == 7 and status_page.too_fast == []  # the form's read of the components, then six
        assert min(b - a for a, b in zip(arrivals, arrivals[1:], strict=False)) >= 0.95
    finally:
        fake.stop()


def test_a_done_transition_jira_lacks_is_reported_once_in_the_channel(database_url: str, jira: FakeJira) -> None:
    fake = slack_with_emails()
    try:
        with running_bot(database_url, fake=fake, **env(jira, None, JIRA_DONE_TRANSITION="Close")) as bot:
            channel = declare(bot)
            bot.command("resolve Bad deploy", channel=channel)
            deliver(bot)
            deliver(bot)
            with bot.sitrep.deps.read() as session:
                rows = outbox.rows_of(session=session, incident_id=1, integration="jira")
            assert [(r.operation, r.state) for r in rows] == [
                ("create_issue", "delivered"), ("comment", "delivered"), ("transition", "failed")]
            told = [t for t in channel_texts(bot, channel) if "has no transition" in t]
            assert len(told) == 1 and "'Close'" in told[0] and "Done" in told[0], told
            assert jira.issue("OPS-1")["fields"]["status"]["name"] == "To Do"
    finally:
        fake.stop()
