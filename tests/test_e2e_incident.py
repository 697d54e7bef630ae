"""Issue 4 end to end: timeline capture, resolve and the PIR in the channel, through the HTTP endpoint."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.cli import main as cli
from core import store
from tests.harness import ALICE, BOB, CAROL, DAVE, Harness, running_bot

pytestmark = pytest.mark.e2e


@pytest.fixture
def bot(database_url: str) -> Iterator[Harness]:
    with running_bot(database_url) as harness:
        yield harness


def _declare(bot: Harness, text: str = "declare sev2 Checkout errors") -> str:
    bot.command(text)
    channel = bot.incident("INC-1").channel_id or ""
    for user in (BOB, CAROL, DAVE):
        bot.fake.join_as_user(channel, user)
    return channel


def _event(bot: Harness, event: dict, **kwargs: object) -> None:  # type: ignore[type-arg]
    assert bot.slack.event(event, **kwargs).status == 200  # type: ignore[arg-type]
    bot.idle()


def _tagged(bot: Harness, key: str = "INC-1") -> list[tuple[str, str, str]]:
    """(text, kind, source) of the incident's entries made from Slack messages."""
    with bot.sitrep.deps.tx() as session:
        incident = store.incident_by_key(session=session, key=key)
        return [
            (e.text, e.kind.value, e.source)
            for e in store.entries_of(session=session, incident=incident)
            if e.message_ts is not None
        ]


def _pir_file(bot: Harness) -> str:
    files = [f for f in bot.fake.files.values() if f.get("name", f.get("filename", "")).endswith("-pir.md")]
    assert files, bot.fake.files
    content = files[-1]["content"]
    return content.decode() if isinstance(content, bytes) else str(content)


