"""Issue 6: one JSON log line per Slack request with no secret in any line; metrics that move."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.observability import configure_logging
from tests.fakeslack import FakeSlack
from tests.harness import ALICE, SIGNING_SECRET, Harness, running_bot

BOT_TOKEN = "xoxb-1111-DISTINCTIVE-bot-token-zq9"


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging(secrets=[BOT_TOKEN, SIGNING_SECRET], stream=stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    with FakeSlack(bot_token=BOT_TOKEN) as fake, running_bot(f"sqlite:///{tmp_path}/o.db", fake=fake) as harness:
        yield harness


def test_one_line_per_request_and_no_secret_in_any_line(bot: Harness, logs: io.StringIO) -> None:
    bot.command("declare sev2 Logged incident")
    channel = bot.incident("INC-1").channel_id or ""
    bot.command("status", channel=channel)
    bot.slack.event(bot.fake.post_as_user(channel, ALICE, "hello"))
    bot.slack.raw("token=x", {"Content-Type": "application/x-www-form-urlencoded"})  # unsigned: refused
    bot.fake.fail_next("chat.postMessage", error="invalid_auth")
    bot.command("note leaks?", channel=channel)
    bot.command("update identified cause found", channel=channel)  # fails: logged with context
    logging.getLogger("sitrep.test").error("a careless line with %s and %s", BOT_TOKEN, SIGNING_SECRET)
    bot.idle()
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    text = logs.getvalue()
    assert BOT_TOKEN not in text and SIGNING_SECRET not in text and "[redacted]" in text
    requests = [line for line in lines if line["message"] == "slack request"]
    assert [r["type"] for r in requests] == [
        "command", "command", "event:message", "unknown", "command", "command"
    ]  # fmt: skip
    status = requests[1]
    assert status["incident"] == "INC-1" and status["channel"] == channel and status["team"] == bot.fake.team_id
    assert status["outcome"] == "ok" and status["latency_ms"] >= 0
    assert requests[3]["outcome"] == "refused" and requests[3]["status"] == 401
    assert any(line["level"] == "error" and "ref" in line for line in lines)


def test_metrics_exist_and_move(bot: Harness) -> None:
    def scrape() -> str:
        response = bot.slack.raw("", {}, method="GET", path="/metrics")
        assert response.status == 200
        return response.body

    before = scrape()
    for name in ("sitrep_slack_requests_total", "sitrep_ack_seconds_bucket", "sitrep_open_incidents",
                 "sitrep_reminders_sent_total", "sitrep_slack_api_errors_total"):  # fmt: skip
        assert f"# TYPE {name.removesuffix('_total').removesuffix('_bucket')}" in before, name
    bot.command("declare sev1 Metrics move")
    bot.fake.fail_next("conversations.invite", error="user_not_found")
    bot.command("role scribe <@U0BOB>", channel=bot.incident("INC-1").channel_id)
    after = scrape()
    assert 'sitrep_open_incidents{severity="sev1"} 1.0' in after
    assert 'sitrep_slack_requests_total{outcome="ok",type="command"} 2.0' in after
    assert 'sitrep_ack_seconds_count{type="command"} 2.0' in after
    assert 'sitrep_slack_api_errors_total{error="user_not_found",method="conversations.invite"} 1.0' in after
