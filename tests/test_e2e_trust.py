"""Issue 17 (SPEC §15) through the real endpoint: signed requests to the real app over HTTP, the fake Slack.

Who may change an incident, what a private incident shows to people outside it, text that Slack sends escaped,
and a database that goes away."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from core import store
from tests.dbproxy import DbProxy
from tests.harness import ALICE, BOB, CAROL, Harness, running_bot


@pytest.fixture
def bot(database_url: str) -> Iterator[Harness]:
    with running_bot(database_url) as harness:
        yield harness


def declared(bot: Harness, text: str = "declare sev2 Checkout errors", user: str = ALICE) -> str:
    bot.command(text, user=user)
    channel = bot.incident("INC-1").channel_id
    assert channel
    return channel


def intro_of(bot: Harness, channel: str) -> dict[str, Any]:
    return next(m for m in bot.fake.messages(channel) if m.get("blocks"))


# --- item 7: changes take membership of the incident's channel ----------------------------------------------


def test_people_outside_the_incident_channel_cannot_change_it_but_can_read_it(bot: Harness) -> None:
    channel = declared(bot)
    views_before = len(bot.fake.calls_to("views.open"))
    for text in ("resolve it was me", "severity sev1 worse", f"role commander <@{BOB}>", "update monitoring fine",
                 "note not my channel", "reopen"):  # fmt: skip
        response = bot.command(text, user=BOB, channel=channel)
        assert response.status == 200
    refusals = [t for t in bot.replies(BOB) if "Only members of" in t]
    assert len(refusals) == 6 and all(f"<#{channel}>" in t and "INC-1" in t for t in refusals)
    incident_id = str(bot.incident("INC-1").id)
    intro = intro_of(bot, channel)
    for action in ("sitrep_resolve", "sitrep_change_severity", "sitrep_post_update"):  # the intro's buttons
        assert bot.slack.block_action(action, incident_id, user=BOB, channel=channel, message=intro["ts"]).status == 200
    assert bot.slack.block_action("sitrep_snooze_1h", f"{incident_id}:60", user=BOB, channel=channel).status == 200
    bot.idle()
    assert len(bot.fake.calls_to("views.open")) == views_before  # no modal opened for Bob
    assert sum("Only members of" in t for t in bot.replies(BOB)) == 10
    incident = bot.incident("INC-1")
    assert incident.status == "open" and incident.severity.value == "sev2" and incident.commander_id == ALICE

    bot.command("status", user=BOB, channel=channel)  # reading a public incident is anyone's
    assert any("INC-1" in t and "Only members" not in t for t in bot.replies(BOB)[-1:])

    bot.fake.join_as_user(channel, CAROL)  # a member may: Carol joins, then resolves
    bot.command("resolve pool too small", user=CAROL, channel=channel)
    assert bot.incident("INC-1").status == "resolved"
    assert not any("Only members" in t for t in bot.replies(CAROL))


def test_someone_made_a_role_holder_may_change_the_incident_at_once(bot: Harness) -> None:
    """Inviting a person with `/incident role` makes them a member at once (the membership cache knows)."""
    channel = declared(bot)
    bot.command("update identified too early", user=BOB, channel=channel)  # refused, and remembered a while
    assert sum("Only members" in t for t in bot.replies(BOB)) == 1
    bot.command(f"role comms <@{BOB}>", channel=channel)
    bot.command("update identified a bad deploy", user=BOB, channel=channel)
    assert sum("Only members" in t for t in bot.replies(BOB)) == 1
    assert any("a bad deploy" in m.get("text", "") for m in bot.fake.messages(channel))


# --- item 8: a private incident's action items show nothing to an owner outside it --------------------------


def open_home(bot: Harness, user: str) -> str:
    assert bot.slack.event({"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}).status == 200
    bot.idle()
    return json.dumps(bot.fake.home_views[user])


def test_a_private_action_item_shows_neither_title_nor_key_to_an_owner_outside_the_channel(bot: Harness) -> None:
    channel = declared(bot, "declare sev1 --private Secret breach")
    tomorrow = (bot.sitrep.deps.now() + timedelta(days=1)).date().isoformat()
    bot.command(f"action Rotate the leaked keys <@{BOB}> P1 due:{tomorrow}", channel=channel)
    assert BOB not in bot.fake.channel(channel).members

    home = open_home(bot, BOB)
    assert "An action item in a private incident" in home
    assert "Rotate the leaked keys" not in home and "INC-1" not in home
    assert bot.sitrep.scheduler.remind_action_items() == 1
    [dm] = [m["text"] for m in bot.fake.dms(BOB)]
    assert "an action item in a private incident" in dm
    assert "Rotate" not in dm and "INC-1" not in dm

    bot.fake.join_as_user(channel, CAROL)  # a member owner sees it whole
    bot.command(f"action Write the disclosure <@{CAROL}> P2 due:{tomorrow}", channel=channel)
    assert "Write the disclosure" in open_home(bot, CAROL) and "INC-1" in open_home(bot, CAROL)
    assert bot.sitrep.scheduler.remind_action_items() == 1
    assert any("Write the disclosure" in m["text"] and "INC-1" in m["text"] for m in bot.fake.dms(CAROL))


# --- item 9: text Slack sends escaped is unescaped once on the way in, escaped once on the way out ------------


def private_blocks(bot: Harness, user: str) -> str:
    return json.dumps([m.get("blocks") for m in bot.fake.ephemerals(user=user)])


def test_escaped_text_from_slack_is_stored_as_written_and_escaped_once_when_posted(bot: Harness) -> None:
    channel = declared(bot)
    bot.fake.join_as_user(channel, BOB)
    # As Slack sends a slash command with should_escape: `&`, `<`, `>` escaped, the mention as a mention.
    bot.command(f"note R&amp;D rollout, ask <@{BOB}|bob> &lt;!channel&gt;", channel=channel)
    bot.command("update identified R&amp;D cache &gt; 90%", channel=channel)
    # A message as Slack stores and sends it, tagged with the timeline emoji.
    message = bot.fake.post_as_user(channel, BOB, f"Q&amp;A: &lt;!here&gt; rolled back, thanks <@{ALICE}>")
    bot.slack.event(bot.fake.react_as_user(channel, message["ts"], BOB, "pushpin"))
    bot.idle()

    with bot.sitrep.deps.read() as session:
        texts = [e.text for e in store.entries_of(session=session, incident=bot.incident("INC-1"))]
    assert f"R&D rollout, ask <@{BOB}|bob> <!channel>" in texts
    assert "R&D cache > 90%" in texts
    assert f"Q&A: <!here> rolled back, thanks <@{ALICE}>" in texts

    [update] = [m["text"] for m in bot.fake.messages(channel) if "cache" in m.get("text", "")]
    assert "R&amp;D cache &gt; 90%" in update and "&amp;amp;" not in update

    bot.command("timeline", channel=channel)
    shown = private_blocks(bot, ALICE)
    assert "R&amp;D rollout, ask <@U0BOB> &lt;!channel&gt;" in shown  # the mention lives, the broadcast does not
    assert f"Q&amp;A: &lt;!here&gt; rolled back, thanks <@{ALICE}>" in shown
    assert "&amp;amp;" not in shown and "<!channel>" not in shown and "<!here>" not in shown


# --- item 4: a database that goes away loses nothing silently and answers no bystander ---------------------


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_database_outage_loses_no_acked_work_and_answers_no_bystander(database_url: str) -> None:
    url = sa.make_url(database_url)
    proxy = DbProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        with running_bot(proxied) as bot:
            channel = declared(bot)
            bot.fake.join_as_user(channel, BOB)
            bot.fake.join_as_user(channel, CAROL)
            said = bot.fake.post_as_user(channel, BOB, "Failing over to the replica")
            proxy.down()
            acks = [bot.slack.event(bot.fake.post_as_user(bot.general, BOB, f"lunch at {n}?")) for n in range(5)]
            acks.append(bot.slack.event(bot.fake.post_as_user(channel, CAROL, "anything I can do?")))
            acks.append(bot.slack.event(bot.fake.react_as_user(channel, said["ts"], ALICE, "pushpin")))
            acks.append(bot.command("note written during the outage", channel=channel))
            acks.append(bot.command("declare sev2 Declared during the outage"))
            bot.idle()
            assert [ack.status for ack in acks] == [200] * len(acks)
            assert bot.replies(BOB) == [] and bot.replies(CAROL) == []  # chatting gets no error replies
            told = [t for t in bot.replies(ALICE) if "database is unavailable" in t]
            assert len(told) == 2  # the note and the declare: each reported to Alice, once
            assert len(bot.fake.channels) == 3  # general, incidents and INC-1's: nothing half-declared

            proxy.up()  # the database is back: the held-up events run, without a restart
            # Carol's message and Alice's reaction at least (the chat in #general may have been settled by the
            # short cache of channels without an incident).
            assert bot.sitrep.scheduler.retry_deferred() >= 2
            with bot.sitrep.deps.read() as session:
                incident = bot.incident("INC-1")
                texts = [entry.text for entry in store.entries_of(session=session, incident=incident)]
                people = {p.user_id for p in store.participants_of(session=session, incident=incident)}
            assert "Failing over to the replica" in texts and "written during the outage" not in texts
            assert CAROL in people
            bot.command("note written after the outage", channel=channel)
            with bot.sitrep.deps.read() as session:
                assert "written after the outage" in [
                    entry.text for entry in store.entries_of(session=session, incident=bot.incident("INC-1"))]
            assert bot.sitrep.scheduler.retry_deferred() == 0
    finally:
        proxy.close()