def test_a_whole_incident_ends_with_a_pir_holding_everything(
    bot: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    channel = _declare(bot)
    reacted = bot.fake.post_as_user(channel, BOB, "Alert fired: checkout 5xx at 8%")
    _event(bot, reacted)
    _event(bot, bot.fake.react_as_user(channel, reacted["ts"], CAROL, "pushpin"))
    pinned = bot.fake.post_as_user(channel, CAROL, "Root cause: pool of 20 is too small for ORM 3.2")
    _event(bot, bot.fake.pin_as_user(channel, pinned["ts"], CAROL))
    shortcut = bot.fake.post_as_user(channel, DAVE, "We rolled back user-api to v2.3.9")
    assert (
        bot.slack.message_shortcut("sitrep_add_to_timeline", user=DAVE, channel=channel, message=shortcut["ts"]).status
        == 200
    )
    bot.idle()
    bot.command("note Bridge call opened", channel=channel)
    bot.command("update identified Pool exhaustion after the ORM upgrade", channel=channel)
    bot.command("severity sev1 Revenue systems down", channel=channel)
    bot.command("update monitoring Rollback done, error rate at baseline", channel=channel)
    bot.command(f"action Alert on pool use at 70% <@{CAROL}> P1 due:2030-02-01", channel=channel)
    bot.command("resolve ORM 3.2.0 opens 3x more connections than 3.1.2; pool of 20", channel=channel)

    incident = bot.incident("INC-1")
    assert incident.status.value == "resolved" and incident.next_update_due is None
    assert bot.fake.channel(channel).topic.startswith("SEV1 | Resolved")
    assert "resolved" in bot.fake.messages(bot.announce)[0]["text"]
    summary = next(m for m in bot.fake.messages(channel) if "Post-incident review" in m["text"])
    assert len(summary["blocks"]) <= 50
    markdown = _pir_file(bot)
    expected_in_order = [
        "SEV2 declared",
        "Alert fired: checkout 5xx at 8%",
        "Root cause: pool of 20 is too small",
        "We rolled back user-api to v2.3.9",
        "Bridge call opened",
        "Pool exhaustion after the ORM upgrade",
        "Severity changed from SEV2 to SEV1",
        "Rollback done, error rate at baseline",
        "Alert on pool use at 70%",
        "Resolved: ORM 3.2.0",
    ]
    timeline = markdown.split("## Timeline")[1].split("## Metrics")[0]
    positions = [timeline.index(text) for text in expected_in_order]
    assert positions == sorted(positions)
    assert "| Time to mitigate |" in markdown and "| Time to resolve |" in markdown
    assert not re.search(r"\b[a-z]+_[a-z]+:", markdown), "kinds are named as people read them (status update)"
    assert "### Resolution" in markdown and "### Triage" in markdown
    assert "| Alert on pool use at 70% | carol | P1 | 2030-02-01 | open |" in markdown
    assert "ORM 3.2.0 opens 3x more connections than 3.1.2; pool of 20" in markdown
    summary_text = json.dumps(summary["blocks"])
    for python_repr in ("['", "{'", "None", "datetime."):
        assert python_repr not in markdown and python_repr not in summary_text

    # The export round-trips: `sitrep pir` on it prints the PIR that was posted.
    out = tmp_path / "inc-1.json"
    monkeypatch.setenv("DATABASE_URL", bot.settings.database_url)
    assert cli(["export", "INC-1", "--output", str(out)]) == 0
    capsys.readouterr()
    assert cli(["pir", str(out)]) == 0
    assert capsys.readouterr().out == markdown


def test_retried_and_repeated_tags_make_exactly_one_entry(bot: Harness) -> None:
    channel = _declare(bot)
    message = bot.fake.post_as_user(channel, BOB, "Looking into the logs")
    reaction = bot.fake.react_as_user(channel, message["ts"], BOB, "pushpin")
    _event(bot, reaction)
    event_id = bot.slack.last_event_id
    for retry in (1, 2):
        _event(bot, reaction, event_id=event_id, retry_num=retry)
    _event(bot, bot.fake.react_as_user(channel, message["ts"], CAROL, "pushpin"))
    _event(bot, bot.fake.pin_as_user(channel, message["ts"], DAVE))
    assert _tagged(bot) == [("Looking into the logs", "investigation", "reaction")]
    # Bob's reaction and Carol's read the message (a pin event carries it); the retries made no Slack call.
    assert len(bot.fake.calls_to("conversations.history")) == 2


def test_a_reaction_outside_an_incident_channel_does_nothing(bot: Harness) -> None:
    _declare(bot)
    message = bot.fake.post_as_user(bot.general, BOB, "lunch?")
    before = len(bot.fake.calls)
    _event(bot, bot.fake.react_as_user(bot.general, message["ts"], BOB, "pushpin"))
    assert _tagged(bot) == []
    assert [c.method for c in bot.fake.calls[before:]] == []


def test_removing_the_reaction_removes_the_entry_and_editing_updates_it(bot: Harness) -> None:
    channel = _declare(bot)
    message = bot.fake.post_as_user(channel, BOB, "Looking into the logs")
    thread_reply = bot.fake.post_as_user(channel, CAROL, "restarted the workers", thread_ts=message["ts"])
    _event(bot, bot.fake.react_as_user(channel, message["ts"], BOB, "pushpin"))
    _event(bot, bot.fake.react_as_user(channel, thread_reply["ts"], BOB, "pushpin"))
    assert sorted(_tagged(bot)) == [("Looking into the logs", "investigation", "reaction"),
                                    ("restarted the workers", "mitigation", "reaction")]  # fmt: skip
    # Slack answers the ts of a reply with its whole thread, parent first: only the window [ts, ts] finds it.
    [replies] = bot.fake.calls_to("conversations.replies")
    assert replies.args["oldest"] == replies.args["latest"] == thread_reply["ts"]
    assert int(replies.args["limit"]) >= 2
    _event(bot, bot.fake.edit_as_user(channel, message["ts"], "Rolled back the deploy"))
    assert ("Rolled back the deploy", "mitigation", "reaction") in _tagged(bot)
    _event(bot, bot.fake.react_as_user(channel, message["ts"], BOB, "pushpin", remove=True))
    assert _tagged(bot) == [("restarted the workers", "mitigation", "reaction")]
    _event(bot, bot.fake.delete_as_user(channel, thread_reply["ts"]))
    assert _tagged(bot) == []


def test_an_edit_or_delete_while_reactions_wait_is_not_lost_to_a_copy_read_ahead(bot: Harness) -> None:
    channel = _declare(bot)
    first, edited, deleted = (bot.fake.post_as_user(channel, BOB, text)["ts"] for text in ("a", "b", "c"))
    reader = bot.sitrep.deps.messages
    for ts in (edited, deleted):  # reactions acknowledged, their work still queued
        reader.expect(channel, ts)
    assert (reader.read(channel, first) or {}).get("text") == "a"  # the work of a reaction on `first` reads ahead
    _event(bot, bot.fake.edit_as_user(channel, edited, "b, edited"))
    _event(bot, bot.fake.delete_as_user(channel, deleted))
    assert (reader.read(channel, edited) or {}).get("text") == "b, edited"
    assert reader.read(channel, deleted) is None


def test_entries_keep_the_message_time_and_permalink_and_an_unpin_removes_the_pins_entry(bot: Harness) -> None:
    channel = _declare(bot)
    parent = bot.fake.post_as_user(channel, BOB, "Paging the payments team")
    reply = bot.fake.post_as_user(channel, CAROL, "Payments on-call joined", thread_ts=parent["ts"])
    _event(bot, bot.fake.pin_as_user(channel, parent["ts"], BOB))
    _event(bot, bot.fake.react_as_user(channel, reply["ts"], BOB, "pushpin"))
    with bot.sitrep.deps.tx() as session:
        incident = store.incident_by_key(session=session, key="INC-1")
        entries = {e.message_ts: e for e in store.entries_of(session=session, incident=incident) if e.message_ts}
    for message in (parent, reply):
        entry = entries[message["ts"]]
        seconds, micros = message["ts"].split(".")
        assert entry.occurred_at == datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=int(micros))
        slack_link = bot.sitrep.deps.client.chat_getPermalink(channel=channel, message_ts=message["ts"])["permalink"]
        assert entry.permalink == slack_link  # as Slack builds it, a reply's with its thread
    assert "thread_ts=" in (entries[reply["ts"]].permalink or "")

    _event(bot, bot.fake.pin_as_user(channel, parent["ts"], BOB, remove=True))
    assert [text for text, _kind, _source in _tagged(bot)] == ["Payments on-call joined"]


