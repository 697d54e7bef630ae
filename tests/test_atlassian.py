"""The pieces of issue 15 below the end-to-end tests: the request pace, Jira's rich text, the sender's answers to
Jira's refusals, the settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.atlassian import Api, Pace
from bot.jira import adf, plain
from bot.settings import SettingsError, load_settings
from core.outbox import DeliveryError
from tests.fakejira import FakeJira, adf_problems


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_pace_spaces_requests_a_second_apart_and_says_when_the_next_may_go() -> None:
    time = FakeTime()
    pace = Pace(1.0, clock=time.clock, sleep=time.sleep)
    assert pace.free_in() == 0
    for _ in range(3):
        pace.wait()
    assert time.slept == [1.0, 1.0] and pace.free_in() == 1.0
    time.now += 5
    pace.wait()  # a quiet spell: no wait
    assert time.slept == [1.0, 1.0]


def test_text_becomes_atlassian_document_format_and_is_recognised_again() -> None:
    doc = adf("INC-7 resolved.\n\nRoot cause: pool\nSummary:\n- one")
    assert adf_problems(doc) == []
    assert doc["content"][1]["content"][1] == {"type": "hardBreak"}
    assert plain(doc) == plain("INC-7 resolved.\n\nRoot cause: pool\nSummary:\n- one")
    assert adf("")["content"] == [{"type": "paragraph", "content": []}]


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    fake = FakeJira().start()
    yield fake
    fake.stop()


@pytest.mark.parametrize(
    ("status", "headers", "permanent", "wait"),
    [(500, {}, False, None), (429, {"Retry_After": "30"}, False, 30.0), (503, {"Retry_After": "2"}, False, 2.0),
     (401, {}, False, None), (400, {}, True, None), (404, {}, True, None)],
)  # fmt: skip
def test_each_refusal_is_retried_or_given_up_as_it_deserves(
    jira: FakeJira, status: int, headers: dict[str, str], permanent: bool, wait: float | None
) -> None:
    api = Api(name="Jira", base=f"{jira.url}/rest/api/3", headers={"Authorization": jira.authorization})
    jira.fail_next(status, **headers)
    with pytest.raises(DeliveryError) as raised:
        api.call("GET", "/issue/OPS-1")
    assert raised.value.permanent is permanent and str(status) in str(raised.value)
    assert (raised.value.retry_after.total_seconds() if raised.value.retry_after else None) == wait


def test_wrong_credentials_are_refused_by_the_fake(jira: FakeJira) -> None:
    api = Api(name="Jira", base=f"{jira.url}/rest/api/3", headers={"Authorization": "Basic bm9ib2R5Om5vcGU="})
    with pytest.raises(DeliveryError, match="401"):
        api.call("GET", "/user/search", params={"query": "a@example.com"})


BASE = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}


def test_jira_settings_need_a_project_and_credentials() -> None:
    with pytest.raises(SettingsError, match="JIRA_PROJECT: required"):
        load_settings(**BASE, JIRA_URL="https://example.atlassian.net")
    with pytest.raises(SettingsError, match="JIRA_API_TOKEN"):
        load_settings(**BASE, JIRA_URL="https://example.atlassian.net", JIRA_PROJECT="OPS")
    cloud = load_settings(**BASE, JIRA_URL="https://example.atlassian.net/", JIRA_PROJECT="OPS",
                          JIRA_EMAIL="bot@example.com", JIRA_API_TOKEN="t")  # fmt: skip
    assert cloud.jira_on and cloud.jira_url == "https://example.atlassian.net"
    server = load_settings(**BASE, JIRA_URL="https://jira.example.com", JIRA_PROJECT="OPS", JIRA_PAT="p",
                           JIRA_PRIORITIES="sev1=Blocker,P1=Critical", SITREP_JIRA_SEVERITIES="sev1")  # fmt: skip
    assert server.jira_priorities["sev1"] == "Blocker" and server.jira_priorities["P1"] == "Critical"
    assert server.jira_priorities["sev2"] == "High" and server.jira_severities == frozenset({"sev1"})
    assert "p" in server.secret_values()
    with pytest.raises(SettingsError, match="JIRA_PRIORITIES"):
        load_settings(**BASE, JIRA_PRIORITIES="sev1")
    with pytest.raises(SettingsError, match="JIRA_PROJECT: use a project key"):
        load_settings(**BASE, JIRA_PROJECT="ops team")


def test_statuspage_is_on_with_a_key_and_a_page() -> None:
    assert not load_settings(**BASE, STATUSPAGE_API_KEY="k").statuspage_on
    on = load_settings(**BASE, STATUSPAGE_API_KEY="k", STATUSPAGE_PAGE_ID="kctbh9vrtdwd")
    assert on.statuspage_on and on.statuspage_api_url == "https://api.statuspage.io/v1"
    with pytest.raises(SettingsError, match="STATUSPAGE_PAGE_ID"):
        load_settings(**BASE, STATUSPAGE_PAGE_ID="My Page")


@pytest.mark.parametrize("cloud", [True, False], ids=["cloud", "server"])
def test_the_sync_search_reads_every_page(cloud: bool) -> None:
    from pydantic import SecretStr

    from bot.jira import JiraApi
    from tests.fakejira import EMAIL, PAT, PROJECT, TOKEN

    fake = FakeJira(cloud=cloud).start()
    try:
        api = JiraApi(url=fake.url, email=EMAIL, token=SecretStr(TOKEN)) if cloud else JiraApi(
            url=fake.url, pat=SecretStr(PAT))  # fmt: skip
        keys = [api.create({"project": {"key": PROJECT}, "issuetype": {"name": "Task"}, "summary": f"item {n}",
                            "labels": ["incident-follow-up"]}) for n in range(230)]  # fmt: skip
        fake.set_status(keys[200], "Done")
        found = list(api.search(f"key in ({', '.join(keys)})", ["status"]))
        assert [issue["key"] for issue in found] == keys
        assert found[200]["fields"]["status"]["statusCategory"]["key"] == "done"
        assert len(fake.calls("POST", "/search")) == 3 and fake.refused == []
    finally:
        fake.stop()


def test_the_resolve_comment_never_guesses_a_root_cause() -> None:
    from core.enums import Severity
    from core.jira import resolution_comment
    from core.models import Incident

    incident = Incident(key="INC-7", title="t", severity=Severity.SEV1, declared_by="U1", commander_id="U1",
                        people={"U1": "jane"}, contributing_factors=["no pool alert"])  # fmt: skip
    text = resolution_comment(incident, ["Checkout failed for 40 minutes."])
    assert "Root cause: to be completed by the commander (jane)" in text
    assert "- no pool alert" in text and text.endswith("Summary:\nCheckout failed for 40 minutes.")
