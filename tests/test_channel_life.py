"""Issue 16 end to end: catch-up and welcomes, archiving after resolve, reopen from anywhere, the bridge link.

The real bot over HTTP against the fake Slack, on SQLite and PostgreSQL, with a FrozenClock: the scheduler is
never started, each test calls `archive(now)` itself, so nothing depends on the machine's speed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import col, select

from bot.scheduler import Scheduler
from bot.settings import SettingsError, load_settings
from core import store
from core.clock import FrozenClock
from core.models import Incident
from standin.blocks import validate_blocks
from tests.harness import ALICE, BOB, CAROL, DAVE, Harness, running_bot

pytestmark = pytest.mark.e2e

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ENV = {"SITREP_ARCHIVE_AFTER": "7d", "SITREP_BRIDGE_URL": "https://meet.example.com/{key}/{slug}?x=1&y=2"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def bot(database_url: str, clock: FrozenClock) -> Iterator[Harness]:
    with running_bot(database_url, clock=clock, **ENV) as harness:
        yield harness


def _declare(bot: Harness, text: str = "declare sev2 Checkout errors") -> str:
    """Declare through the command; the newest incident's channel."""
    bot.command(text)
    with bot.sitrep.deps.read() as session:
        newest = session.exec(select(Incident).order_by(col(Incident.id).desc())).first()
    assert newest is not None and newest.channel_id
    return newest.channel_id


def _event(bot: Harness, event: dict[str, Any], **kwargs: Any) -> None:
    assert bot.slack.event(event, **kwargs).status == 200
    bot.idle()


def _blocks_text(blocks: list[dict[str, Any]]) -> str:
    parts = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(text["text"])
        parts += [element["text"] for element in block.get("elements", []) if isinstance(element.get("text"), str)]
    return "\n".join(parts)


def _catchups(bot: Harness, user: str) -> list[dict[str, Any]]:
    return [e for e in bot.fake.ephemerals(user=user) if "Catch-up on" in e.get("text", "")]


def _within_slack_limits(blocks: list[dict[str, Any]]) -> None:
    validate_blocks(blocks)  # the stand-in's rules: 50 blocks, 3,000 characters a section, 150 a header
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150


# --- catch-up -----------------------------------------------------------------------------------------------


def test_catchup_shows_severity_phase_latest_update_entries_and_open_items(bot: Harness, clock: FrozenClock) -> None:
    channel = _declare(bot)
    bot.fake.join_as_user(channel, BOB)
    clock.advance(minutes=5)
    bot.command("severity sev1 Revenue systems down", channel=channel)
    clock.advance(minutes=5)
    bot.command("update identified Bad deploy of checkout v42", channel=channel)
    for n in range(1, 8):
        clock.advance(minutes=1)
        bot.command(f"note Step {n} done", channel=channel)
    clock.advance(minutes=3)
    bot.command("update monitoring Rolled back; errors at baseline", channel=channel)
    bot.command(f"action Add a canary stage <@{CAROL}> P1 due:2026-04-01", channel=channel)
    clock.advance(minutes=10)

    bot.command("catchup", channel=channel, user=BOB)
    [reply] = _catchups(bot, BOB)
    blocks = reply["blocks"]
    _within_slack_limits(blocks)
    text = _blocks_text(blocks)
    assert blocks[0]["text"]["text"] == "INC-1 SEV1: Checkout errors"
    assert "*Severity:* SEV1 · *Status:* Open · *Phase:* Monitoring" in text
    assert "*Running for:* 30 min" in text
    assert "*Incident Commander:* <@U0ALICE>" in text
    latest_update = "*Latest status update* (Monitoring, 2026-03-02 09:20 UTC, by <@U0ALICE>)"
    assert f"{latest_update}\nRolled back; errors at baseline" in text
    # the five latest entries, oldest first: notes 5..7, the update, the action item
    latest = [line for line in text.splitlines() if line.startswith("• 2026-03-02")]
    assert [line.split(": ", 1)[1] for line in latest] == [
        "Step 5 done", "Step 6 done", "Step 7 done", "Rolled back; errors at baseline", "Add a canary stage",
    ]  # fmt: skip
    assert "(5 of 12)" in text and "`/incident timeline` shows all 12 entries" in text
    assert "• [P1] Add a canary stage · <@U0CAROL> · due 2026-04-01" in text
    assert reply["user"] == BOB and "Welcome" not in text


