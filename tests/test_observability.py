"""Issue 6: one JSON log line per Slack request with no secret in any line; metrics that move."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from bot.observability import REDACTED, Redactor, configure_logging
from tests.fakeslack import FakeSlack
from tests.harness import ALICE, SIGNING_SECRET, Harness, running_bot

BOT_TOKEN = "xoxb-1111-DISTINCTIVE-bot-token-zq9"


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    with pytest.MonkeyPatch.context() as hooks:  # configure_logging replaces both; put them back after
        hooks.setattr(sys, "excepthook", sys.excepthook)
        hooks.setattr(threading, "excepthook", threading.excepthook)
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
                 "sitrep_reminders_sent_total", "sitrep_reminders_missed_total",
                 "sitrep_slack_api_errors_total"):  # fmt: skip
        assert f"# TYPE {name.removesuffix('_total').removesuffix('_bucket')}" in before, name
    bot.command("declare sev1 Metrics move")
    bot.fake.fail_next("conversations.invite", error="user_not_found")
    bot.command("role scribe <@U0BOB>", channel=bot.incident("INC-1").channel_id)
    after = scrape()
    assert 'sitrep_open_incidents{severity="sev1"} 1.0' in after
    assert 'sitrep_slack_requests_total{outcome="ok",type="command"} 2.0' in after
    assert 'sitrep_ack_seconds_count{type="command"} 2.0' in after
    assert 'sitrep_slack_api_errors_total{error="user_not_found",method="conversations.invite"} 1.0' in after


def test_socket_mode_envelopes_are_logged_and_counted_like_http_requests(tmp_path: Path, logs: io.StringIO) -> None:
    import contextlib

    from bot.app import create_app
    from bot.cli import socket_mode_handler
    from bot.settings import load_settings
    from tests.fakeslack import FakeSocketMode, SocketModeDriver

    app_token = "xapp-1-DISTINCTIVE-app-token-k7"
    with FakeSlack(bot_token=BOT_TOKEN, app_token=app_token) as fake, FakeSocketMode(fake) as socket:
        fake.add_user(ALICE, "alice")
        general = fake.add_channel("general", [ALICE], bot_member=True)
        settings = load_settings(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_APP_TOKEN=app_token, SLACK_API_URL=fake.api_url,
                                 DATABASE_URL=f"sqlite:///{tmp_path / 'sm.db'}")  # fmt: skip
        sitrep = create_app(settings)
        handler = socket_mode_handler(sitrep)
        handler.connect()
        try:
            driver = SocketModeDriver(socket, fake)
            driver.command("declare sev2 Over the socket", user=ALICE, channel=general)
            assert sitrep.executor.wait_idle(10)
            channel = fake.channel_by_name(f"inc-{sitrep.deps.now():%Y%m%d}-over-the-socket")
            assert channel is not None
            driver.command("status", user=ALICE, channel=channel.id)
            assert sitrep.executor.wait_idle(10)
            metrics = generate_latest(sitrep.deps.metrics.registry).decode()
        finally:
            socket.stop()
            with contextlib.suppress(AttributeError):  # see test_e2e_bot: slack_sdk's close races its reader
                handler.close()
            sitrep.close()
    text = logs.getvalue()
    assert app_token not in text and BOT_TOKEN not in text
    requests = [json.loads(line) for line in text.splitlines() if json.loads(line)["message"] == "slack request"]
    assert [(r["type"], r["transport"], r["outcome"]) for r in requests] == [("command", "socket_mode", "ok")] * 2
    assert requests[0]["incident"] is None and requests[1]["incident"] == "INC-1"
    assert requests[1]["channel"] == channel.id and requests[1]["team"] == fake.team_id
    assert 'sitrep_slack_requests_total{outcome="ok",type="command"} 2.0' in metrics
    assert 'sitrep_ack_seconds_count{type="command"} 2.0' in metrics


def test_the_redactor_scrubs_every_kind_of_slack_token_and_the_configured_secrets() -> None:
    redactor = Redactor(["hunter2-signing", ""])
    line = redactor.scrub(
        "bot xoxb-123-456-abc user xoxp-9-9 refresh xoxe-1-ABC app xapp-1-A0-123-f config "
        "xoxe.xoxp-1-x secret hunter2-signing"
    )
    assert line.count(REDACTED) == 6 and "hunter2" not in line and "xox" not in line.replace("xoxe.", "")
    record = logging.makeLogRecord({"msg": "token %s", "args": ("xoxb-1-2",), "extra_field": "xapp-1-Z"})
    assert redactor.filter(record) and record.getMessage() == f"token {REDACTED}"
    assert record.extra_field == REDACTED  # type: ignore[attr-defined]


def test_a_malformed_log_call_is_still_scrubbed_and_never_raises() -> None:
    record = logging.makeLogRecord({"msg": "two %s %s", "args": ("xoxb-9-9",)})
    assert Redactor([]).filter(record) and "xoxb" not in record.getMessage() and REDACTED in record.getMessage()


def test_reminder_metrics_move_when_reminders_are_sent_or_missed(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from core.clock import FrozenClock

    clock = FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    with running_bot(f"sqlite:///{tmp_path}/r.db", clock=clock) as bot:
        bot.command("declare sev1 Reminders counted")
        scheduler = bot.sitrep.scheduler
        clock.advance(minutes=16)  # the SEV1 cadence is 15 min
        assert scheduler.tick(clock.now()) == 1
        clock.advance(minutes=15)
        bot.fake.fail_next("chat.postMessage", error="channel_not_found")
        assert scheduler.tick(clock.now()) == 0  # missed: the claim goes back
        text = generate_latest(bot.sitrep.deps.metrics.registry).decode()
    assert 'sitrep_reminders_sent_total{escalated="no",severity="sev1"} 1.0' in text
    assert 'sitrep_reminders_missed_total{severity="sev1"} 1.0' in text
    assert 'sitrep_slack_api_errors_total{error="channel_not_found",method="chat.postMessage"} 1.0' in text


def test_an_uncaught_exception_in_a_thread_is_logged_as_json_and_scrubbed(
    logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    def crash() -> None:
        raise RuntimeError(f"request failed with {BOT_TOKEN}")

    thread = threading.Thread(target=crash, name="crasher")
    thread.start()
    thread.join()
    (line,) = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert line["message"] == "uncaught exception in thread crasher" and line["level"] == "error"
    assert "RuntimeError: request failed with [redacted]" in line["error"] and BOT_TOKEN not in logs.getvalue()
    assert BOT_TOKEN not in capsys.readouterr().err  # nothing went around the log