def test_a_message_tagged_from_another_channel_follows_its_edits(bot: Harness) -> None:
    _declare(bot)
    report = bot.fake.post_as_user(bot.general, BOB, "Customers say checkout fails")
    other = bot.fake.post_as_user(bot.general, CAROL, "lunch?")
    shortcut = bot.slack.message_shortcut("sitrep_add_to_timeline", user=BOB, channel=bot.general, message=report["ts"])
    assert shortcut.status == 200
    bot.idle()
    assert _tagged(bot) == [("Customers say checkout fails", "note", "shortcut")]

    _event(bot, bot.fake.edit_as_user(bot.general, other["ts"], "lunch at noon?"))  # not tagged: nothing
    _event(bot, bot.fake.edit_as_user(bot.general, report["ts"], "Customers say checkout fails: alerts fired"))
    assert _tagged(bot) == [("Customers say checkout fails: alerts fired", "detection", "shortcut")]
    _event(bot, bot.fake.delete_as_user(bot.general, report["ts"]))
    assert _tagged(bot) == []


def _tagged_in(bot: Harness, key: str) -> list[str]:
    return [text for text, _kind, _source in _tagged(bot, key)]


def _add_by_shortcut_to_inc_2(bot: Harness, channel: str, ts: str) -> None:
    """With INC-1 and INC-2 open, Bob uses the shortcut on a message outside them and picks INC-2."""
    shortcut = bot.slack.message_shortcut("sitrep_add_to_timeline", user=BOB, channel=channel, message=ts)
    assert shortcut.status == 200
    bot.idle()
    view = bot.fake.last_view("sitrep_pick_incident")
    assert view is not None, bot.fake.calls_to("views.open")[-1].response
    options = {o["text"]["text"]: o["value"] for o in view["blocks"][0]["element"]["options"]}
    assert sorted(label.split()[0] for label in options) == ["INC-1", "INC-2"]
    assert _tagged_in(bot, "INC-1") == _tagged_in(bot, "INC-2") == []  # nothing until one is chosen
    chosen = next(value for label, value in options.items() if label.startswith("INC-2"))
    assert bot.slack.view_submission(view, {"incident": {"incident": chosen}}, user=BOB).status == 200
    bot.idle()