def test_catchup_of_an_incident_with_300_long_notes_stays_within_block_kit_limits(
    bot: Harness, clock: FrozenClock
) -> None:
    channel = _declare(bot, "declare sev2 " + "Very long title & more <!channel> " * 14)
    incident = bot.incident("INC-1")
    long_text = "<!channel> & <b> " * 300  # escaping makes it longer still
    with bot.sitrep.deps.tx() as session:
        for n in range(300):
            store.add_note(session=session, incident=incident, text=f"{n} {long_text}", actor_id=BOB,
                           now=clock.advance(seconds=10))  # fmt: skip
            store.add_action_item(session=session, incident=incident, title=f"{n} {long_text}", actor_id=BOB,
                                  now=clock.now())  # fmt: skip
        store.post_status_update(session=session, incident=incident, phase=incident.phase, text=long_text * 3,
                                 author_id=BOB, now=clock.now(), cadence=bot.settings.cadence)  # fmt: skip

    bot.command("catchup", channel=channel)
    [reply] = _catchups(bot, ALICE)
    _within_slack_limits(reply["blocks"])
    text = _blocks_text(reply["blocks"])
    assert "(5 of 602)" in text and "…and 290 more" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text  # escaped, never a live mention
    # a newcomer's welcome goes through chat.postEphemeral, whose blocks the stand-in validates
    _event(bot, bot.fake.join_as_user(channel, DAVE))
    [welcome] = _catchups(bot, DAVE)
    assert welcome["via"] == "chat.postEphemeral"
    _within_slack_limits(welcome["blocks"])


def test_catchup_outside_an_incident_channel_says_where_it_works(bot: Harness) -> None:
    answers = bot.answers(bot.command("catchup"))
    assert any("works inside an incident channel" in answer for answer in answers)


# --- welcome ------------------------------------------------------------------------------------------------


def test_a_newcomer_is_welcomed_once_per_incident_and_never_the_bot_or_the_declarer(
    bot: Harness, clock: FrozenClock
) -> None:
    channel = _declare(bot)
    bot.command("update identified Bad deploy of checkout v42", channel=channel)
    clock.advance(minutes=42)
    joined = bot.fake.join_as_user(channel, BOB)
    _event(bot, joined)
    [welcome] = _catchups(bot, BOB)
    text = _blocks_text(welcome["blocks"])
    assert text.splitlines()[1].startswith(":wave: Welcome to *INC-1*, <@U0BOB>.")
    assert "*Running for:* 42 min" in text and "Bad deploy of checkout v42" in text
    assert welcome["channel"] == channel

    # a retried delivery, and a second join of the same person (left and came back), welcome nobody again
    _event(bot, joined, event_id=bot.slack.last_event_id, retry_num=1)
    _event(bot, bot.fake.join_as_user(channel, BOB))
    assert len(_catchups(bot, BOB)) == 1
    # the bot joining, and the declarer, get nothing
    _event(bot, {**joined, "user": bot.fake.bot_user_id})
    _event(bot, bot.fake.join_as_user(channel, ALICE))
    assert _catchups(bot, bot.fake.bot_user_id) == [] and _catchups(bot, ALICE) == []
    # a join elsewhere is none of sitrep's business
    _event(bot, bot.fake.join_as_user(bot.general, CAROL))
    assert _catchups(bot, CAROL) == []

    # the same person joining another incident is welcomed there
    other = _declare(bot, "declare sev3 Search is slow")
    _event(bot, bot.fake.join_as_user(other, BOB))
    assert [w["channel"] for w in _catchups(bot, BOB)] == [channel, other]


