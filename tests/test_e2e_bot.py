"""Issue 3 end to end: the real app over HTTP against the fake Slack, driven by signed requests."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.enums import Severity
from tests.harness import ALICE, BOB, CAROL, DAVE, Harness, running_bot

pytestmark = pytest.mark.e2e


@pytest.fixture
def bot(database_url: str) -> Iterator[Harness]:
    """The bot on SQLite, and on PostgreSQL when it is reachable."""
    with running_bot(database_url) as harness:
        yield harness


def _incident_channels(bot: Harness) -> list[str]:
    return sorted(c.name for c in map(bot.fake.channel, list(bot.fake.channels)) if c.name.startswith("inc-"))


def test_quick_declare_runs_every_step_of_the_flow(bot: Harness) -> None:
    bot.command("declare sev2 Checkout errors in EU")
    incident = bot.incident("INC-1")
    channel = bot.fake.channel(incident.channel_id or "")
    day = time.strftime("%Y%m%d", time.gmtime())
    assert channel.name == f"inc-{day}-checkout-errors-in-eu" and not channel.is_private
    assert ALICE in channel.members and bot.fake.bot_user_id in channel.members
    assert channel.topic == "SEV2 | Investigating | IC: @alice"
    intro = bot.fake.messages(channel.id)[0]
    assert channel.pins == [intro["ts"]]
    action_ids = [e["action_id"] for b in intro["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert action_ids == ["sitrep_post_update", "sitrep_change_severity", "sitrep_resolve"]
    announcement = bot.fake.messages(bot.announce)
    assert len(announcement) == 1 and "INC-1" in announcement[0]["text"] and channel.id in announcement[0]["text"]
    assert any("INC-1 declared as SEV2" in text and channel.id in text for text in bot.replies(ALICE))
    assert incident.declare_step == "confirmed" and incident.severity == Severity.SEV2


def test_slack_is_asked_who_the_bot_is_once(bot: Harness) -> None:
    """Bolt gets the identity of sitrep's own auth.test through `authorize`: no auth.test per request, and no
    second one on the first request (as Bolt's own token check would make)."""
    bot.command("declare sev3 Identity check")
    bot.slack.event(bot.fake.post_as_user(bot.incident("INC-1").channel_id or "", ALICE, "hello"))
    bot.command("status", channel=bot.incident("INC-1").channel_id)
    assert len(bot.fake.calls_to("auth.test")) == 1


def test_declare_through_the_modal_shows_the_suggestion_and_its_reasons(bot: Harness) -> None:
    bot.command("declare")
    view = bot.fake.last_view("sitrep_declare")
    assert view is not None
    # Changing an impact answer updates the modal with the suggestion.
    payload = bot.slack.payloads.block_action(
        "sitrep_impact_changed", "25to75", user=ALICE, view=view, block_id="share"
    )
    bot.slack._deliver("interactive", payload)
    bot.idle()
    updated = bot.fake.last_view("sitrep_declare")
    assert updated is not None
    suggestion = [b for b in updated["blocks"] if b.get("block_id") == "suggestion"]
    assert suggestion and "SEV2" in suggestion[0]["elements"][0]["text"]
    response = bot.slack.view_submission(
        updated,
        {
            "title": {"title": "Payments failing"},
            "share": {"sitrep_impact_changed": "25to75"},
            "revenue": {"sitrep_impact_changed": "high"},
            "flags": {"sitrep_impact_changed": ["customer_facing"]},
        },
        user=BOB,
    )
    assert response.status == 200 and response.body in ("", "{}")
    bot.idle()
    incident = bot.incident("INC-1")
    assert incident.severity == Severity.SEV1 and incident.commander_id == BOB
    intro = json.dumps(bot.fake.messages(incident.channel_id or "")[0]["blocks"])
    assert "25% to 75%" in intro and "high revenue impact" in intro.lower()


def test_a_whitespace_title_is_refused_and_nothing_is_created(bot: Harness) -> None:
    response = bot.command("declare sev1    ")
    assert any("Give the incident a title" in text for text in bot.answers(response))
    bot.command("declare")
    view = bot.fake.last_view("sitrep_declare")
    assert view is not None
    response = bot.slack.view_submission(view, {"title": {"title": "   "}}, user=ALICE)
    assert response.json()["response_action"] == "errors" and "title" in response.json()["errors"]
    bot.idle()
    assert _incident_channels(bot) == []
    assert bot.fake.messages(bot.announce) == []


@pytest.mark.parametrize(
    ("titles", "expected"),
    [
        (["DB down", "DB down"], ["inc-{day}-db-down", "inc-{day}-db-down-2"]),
        (["Ünïcödé çhars & emoji 🔥 DB down!!"], ["inc-{day}-unicode-chars-emoji-db-down"]),
        (["日本語のみ"], ["inc-{day}-1"]),
    ],
)
def test_channel_names(bot: Harness, titles: list[str], expected: list[str]) -> None:
    for title in titles:
        bot.command(f"declare {title}")
    day = time.strftime("%Y%m%d", time.gmtime())
    assert _incident_channels(bot) == sorted(name.format(day=day) for name in expected)


def test_a_300_character_title_gives_a_valid_name(bot: Harness) -> None:
    bot.command("declare " + " ".join(["database"] * 33))
    (name,) = _incident_channels(bot)
    assert len(name) <= 80 and re.fullmatch(r"inc-\d{8}(-database)+", name)


def test_a_private_incident_is_not_announced_nor_listed_to_non_members(bot: Harness) -> None:
    bot.command("declare sev1 --private Customer data exposure")
    incident = bot.incident("INC-1")
    assert bot.fake.channel(incident.channel_id or "").is_private
    assert bot.fake.messages(bot.announce) == []
    bot.command("declare sev3 Slow search")
    bot.command("list", user=BOB)
    bob_list = bot.replies(BOB)[-1]
    assert "INC-2" in bob_list and "INC-1" not in bob_list
    bot.command("list", user=ALICE)
    alice_list = bot.replies(ALICE)[-1]
    assert "INC-1" in alice_list and "INC-2" in alice_list


def test_channel_commands_with_good_input(bot: Harness) -> None:
    bot.command("declare sev3 Search latency")
    channel = bot.incident("INC-1").channel_id or ""
    bot.command("update identified Index rebuild stuck", channel=channel)
    bot.command("severity sev2 Spreading to EU", channel=channel)
    bot.command(f"role comms <@{BOB}|bob>", channel=channel)
    bot.command("note Restarted indexer", channel=channel)
    bot.command(f"action Add an alert on rebuild time <@{CAROL}> P1 due:2030-01-31", channel=channel)
    bot.command("status", channel=channel)
    incident = bot.incident("INC-1")
    assert incident.severity == Severity.SEV2 and incident.phase.value == "identified"
    assert BOB in bot.fake.channel(channel).members
    assert bot.fake.channel(channel).topic == "SEV2 | Identified | IC: @alice"
    texts = [m["text"] for m in bot.fake.messages(channel)]
    assert any("Index rebuild stuck" in t and "Identified" in t for t in texts)
    assert any("SEV3 to *SEV2*" in t for t in texts)
    assert any(BOB in t and "Communications Lead" in t for t in texts)
    status = bot.replies(ALICE)[-1]
    assert "SEV2" in status and "Identified" in status and BOB in status
    announcement = bot.fake.messages(bot.announce)
    assert len(announcement) == 1 and "SEV2" in announcement[0]["text"]


BAD_INPUT = [
    ("declare sev7 DB down", "sev1"),
    ("severity extreme", "`sev1`, `sev2`, `sev3` or `sev4`"),
    ("role boss <@U0BOB>", "`commander`, `comms`, `scribe` or `ops`"),
    ("role comms", "`commander`, `comms`, `scribe` or `ops`"),
    ("note", "Write the note"),
    ("frobnicate", "I don't know `frobnicate`"),
    ("action do it due:someday", "YYYY-MM-DD"),
]


@pytest.mark.parametrize(("text", "says"), BAD_INPUT)
def test_bad_input_gets_a_private_reply_and_posts_nothing(bot: Harness, text: str, says: str) -> None:
    bot.command("declare sev3 Search latency")
    channel = bot.incident("INC-1").channel_id or ""
    before = len(bot.posted())
    replies = bot.answers(bot.command(text, channel=channel))
    assert any(says in reply for reply in replies), replies
    assert len(bot.posted()) == before
    assert bot.slack.raw("", {}, method="GET", path="/healthz").status == 200


@pytest.mark.parametrize("text", ["update fixed", "severity sev1", "note hi", "status", "timeline", "resolve"])
def test_a_channel_command_outside_an_incident_channel_says_so(bot: Harness, text: str) -> None:
    bot.command(text, channel=bot.general)
    assert any("works inside an incident channel" in reply for reply in bot.replies(ALICE))
    assert bot.posted() == []


def test_help_and_empty_text_answer_in_the_ack(bot: Harness) -> None:
    for text in ("", "help"):
        response = bot.command(text)
        assert "/incident declare" in response.body
    assert bot.posted() == []


def test_bad_signatures_are_refused_and_change_nothing(bot: Harness) -> None:
    payload = bot.slack.payloads.command("declare sev1 Forged", user=ALICE, channel=bot.general)
    from urllib.parse import urlencode

    body = urlencode(payload)
    forged = bot.slack.signed_headers(body)
    forged["X-Slack-Signature"] = "v0=" + "0" * 64
    stale = bot.slack.signed_headers(body, timestamp=int(time.time()) - 600)
    content = {"Content-Type": "application/x-www-form-urlencoded"}
    for headers in (forged, stale, {}):
        assert bot.slack.raw(body, {**content, **headers}).status == 401
    bot.idle()
    assert _incident_channels(bot) == [] and bot.fake.calls_to("conversations.create") == []


def test_rate_limits_and_server_errors_are_retried_and_the_intro_posted_once(bot: Harness) -> None:
    bot.fake.fail_next("chat.postMessage", 429, times=2, retry_after=1)
    bot.fake.fail_next("conversations.invite", 500, times=1)
    bot.command("declare sev2 Flaky Slack day")
    incident = bot.incident("INC-1")
    assert incident.declare_step == "confirmed"
    intros = [m for m in bot.fake.messages(incident.channel_id or "") if m.get("blocks")]
    assert len(intros) == 1
    assert ALICE in bot.fake.channel(incident.channel_id or "").members


def test_untrusted_titles_are_escaped_everywhere(bot: Harness) -> None:
    title = "<!channel> <https://evil.example|click>"
    bot.command(f"declare sev2 {title}")
    channel = bot.incident("INC-1").channel_id or ""
    bot.command("update identified <!here> see <https://evil.example|this>", channel=channel)
    posted = json.dumps(bot.posted()) + json.dumps(bot.replies(ALICE))
    assert "<!channel>" not in posted and "<!here>" not in posted and "<https://evil" not in posted
    assert "&lt;!channel&gt;" in posted and "&lt;!here&gt;" in posted


def test_an_event_nobody_listens_to_gets_a_2xx(bot: Harness) -> None:
    event = bot.fake.join_as_user(bot.general, DAVE)
    assert bot.slack.event(event).status == 200


def test_socket_mode_handles_a_slash_command_envelope(tmp_path: Path) -> None:
    from bot.app import create_app
    from bot.cli import socket_mode_handler
    from bot.settings import load_settings
    from tests.fakeslack import FakeSlack, FakeSocketMode, SocketModeDriver

    with FakeSlack() as fake:
        fake.add_user(ALICE, "alice")
        general = fake.add_channel("general", [ALICE], bot_member=True)
        settings = load_settings(
            SLACK_BOT_TOKEN=fake.bot_token,
            SLACK_APP_TOKEN=fake.app_token,
            SLACK_API_URL=fake.api_url,
            DATABASE_URL=f"sqlite:///{tmp_path / 'sm.db'}",
        )
        sitrep = create_app(settings)
        socket = FakeSocketMode(fake).start()
        handler = socket_mode_handler(sitrep)
        handler.connect()
        try:
            driver = SocketModeDriver(socket, fake)
            driver.command("declare sev2 Socket Mode works", user=ALICE, channel=general)
            assert sitrep.executor.wait_idle(10)
            assert fake.channel_by_name(f"inc-{time.strftime('%Y%m%d', time.gmtime())}-socket-mode-works")
            assert socket.sent[0]["type"] == "slash_commands"
            assert socket.received[-1]["envelope_id"] == socket.sent[0]["envelope_id"]
        finally:
            socket.stop()
            # slack_sdk's built-in connection checks then closes its socket without a lock; when the
            # server has just gone away its receive thread may close it first (AttributeError on None).
            with contextlib.suppress(AttributeError):
                handler.close()
            sitrep.close()


def test_a_declare_that_fails_part_way_is_reported_and_resumed_without_duplicates(tmp_path: Path) -> None:
    from handlers.flows import resume_declarations

    url = f"sqlite:///{tmp_path / 'resume.db'}"
    with running_bot(url) as bot:
        bot.fake.fail_next("pins.add", error="restricted_action")
        bot.command("declare sev2 Half declared")
        incident = bot.incident("INC-1")
        assert incident.declare_step == "invited" and incident.intro_ts is not None
        assert any("INC-1 is recorded, but posting its pinned intro message failed" in t for t in bot.replies(ALICE))
        assert bot.slack.raw("", {}, method="GET", path="/healthz").status == 200
        assert resume_declarations(bot.sitrep.deps) == ["INC-1"]
        incident = bot.incident("INC-1")
        channel = bot.fake.channel(incident.channel_id or "")
        assert incident.declare_step == "confirmed" and channel.pins == [incident.intro_ts]
        assert len([m for m in bot.fake.messages(channel.id) if m.get("blocks")]) == 1
        assert len(bot.fake.messages(bot.announce)) == 1
        assert any("INC-1 declared as SEV2" in m["text"] for m in bot.fake.dms(ALICE))
        assert resume_declarations(bot.sitrep.deps) == []


def test_a_slack_error_of_ours_gets_an_apology_and_the_process_lives_on(bot: Harness) -> None:
    bot.fake.fail_next("conversations.setTopic", error="too_many_topics_today")
    bot.command("declare sev3 Topic trouble")
    channel = bot.incident("INC-1").channel_id or ""
    bot.fake.fail_next("chat.postMessage", 500, times=3)
    bot.command("update identified found it", channel=channel)
    replies = bot.replies(ALICE)
    assert any("something went wrong on our side" in r for r in replies)
    bot.command("status", channel=channel)
    assert "INC-1" in bot.replies(ALICE)[-1]


def test_intro_buttons_open_modals_whose_submissions_change_the_incident(bot: Harness) -> None:
    bot.command("declare sev3 Buttons")
    incident = bot.incident("INC-1")
    channel = incident.channel_id or ""
    bot.fake.join_as_user(channel, BOB)  # changing an incident takes membership of its channel (SPEC §15)
    bot.slack.block_action("sitrep_post_update", user=BOB, channel=channel, message=incident.intro_ts)
    bot.idle()
    update = bot.fake.last_view("sitrep_update")
    assert update is not None
    response = bot.slack.view_submission(
        update, {"phase": {"phase": "monitoring"}, "text": {"text": "Fix deployed"}}, user=BOB
    )
    assert response.status == 200
    bot.idle()
    bot.slack.block_action("sitrep_change_severity", user=BOB, channel=channel, message=incident.intro_ts)
    bot.idle()
    severity = bot.fake.last_view("sitrep_severity")
    assert severity is not None
    bot.slack.view_submission(severity, {"severity": {"severity": "sev1"}, "reason": {"reason": "EU too"}}, user=BOB)
    bot.idle()
    incident = bot.incident("INC-1")
    assert incident.phase.value == "monitoring" and incident.severity == Severity.SEV1
    texts = [m["text"] for m in bot.fake.messages(channel)]
    assert any("Fix deployed" in t and "Monitoring" in t for t in texts)
    assert bot.fake.channel(channel).topic == "SEV1 | Monitoring | IC: @alice"


def test_an_update_with_no_text_opens_the_update_modal(bot: Harness) -> None:
    bot.command("declare sev3 Modal update")
    bot.command("update", channel=bot.incident("INC-1").channel_id)
    assert bot.fake.last_view("sitrep_update") is not None


def test_healthz_is_200_only_once_the_database_is_migrated(tmp_path: Path) -> None:
    from bot.app import create_app
    from bot.server import WsgiApp
    from bot.settings import load_settings
    from core.db import upgrade
    from tests.fakeslack import FakeSlack

    with FakeSlack() as fake:
        settings = load_settings(
            SLACK_BOT_TOKEN=fake.bot_token,
            SLACK_SIGNING_SECRET="s",
            SLACK_API_URL=fake.api_url,
            DATABASE_URL=f"sqlite:///{tmp_path / 'health.db'}",
        )
        sitrep = create_app(settings, migrate=False)
        wsgi = WsgiApp(sitrep)
        statuses: list[str] = []

        def get(path: str) -> bytes:
            environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
            return b"".join(wsgi(environ, lambda status, headers: statuses.append(status)))

        assert get("/healthz") and statuses[-1].startswith("503")
        upgrade(sitrep.engine)
        assert get("/healthz") == b"ok\n" and statuses[-1].startswith("200")
        sitrep.close()


def test_stopping_a_server_that_closed_itself_neither_fails_nor_writes_to_its_old_pipe(bot: Harness) -> None:
    # waitress closes its listening socket and its wake-up pipe together when that socket fails; a later stop
    # must not write to the pipe's old number (it failed with "Bad file descriptor", and could reach a new file).
    server = bot.server
    waitress = server._server  # type: ignore[attr-defined]
    waitress.trigger.pull_trigger(waitress.close)  # closes itself from inside its loop, as on such a failure
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        except OSError:
            break
        time.sleep(0.01)
    else:
        raise AssertionError("the server did not close its listening socket")
    server.stop()
    assert server._thread is not None and not server._thread.is_alive()  # type: ignore[attr-defined]


def test_a_failed_invite_is_finished_by_the_scheduler_without_a_restart(bot: Harness) -> None:
    """Issue 17 item 6: the declare stopped at its invite is taken up by the scheduler's periodic job; the
    declarer was told once, and is told again when it is done."""
    bot.fake.fail_next("conversations.invite", error="fatal_error")
    bot.command("declare sev2 Invite trouble")
    incident = bot.incident("INC-1")
    assert incident.declare_step == "channel" and incident.intro_ts is None
    assert sum("INC-1 is recorded, but inviting you" in t for t in bot.replies(ALICE)) == 1
    assert bot.sitrep.scheduler.resume_declarations() == ["INC-1"]
    incident = bot.incident("INC-1")
    channel = bot.fake.channel(incident.channel_id or "")
    assert incident.declare_step == "confirmed" and ALICE in channel.members and channel.pins == [incident.intro_ts]
    assert any("INC-1 declared as SEV2" in m["text"] for m in bot.fake.dms(ALICE))
    assert bot.sitrep.scheduler.resume_declarations() == []


def test_an_intro_post_that_outlives_the_client_timeout_is_not_posted_twice_on_resume(bot: Harness) -> None:
    """Issue 17 item 6: Slack posts the intro but answers after the client gave up, so its ts was never stored.
    The resumed declare finds the intro by its metadata key, stores and pins it, and posts no second one."""
    bot.sitrep.deps.client.timeout = 3  # the listeners' threads open their connections at their first call
    bot.fake.slow_next("chat.postMessage", 5)
    bot.command("declare sev2 Slow intro")
    incident = bot.incident("INC-1")
    assert incident.declare_step == "invited" and incident.intro_ts is None
    assert bot.sitrep.scheduler.resume_declarations() == ["INC-1"]
    incident = bot.incident("INC-1")
    intros = [m for m in bot.fake.messages(incident.channel_id or "") if m.get("blocks")]
    assert len(intros) == 1 and incident.intro_ts == intros[0]["ts"]
    assert bot.fake.channel(incident.channel_id or "").pins == [incident.intro_ts]
    assert incident.declare_step == "confirmed"