@pytest.mark.parametrize("text", ["Customers say search is slow", "Clients signalent des lenteurs: " + "é" * 3900])
def test_the_shortcut_asks_which_incident_when_several_are_open(bot: Harness, text: str) -> None:
    _declare(bot)
    bot.command("declare sev3 Search is slow")
    report = bot.fake.post_as_user(bot.general, BOB, text)
    _add_by_shortcut_to_inc_2(bot, bot.general, report["ts"])
    assert _tagged_in(bot, "INC-1") == [] and _tagged_in(bot, "INC-2") == [text]  # the whole text, not a cut
    # Bob is not in INC-2's channel: the answer comes where he used the shortcut.
    assert "Added to the INC-2 timeline" in bot.fake.ephemerals(user=BOB, channel=bot.general)[-1]["text"]


def test_a_long_message_from_a_channel_the_bot_cannot_read_keeps_the_start_that_fits(bot: Harness) -> None:
    _declare(bot)
    bot.command("declare sev3 Search is slow")
    elsewhere = bot.fake.add_channel("random", [BOB])  # the bot is not a member: it cannot read the message
    text = "🔥 " * 2000
    report = bot.fake.post_as_user(elsewhere, BOB, text)
    _add_by_shortcut_to_inc_2(bot, elsewhere, report["ts"])
    [kept] = _tagged_in(bot, "INC-2")
    assert kept.endswith("…") and text.startswith(kept[:-1]) and len(kept) > 1000
    assert "Added to the INC-2 timeline" in bot.fake.dms(BOB)[-1]["text"]  # not in that channel: by DM


def test_the_shortcut_with_no_open_incident_says_so_privately(bot: Harness) -> None:
    report = bot.fake.post_as_user(bot.general, BOB, "is anything on fire?")
    bot.slack.message_shortcut("sitrep_add_to_timeline", user=BOB, channel=bot.general, message=report["ts"])
    bot.idle()
    assert "no open incident" in bot.fake.ephemerals(user=BOB)[-1]["text"]
    assert len(bot.fake.messages(bot.general)) == 1  # nothing posted


def test_messages_record_who_spoke_but_not_what(bot: Harness) -> None:
    channel = _declare(bot)
    _event(bot, bot.fake.post_as_user(channel, BOB, "secret words"))
    _event(bot, bot.fake.post_as_user(channel, BOB, "more"))
    _event(bot, bot.fake.post_as_user(bot.general, CAROL, "elsewhere"))
    _event(bot, bot.fake.message_event(channel, bot.incident("INC-1").intro_ts or ""))  # the bot's own
    with bot.sitrep.deps.tx() as session:
        incident = store.incident_by_key(session=session, key="INC-1")
        rows = [(p.user_id, p.messages) for p in store.participants_of(session=session, incident=incident)]
        texts = [e.text for e in store.entries_of(session=session, incident=incident)]
    assert rows == [(BOB, 2)]
    assert not any("secret" in t for t in texts)


def test_a_large_incident_posts_its_whole_pir_without_slack_errors(bot: Harness) -> None:
    channel = _declare(bot)
    with bot.sitrep.deps.tx() as session:
        incident = store.incident_by_key(session=session, key="INC-1")
        for i in range(300):
            store.add_note(session=session, incident=incident, text=f"Note {i:03d} " + "x" * 190, actor_id=BOB,
                           now=bot.sitrep.deps.now())  # fmt: skip
    bot.command("resolve Too many notes", channel=channel)
    errors = [c for c in bot.fake.calls if c.response and not c.response.get("ok", True)]
    assert errors == []
    markdown = _pir_file(bot)
    assert all(f"Note {i:03d} " in markdown for i in range(300))


def test_untrusted_notes_are_escaped_in_the_pir_and_the_timeline_view(bot: Harness) -> None:
    channel = _declare(bot)
    bot.command("note <!here> see <https://evil.example|this>", channel=channel)
    bot.command("timeline", channel=channel)
    view = json.dumps(bot.fake.ephemerals(user=ALICE)[-1])
    assert "&lt;!here&gt;" in view and "<!here>" not in view and "<https://evil" not in view
    bot.command("resolve done", channel=channel)
    markdown = _pir_file(bot)
    # Markdown escapes with backslashes (issue 12): the note reads as written, and nothing opens a tag or a link.
    assert "\\<!here> see \\<https://evil.example\\|this>" in markdown
    assert not re.search(r"(?<!\\)<[!@A-Za-z]", markdown)