def test_welcomes_from_two_replicas_at_once_are_one(database_url: str, clock: FrozenClock) -> None:
    """Two bots on one database get the same join (Slack spreads deliveries): one welcome."""
    with (
        running_bot(database_url, clock=clock) as first,
        running_bot(database_url, clock=clock, fake=first.fake) as second,
    ):
        channel = _declare(first)
        joined = first.fake.join_as_user(channel, BOB)
        assert first.slack.event(joined).status == 200 and second.slack.event(joined).status == 200
        first.idle()
        second.idle()
        assert len(_catchups(first, BOB)) == 1


# --- archive and reopen ---------------------------------------------------------------------------------------


def _resolve(bot: Harness, channel: str, clock: FrozenClock) -> datetime:
    bot.command("resolve Bad deploy", channel=channel)
    return clock.now()


def _archive_notices(bot: Harness, channel: str) -> list[str]:
    return [m["text"] for m in bot.fake.messages(channel) if m.get("text", "").startswith(":file_cabinet:")]


def test_the_channel_is_archived_once_seven_days_after_resolve_even_after_downtime(
    bot: Harness, clock: FrozenClock
) -> None:
    channel = _declare(bot)
    resolved = _resolve(bot, channel, clock)
    scheduler = bot.sitrep.scheduler
    assert scheduler.archive(resolved + timedelta(days=7) - timedelta(seconds=1)) == 0
    assert not bot.fake.channel(channel).archived

    # the bot was down when the seven days were up: the first run after start archives, once
    later = resolved + timedelta(days=9)
    assert scheduler.archive(later) == 1
    assert bot.fake.channel(channel).archived
    [notice] = _archive_notices(bot, channel)
    assert "INC-1 was resolved 2026-03-02 09:00 UTC" in notice and "(7 d after resolve)" in notice
    assert "`/incident reopen INC-1` from any channel" in notice
    replica = Scheduler(bot.sitrep.deps, bot.settings)  # another replica's scheduler, on the same database
    assert replica.archive(later + timedelta(seconds=10)) == 0 and scheduler.archive(later + timedelta(days=1)) == 0
    assert len(bot.fake.calls_to("conversations.archive")) == 1 and len(_archive_notices(bot, channel)) == 1

    # the stand-in enforces Slack's rule: nothing can be posted in an archived channel
    client = WebClient(token=bot.fake.bot_token, base_url=bot.fake.api_url)
    with pytest.raises(SlackApiError) as refused:
        client.chat_postMessage(channel=channel, text="hello")
    assert refused.value.response["error"] == "is_archived"


