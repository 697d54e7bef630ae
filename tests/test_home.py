"""Issue 6: the App Home tab, within Block Kit limits, showing a private incident only to its members."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.harness import ALICE, BOB, CAROL, Harness, running_bot


@pytest.fixture
def bot(database_url: str) -> Iterator[Harness]:
    with running_bot(database_url) as harness:
        yield harness


def open_home(bot: Harness, user: str) -> dict:  # type: ignore[type-arg]
    assert bot.slack.event({"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}).status == 200
    bot.idle()
    return bot.fake.home_views[user]


def test_home_shows_what_the_viewer_may_see_within_limits(bot: Harness) -> None:
    bot.command("declare sev1 --private Secret breach")
    bot.command("declare sev3 Slow search")
    public = bot.incident("INC-2").channel_id
    bot.command(f"role comms <@{BOB}>", channel=public)
    bot.command(f"action Tune the index <@{BOB}> P2 due:2030-01-01", channel=public)
    for n in range(40):
        bot.command(f"declare sev4 Noise {n}", user=CAROL)
    alice, bob = open_home(bot, ALICE), open_home(bot, BOB)  # the fake refuses views over Block Kit limits
    for view in (alice, bob):
        assert len(view["blocks"]) <= 100
        assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in view["blocks"])
    assert "*INC-1* SEV1" in json.dumps(alice) and "*INC-1* SEV1" not in json.dumps(bob)
    bob_text = json.dumps(bob)
    assert "Communications Lead in *INC-2*" in bob_text and "Tune the index (P2, due 2030-01-01)" in bob_text
    assert "more: `/incident list`" in bob_text


def test_the_declare_button_opens_the_declare_modal(bot: Harness) -> None:
    view = open_home(bot, ALICE)
    bot.slack.block_action("sitrep_home_declare", user=ALICE, view={**view, "id": "VHOME"})
    bot.idle()
    assert bot.fake.last_view("sitrep_declare") is not None


def test_action_items_are_listed_by_due_date_and_overdue_ones_marked(bot: Harness) -> None:
    bot.command("declare sev3 Slow search")
    channel = bot.incident("INC-1").channel_id
    today = bot.sitrep.deps.now().date()
    for title, due in (("Later", today + timedelta(days=3)), ("Late", today - timedelta(days=1)),
                       ("Now", today)):  # fmt: skip
        bot.command(f"action {title} <@{ALICE}> P3 due:{due.isoformat()}", channel=channel)
    bot.command(f"action Someday <@{ALICE}>", channel=channel)
    texts = [b["text"]["text"] for b in open_home(bot, ALICE)["blocks"] if b["type"] == "section"]
    items = texts[texts.index("*Your action items*") + 1 :]
    assert [t.split(" (")[0] for t in items] == ["Late", "Now", "Later", "Someday"]
    assert ":warning: overdue" in items[0] and ", today)" not in items[0]
    assert items[1].endswith(", today) from *INC-1*") and "overdue" not in items[2] + items[3]