def test_the_timeline_view_pages_and_changes_kinds(bot: Harness) -> None:
    channel = _declare(bot)
    with bot.sitrep.deps.tx() as session:
        incident = store.incident_by_key(session=session, key="INC-1")
        for i in range(45):
            store.add_note(session=session, incident=incident, text=f"n{i}", actor_id=BOB, now=bot.sitrep.deps.now())
    bot.command("timeline", channel=channel)
    first = bot.fake.ephemerals(user=ALICE)[-1]
    assert len(first["blocks"]) <= 50 and "page 1 of 3" in first["blocks"][0]["text"]["text"]
    entry_block = first["blocks"][1]
    option = next(o for o in entry_block["accessory"]["options"] if o["value"].endswith(":mitigation"))
    payload = bot.slack.payloads.block_action("sitrep_entry_kind", option["value"], user=ALICE, channel=channel)
    payload["actions"] = [{"action_id": "sitrep_entry_kind", "block_id": entry_block.get("block_id", "b"),
                           "type": "static_select", "selected_option": option}]  # fmt: skip
    bot.slack._deliver("interactive", payload)
    bot.idle()
    entry_id = int(option["value"].split(":")[0])
    with bot.sitrep.deps.tx() as session:
        entry = session.get(store.TimelineEntry, entry_id)
        assert entry is not None and entry.kind.value == "mitigation" and entry.kind_locked


def test_resolve_modal_reopen_and_pir_again(bot: Harness) -> None:
    channel = _declare(bot)
    incident = bot.incident("INC-1")
    bot.slack.block_action("sitrep_resolve", user=ALICE, channel=channel, message=incident.intro_ts)
    bot.idle()
    view = bot.fake.last_view("sitrep_resolve")
    assert view is not None
    bot.slack.view_submission(
        view,
        {
            "root_cause": {"root_cause": "Pool too small"},
            "factors": {"factors": "No load test\n- No alert at 70%"},
            "lessons": {"lessons": "Load test ORM upgrades"},
            "whys": {"whys": "Why did checkout fail? The pool was exhausted."},
        },
        user=ALICE,
    )
    bot.idle()
    markdown = _pir_file(bot)
    assert "- No load test" in markdown and "- No alert at 70%" in markdown
    assert "**Why did checkout fail?** The pool was exhausted." in markdown
    bot.command("reopen", channel=channel)
    assert bot.incident("INC-1").status.value == "open"
    assert bot.fake.channel(channel).topic.startswith("SEV2 | Investigating")
    bot.command("resolve", channel=channel)
    assert bot.fake.last_view("sitrep_resolve") is not None
    bot.command("pir", channel=channel)
    assert len([m for m in bot.fake.messages(channel) if "Post-incident review" in m["text"]]) == 2
    assert re.search(r"INC-1-pir\.md", json.dumps(bot.fake.messages(channel)))


def test_a_skin_toned_timeline_reaction_tags_and_its_removal_untags(bot: Harness) -> None:
    channel = _declare(bot)
    message = bot.fake.post_as_user(channel, BOB, "Paged the DB on-call")
    _event(bot, bot.fake.react_as_user(channel, message["ts"], BOB, "pushpin::skin-tone-3"))
    assert _tagged(bot) == [("Paged the DB on-call", "escalation", "reaction")]
    _event(bot, bot.fake.react_as_user(channel, message["ts"], BOB, "pushpin::skin-tone-3", remove=True))
    assert _tagged(bot) == []


def test_the_timeline_view_shows_people_the_bot_named_as_mentions(bot: Harness) -> None:
    channel = _declare(bot)
    bot.command(f"role scribe <@{BOB}>", channel=channel)
    bot.command(f"note ask <@{CAROL}> about <!channel>", channel=channel)
    bot.command("timeline", channel=channel)
    view = json.dumps(bot.fake.ephemerals(user=ALICE)[-1])
    assert f"Scribe: <@{BOB}>" in view
    # What people write is escaped, but the people they mention stay mentions (SPEC §15, issue 17 item 9).
    assert f"ask <@{CAROL}> about &lt;!channel&gt;" in view