def test_replicas_archiving_at_the_same_moment_archive_each_channel_once(bot: Harness, clock: FrozenClock) -> None:
    channels = [_declare(bot, f"declare sev3 Incident {n}") for n in range(6)]
    for channel in channels:
        _resolve(bot, channel, clock)
    replicas = [bot.sitrep.scheduler, *(Scheduler(bot.sitrep.deps, bot.settings) for _ in range(3))]
    barrier = threading.Barrier(len(replicas))
    archived: list[int] = []

    def run(scheduler: Scheduler) -> None:
        barrier.wait()
        archived.append(scheduler.archive(clock.now() + timedelta(days=8)))

    threads = [threading.Thread(target=run, args=(replica,)) for replica in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(archived) == 6 and all(bot.fake.channel(channel).archived for channel in channels)
    assert len(bot.fake.calls_to("conversations.archive")) == 6
    assert all(len(_archive_notices(bot, channel)) == 1 for channel in channels)


def test_a_failed_archive_is_tried_again_without_a_second_last_message(bot: Harness, clock: FrozenClock) -> None:
    channel = _declare(bot)
    resolved = _resolve(bot, channel, clock)
    bot.fake.fail_next("conversations.archive", error="fatal_error")
    assert bot.sitrep.scheduler.archive(resolved + timedelta(days=8)) == 0
    assert not bot.fake.channel(channel).archived and len(_archive_notices(bot, channel)) == 1
    assert bot.sitrep.scheduler.archive(resolved + timedelta(days=8, seconds=10)) == 1
    assert bot.fake.channel(channel).archived and len(_archive_notices(bot, channel)) == 1


def test_archiving_is_off_by_default(database_url: str, clock: FrozenClock) -> None:
    with running_bot(database_url, clock=clock) as bot:
        channel = _declare(bot)
        resolved = _resolve(bot, channel, clock)
        assert bot.sitrep.scheduler.archive(resolved + timedelta(days=400)) == 0
        assert not bot.fake.channel(channel).archived


def test_reopen_from_any_channel_unarchives_first_and_a_later_resolve_archives_again(
    bot: Harness, clock: FrozenClock
) -> None:
    channel = _declare(bot)
    resolved = _resolve(bot, channel, clock)
    bot.sitrep.scheduler.archive(resolved + timedelta(days=7))
    assert bot.fake.channel(channel).archived

    answers = bot.answers(bot.command("reopen INC-1", user=DAVE), user=DAVE)  # DAVE is not in the channel
    assert any("Only members of" in answer for answer in answers)
    assert bot.fake.channel(channel).archived and bot.incident("INC-1").status.value == "resolved"

    clock.set(resolved + timedelta(days=7, hours=1))
    answers = bot.answers(bot.command("reopen inc-1"))
    assert any(f"INC-1 is open again: <#{channel}>" in answer for answer in answers)
    assert not bot.fake.channel(channel).archived
    assert "reopened INC-1" in bot.fake.messages(channel)[-1]["text"]
    methods = [call.method for call in bot.fake.calls if call.method in ("conversations.unarchive", "chat.postMessage")]
    assert methods[-2:] == ["conversations.unarchive", "chat.postMessage"]  # unarchived before posting
    incident = bot.incident("INC-1")
    assert incident.status.value == "open" and incident.archived_at is None

    again = _resolve(bot, channel, clock)
    assert bot.sitrep.scheduler.archive(again + timedelta(days=6)) == 0
    assert bot.sitrep.scheduler.archive(again + timedelta(days=7)) == 1
    assert bot.fake.channel(channel).archived and len(_archive_notices(bot, channel)) == 2


def test_a_private_incident_is_not_found_by_non_members(bot: Harness) -> None:
    channel = _declare(bot, "declare sev2 --private Payroll export leaked")
    bot.command("resolve Fixed", channel=channel)
    answers = bot.answers(bot.command("reopen INC-1", user=BOB), user=BOB)
    assert any("There is no incident INC-1" in answer for answer in answers)
    assert not any("Payroll" in answer for answer in answers)
    answers = bot.answers(bot.command("reopen INC-99"))
    assert any("There is no incident INC-99" in answer for answer in answers)
    answers = bot.answers(bot.command("reopen the payroll one"))
    assert any("is not an incident key" in answer for answer in answers)


# --- the bridge -------------------------------------------------------------------------------------------------


def test_the_bridge_is_bookmarked_and_shown_in_the_intro(bot: Harness) -> None:
    channel = _declare(bot, "declare sev2 Checkout errors: 5xx at 8%")
    url = "https://meet.example.com/INC-1/checkout-errors-5xx-at-8?x=1&y=2"
    [bookmark] = bot.fake.channel(channel).bookmarks
    assert bookmark["link"] == url and bookmark["type"] == "link" and bookmark["title"] == "Incident bridge"
    intro = next(m for m in bot.fake.messages(channel) if m["ts"] == bot.incident("INC-1").intro_ts)
    assert "*Bridge:* <https://meet.example.com/INC-1/checkout-errors-5xx-at-8?x=1&amp;y=2|join the call>" in (
        _blocks_text(intro["blocks"])
    )


def test_a_refused_bookmark_does_not_stop_the_declaration(bot: Harness) -> None:
    bot.fake.fail_next("bookmarks.add", error="too_many_bookmarks")
    channel = _declare(bot)
    incident = bot.incident("INC-1")
    assert incident.declare_step == "confirmed" and bot.fake.channel(channel).bookmarks == []


def test_no_bridge_without_the_setting(database_url: str) -> None:
    with running_bot(database_url) as bot:
        channel = _declare(bot)
        assert bot.fake.channel(channel).bookmarks == [] and bot.fake.calls_to("bookmarks.add") == []


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SITREP_BRIDGE_URL", "meet.example.com/{key}", "SITREP_BRIDGE_URL: use an http(s) URL"),
        ("SITREP_BRIDGE_URL", "https://meet.example.com/{room}", "only placeholders are {key} and {slug}"),
        ("SITREP_BRIDGE_URL", "https://meet.example.com/{key", "only placeholders are {key} and {slug}"),
        ("SITREP_ARCHIVE_AFTER", "soon", "SITREP_ARCHIVE_AFTER: 'soon' is not a duration"),
    ],
)
def test_wrong_channel_life_settings_stop_start_up(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)").replace("{", r"\{")):
        load_settings(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", **{name: value})


def test_channel_life_settings_parse() -> None:
    settings = load_settings(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", SITREP_ARCHIVE_AFTER="7d")
    assert settings.archive_after == timedelta(days=7) and settings.bridge_url is None
    off = load_settings(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", SITREP_ARCHIVE_AFTER="off")
    assert off.archive_after is None


# --- the stand-in and the helpers -----------------------------------------------------------------------------


def test_the_stand_in_adds_link_bookmarks_as_slack_does() -> None:
    from standin import FakeSlack

    with FakeSlack() as fake:
        client = WebClient(token=fake.bot_token, base_url=fake.api_url)
        fake.add_user(ALICE, "alice")
        mine = client.conversations_create(name="inc-bookmarks")["channel"]["id"]
        other = fake.add_channel("elsewhere", [ALICE])

        def refused(**kwargs: Any) -> str:
            with pytest.raises(SlackApiError) as error:
                client.bookmarks_add(**{"title": "Bridge", "type": "link", "link": "https://x.example", **kwargs})
            return str(error.value.response["error"])

        assert refused(channel_id=mine, link="meet.example.com") == "invalid_link"
        assert refused(channel_id=mine, type="file") == "invalid_bookmark_type"
        assert refused(channel_id=other) == "not_in_channel"
        assert refused(channel_id="C0NOSUCH") == "channel_not_found"
        added = client.bookmarks_add(channel_id=mine, title="Bridge", type="link", link="https://x.example")
        assert added["bookmark"]["link"] == "https://x.example" and fake.channel(mine).bookmarks[0]["title"] == "Bridge"
        client.conversations_archive(channel=mine)
        assert refused(channel_id=mine, title="Bridge", type="link", link="https://x.example") == "is_archived"
        with pytest.raises(SlackApiError) as error:
            client.api_call("conversations.open", params={})  # slack_sdk's own method checks this first
        assert error.value.response["error"] == "users_list_not_supplied"
        assert client.conversations_open(users=ALICE)["channel"]["id"].startswith("D")


def test_short_texts_are_escaped_on_one_line_and_never_cut_inside_an_escape() -> None:
    from core.templating import escape_short

    assert escape_short("a\n b <x>", 20) == "a b &lt;x&gt;"
    for limit in range(2, 30):
        cut = escape_short("ab & <!channel> " * 5, limit)
        assert len(cut) <= limit and cut.endswith("…")
        assert "&" not in cut or all(part.startswith(("amp;", "lt;", "gt;")) for part in cut.split("&")[1:])
