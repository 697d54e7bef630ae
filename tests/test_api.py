"""POST /api/incidents (SPEC §13.3) end to end: the real app over HTTP against the fake Slack."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from core import store
from core.enums import EntryKind, Role, Severity
from core.models import Incident
from tests.fakeslack import FakeSlack
from tests.harness import Harness, running_bot
from tests.hooks import API_TOKEN, HookClient

pytestmark = pytest.mark.e2e

ERIN = "U0ERIN"


@dataclass
class ApiBot:
    bot: Harness
    hooks: HookClient

    def incident_channels(self) -> list[str]:
        channels = (self.bot.fake.channel(c) for c in list(self.bot.fake.channels))
        return sorted(c.id for c in channels if c.name.startswith("inc-"))

    def incidents(self) -> int:
        with self.bot.sitrep.deps.read() as session:
            return int(session.exec(sa.select(sa.func.count()).select_from(Incident)).one()[0])  # type: ignore[call-overload]


@pytest.fixture
def api(database_url: str) -> Iterator[ApiBot]:
    fake = FakeSlack().start()
    fake.add_user(ERIN, "erin", real_name="Erin", email="erin@example.com")
    try:
        with running_bot(database_url, fake=fake, SITREP_API_TOKEN=API_TOKEN) as bot:
            yield ApiBot(bot, HookClient(f"http://127.0.0.1:{bot.server.port}"))
    finally:
        fake.stop()


def test_a_declaration_runs_as_one_made_in_slack(api: ApiBot) -> None:
    body = {"title": "Checkout errors in EU", "severity": "sev2", "description": "From CI",
            "commander_email": "ERIN@example.com"}  # fmt: skip
    answer = api.hooks.declare(body)
    assert answer.status == 201, answer
    channel = api.bot.fake.channel(answer.body["channel_id"])
    assert answer.body["key"] == "INC-1" and answer.body["channel_name"] == channel.name
    assert answer.body["url"].endswith(f"/archives/{channel.id}")
    assert ERIN in channel.members and channel.topic == "SEV2 | Investigating | IC: @erin"
    intro = api.bot.fake.messages(channel.id)[0]
    assert channel.pins == [intro["ts"]]
    assert any("INC-1" in m["text"] for m in api.bot.fake.messages(api.bot.announce))
    api.bot.idle()
    incident = api.bot.incident("INC-1")
    assert incident.severity == Severity.SEV2 and incident.description == "From CI"
    assert incident.commander_id == ERIN and incident.declare_step == "confirmed"
    with api.bot.sitrep.deps.read() as session:
        assert store.roles_of(session=session, incident=incident) == {Role.COMMANDER: ERIN}
        [entry] = store.entries_of(session=session, incident=incident)
    assert entry.kind == EntryKind.DECLARATION
    assert any("INC-1 declared as SEV2" in text for text in api.bot.replies(ERIN))
    # With no commander and no severity: the default severity, a private channel when asked.
    second = api.hooks.declare({"title": "Nightly job failed", "private": True})
    assert second.status == 201 and api.bot.fake.channel(second.body["channel_id"]).is_private
    assert api.bot.incident("INC-2").severity == Severity.SEV3


def test_the_same_idempotency_key_returns_the_first_incident(api: ApiBot) -> None:
    first = api.hooks.declare({"title": "Deploy broke login"}, key="ci-run-41")
    again = api.hooks.declare({"title": "Deploy broke login"}, key="ci-run-41")
    assert (first.status, again.status) == (201, 200) and again.body == first.body
    other = api.hooks.declare({"title": "Deploy broke login"}, key="ci-run-42")
    assert other.status == 201 and other.body["key"] == "INC-2"
    assert len(api.incident_channels()) == 2 and api.incidents() == 2


def test_the_same_key_sent_together_makes_one_incident(api: ApiBot) -> None:
    def send(_: int) -> tuple[int, str]:
        answer = api.hooks.declare({"title": "Pager storm"}, key="monitor-7")
        return answer.status, answer.body["channel_id"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
    api.bot.idle()
    assert sorted(status for status, _ in answers) == [200] * 7 + [201]
    assert len({channel for _, channel in answers}) == 1
    assert len(api.incident_channels()) == 1 and api.incidents() == 1


def test_tokens_bodies_and_sizes_are_checked(api: ApiBot) -> None:
    assert api.hooks.declare({"title": "x"}, token=None).status == 401
    assert api.hooks.declare({"title": "x"}, token="not-the-api-token-0123").status == 401
    cases = {
        "title": {"severity": "sev1"},
        "severity": {"title": "x", "severity": "sev9"},
        "private": {"title": "x", "private": "yes"},
        "description": {"title": "x", "description": 42},
        "commander_email": {"title": "x", "commander_email": "nobody@example.com"},
    }
    for field, body in cases.items():
        answer = api.hooks.declare(body)
        assert answer.status == 400 and answer.body["field"] == field and field in answer.body["error"], answer
    assert api.hooks.declare(b"[1, 2").body["field"] == "body"
    huge = {"title": "x", "description": "y" * (1024 * 1024)}
    assert api.hooks.declare(huge).status == 413
    assert api.hooks.declare({"title": "x"}, key="k" * 300).body["field"] == "Idempotency-Key"
    assert api.incidents() == 0 and api.incident_channels() == []


def test_the_endpoint_is_off_without_its_token(database_url: str) -> None:
    with running_bot(database_url) as bot:
        assert HookClient(f"http://127.0.0.1:{bot.server.port}").declare({"title": "x"}).status == 404
