"""Issue 16: incident statistics (core.stats), the chart, `sitrep stats` and `/incident stats`.

The incidents are made for the test with the store's own functions at fixed times; every expected figure
below is worked out by hand in the comments of `make_incidents`."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from bot.cli import main as cli
from core import reminders, store
from core.cadence import parse_cadence
from core.enums import EntryKind, Phase, Severity
from core.models import Incident
from core.stats import Spread, Stats, WeekBar, compute
from handlers.stats import CHART_SIZE, COLOURS, longest_shown, render_chart
from tests.harness import ALICE, BOB, Harness, running_bot

CADENCE = parse_cadence("sev1=15m,sev2=30m,sev3=4h,sev4=off")
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # a Monday
NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def make_incidents(session: Session, *, private_channel: str | None = None) -> None:
    """Five incidents; the four declared in the last 30 days of NOW count.

    A  SEV1, public, declared T0 (week of 5 Jan). Trigger T0-20m, detection T0-10m, update identified T0+10m
       (due T0+15m: on time), update monitoring T0+40m (due T0+25m: late), resolved T0+2h.
       detect 10m, declare 10m, mitigate 60m (T0-20m -> T0+40m), resolve 140m. Items: one done, one open.
    B  SEV1, private, declared T0+1d (week of 5 Jan). Update monitoring +30m (due +15m: late), resolved +60m.
       mitigate 30m, resolve 60m; no trigger or detection: detect and declare not measured.
    C  SEV2, public, declared 12 Jan 09:00 (week of 12 Jan). Detection -5m (before the declaration, which is
       then the impact start: time to detect is negative, left out), declare 5m. A reminder at +35m, then an
       update identified at +50m (its due time re-armed to +65m, but a reminder came first: late). Resolved +4h:
       resolve 240m, no mitigation. One open item.
    D  SEV3, declared 13 Jan, still open: counted by severity, no durations.
    E  SEV2, declared 1 Sep 2025: outside the window, counted nowhere (its item neither).

    Expected: 4 incidents (SEV1 2, SEV2 1, SEV3 1, SEV4 0), 3 resolved;
    detect [10m] -> median 10m, p90 10m; declare [10m, 5m] -> median 7m30s, p90 10m;
    mitigate [60m, 30m] -> median 45m, p90 60m; resolve [140m, 60m, 240m] -> median 140m, p90 240m;
    status updates on time 1 of 4; action items done 1 of 3;
    weekly: (5 Jan, SEV1) median of [140m, 60m] = 100m over 2; (12 Jan, SEV2) 240m over 1;
    longest to resolve: C, A, B."""

    def declare(title: str, severity: Severity, at: datetime, *, private: bool = False) -> Incident:
        return store.declare(session=session, title=title, severity=severity, declared_by=ALICE, now=at,
                             cadence=CADENCE, private=private)  # fmt: skip

    def entry(incident: Incident, kind: EntryKind, at: datetime) -> None:
        store.add_entry(session=session, incident=incident, kind=kind, text=kind.value, actor=BOB, now=at)

    def update(incident: Incident, phase: Phase, at: datetime) -> None:
        store.post_status_update(session=session, incident=incident, phase=phase, text=phase.value,
                                 author_id=BOB, now=at, cadence=CADENCE)  # fmt: skip

    a = declare("Checkout errors", Severity.SEV1, T0)
    entry(a, EntryKind.TRIGGER, T0 - 20 * MIN)
    entry(a, EntryKind.DETECTION, T0 - 10 * MIN)
    update(a, Phase.IDENTIFIED, T0 + 10 * MIN)
    update(a, Phase.MONITORING, T0 + 40 * MIN)
    done = store.add_action_item(session=session, incident=a, title="Canary", actor_id=ALICE, now=T0)
    done.status = "done"
    store.add_action_item(session=session, incident=a, title="Alerts", actor_id=ALICE, now=T0)
    store.resolve(session=session, incident=a, actor_id=ALICE, now=T0 + 140 * MIN - 20 * MIN)

    b_at = T0 + timedelta(days=1)
    b = declare("Payroll export leaked", Severity.SEV1, b_at, private=True)
    b.channel_id = private_channel
    update(b, Phase.MONITORING, b_at + 30 * MIN)
    store.resolve(session=session, incident=b, actor_id=ALICE, now=b_at + 60 * MIN)

    c_at = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
    c = declare("Search is slow", Severity.SEV2, c_at)
    c.channel_id = "C0SEARCH"  # reminders go to incidents with a channel
    entry(c, EntryKind.DETECTION, c_at - 5 * MIN)
    session.flush()
    [claim] = reminders.claim_due(session=session, now=c_at + 35 * MIN, cadence=CADENCE)
    assert claim.key == c.key
    session.refresh(c)
    update(c, Phase.IDENTIFIED, c_at + 50 * MIN)
    store.add_action_item(session=session, incident=c, title="Index", actor_id=ALICE, now=c_at)
    store.resolve(session=session, incident=c, actor_id=ALICE, now=c_at + 240 * MIN)

    declare("Queue backlog", Severity.SEV3, datetime(2026, 1, 13, 8, 0, tzinfo=UTC))

    e_at = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)
    e = declare("Old one", Severity.SEV2, e_at)
    store.add_action_item(session=session, incident=e, title="Old", actor_id=ALICE, now=e_at)
    store.resolve(session=session, incident=e, actor_id=ALICE, now=e_at + 10 * MIN)
    session.flush()


@pytest.fixture
def stats(sessions: sessionmaker[Session]) -> Stats:
    with sessions() as session:
        make_incidents(session)
        session.commit()
    with sessions() as session:
        return compute(session=session, since=NOW - timedelta(days=30), until=NOW, zone=UTC)


def test_figures_checked_by_hand(stats: Stats) -> None:
    assert stats.by_severity == {Severity.SEV1: 2, Severity.SEV2: 1, Severity.SEV3: 1, Severity.SEV4: 0}
    assert stats.total == 4 and stats.resolved == 3
    assert stats.metrics == {
        "time to detect": Spread(1, 10 * MIN, 10 * MIN),
        "time to declare": Spread(2, timedelta(minutes=7, seconds=30), 10 * MIN),
        "time to mitigate": Spread(2, 45 * MIN, 60 * MIN),
        "time to resolve": Spread(3, 140 * MIN, 240 * MIN),
    }
    assert (stats.updates_on_time, stats.updates_due) == (1, 4)
    assert (stats.items_done, stats.items_total) == (1, 3)
    assert stats.weekly == [
        WeekBar(date(2026, 1, 5), Severity.SEV1, 100 * MIN, 2),
        WeekBar(date(2026, 1, 12), Severity.SEV2, 240 * MIN, 1),
    ]
    assert [f.key for f in stats.longest] == ["INC-3", "INC-1", "INC-2"]


def test_the_window_and_the_zone_of_weeks(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        make_incidents(session)
        session.commit()
    with sessions() as session:
        short = compute(session=session, since=datetime(2026, 1, 12, tzinfo=UTC), until=NOW, zone=UTC)
        assert short.total == 2 and short.metrics["time to resolve"] == Spread(1, 240 * MIN, 240 * MIN)
        # in Auckland (UTC+13) incident C, declared 12 Jan 09:00 UTC, is on Monday 12 Jan 22:00 too; A (5 Jan
        # 10:00 UTC) is 5 Jan 23:00; B (6 Jan 10:00 UTC) is 6 Jan 23:00: the same weeks
        from zoneinfo import ZoneInfo

        far = compute(session=session, since=NOW - timedelta(days=30), until=NOW, zone=ZoneInfo("Pacific/Auckland"))
        assert [(bar.week, bar.severity) for bar in far.weekly] == [
            (date(2026, 1, 5), Severity.SEV1), (date(2026, 1, 12), Severity.SEV2),
        ]  # fmt: skip
        # in Honolulu (UTC-10) A is Monday 5 Jan 00:00 and B Tuesday: still the week of 5 Jan, but C (12 Jan
        # 09:00 UTC) is Sunday 11 Jan 23:00: the week of 5 Jan
        west = compute(session=session, since=NOW - timedelta(days=30), until=NOW, zone=ZoneInfo("Pacific/Honolulu"))
        assert [(bar.week, bar.severity) for bar in west.weekly] == [
            (date(2026, 1, 5), Severity.SEV1), (date(2026, 1, 5), Severity.SEV2),
        ]  # fmt: skip


def test_no_incidents_gives_zeros_and_no_chart(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        empty = compute(session=session, since=NOW - timedelta(days=30), until=NOW, zone=UTC)
    assert empty.total == 0 and empty.metrics["time to resolve"] == Spread(0, None, None)
    assert render_chart(empty) is None


def test_private_incidents_are_counted_but_named_only_to_members(stats: Stats) -> None:
    assert [shown for _, shown in longest_shown(stats, lambda _: False)] == [True, True, False]
    assert [shown for _, shown in longest_shown(stats, lambda _: True)] == [True, True, True]
    data = stats.to_dict()
    assert data["longest_to_resolve"][2] == {"key": None, "title": "a private incident", "severity": "SEV1",
                                             "seconds": 3600}  # fmt: skip
    assert "Payroll" not in json.dumps(data)


# --- the chart ----------------------------------------------------------------------------------------------------


def _pixels(png: bytes) -> np.ndarray:
    return (imread(io.BytesIO(png), format="png")[..., :3] * 255).round().astype(int)


def _bar_heights(image: np.ndarray, colour: str) -> tuple[int, float]:
    """(tallest column of this exact colour in pixels, mean x of those pixels)."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    mask = (image == rgb).all(axis=2)
    if not mask.any():
        return 0, 0.0
    return int(mask.sum(axis=0).max()), float(np.nonzero(mask)[1].mean())


def test_the_chart_is_a_png_of_the_size_with_bars_as_tall_as_the_figures(stats: Stats) -> None:
    png = render_chart(stats)
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"
    image = _pixels(png)
    assert (image.shape[1], image.shape[0]) == CHART_SIZE
    sev1, sev1_x = _bar_heights(image, COLOURS[Severity.SEV1])  # week of 5 Jan: 100 min
    sev2, sev2_x = _bar_heights(image, COLOURS[Severity.SEV2])  # week of 12 Jan: 240 min
    assert sev1 > 50 and abs(sev2 / sev1 - 240 / 100) < 0.03
    assert sev1_x < sev2_x  # the earlier week is on the left
    assert _bar_heights(image, COLOURS[Severity.SEV3])[0] == 0  # nothing resolved: no bar, no legend entry
    assert _bar_heights(image, COLOURS[Severity.SEV4])[0] == 0


# --- sitrep stats -------------------------------------------------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path, sessions: sessionmaker[Session]) -> str:
    with sessions() as session:
        make_incidents(session)
        session.commit()
        return session.get_bind().url.render_as_string(hide_password=False)


def test_sitrep_stats_prints_the_figures_and_writes_the_chart(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the incidents were made at fixed dates in the past: a period that takes in all five, E too (resolve 10m)
    days = (datetime.now(UTC) - datetime(2025, 9, 1, tzinfo=UTC)).days + 2
    chart = tmp_path / "chart.png"
    assert cli(["stats", "--since", f"{days}d", "--database-url", database, "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    assert f"Incidents declared in the last {days}d" in out and ": 5, 4 resolved" in out
    assert "By severity: SEV1 2, SEV2 2, SEV3 1, SEV4 0" in out
    assert "  time to resolve: 1 h 40 min (p90 4 h), of 4" in out  # [10m, 60m, 140m, 240m]
    assert "Status updates on time: 1 of 4 (25%)" in out and "Action items done: 1 of 4" in out
    assert "a private incident (SEV1): 1 h" in out and "Payroll" not in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    monkeypatch.setenv("DATABASE_URL", database)
    assert cli(["stats", "--since", f"{days}d", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["incidents"] == 5 and data["by_severity"] == {"SEV1": 2, "SEV2": 2, "SEV3": 1, "SEV4": 0}
    assert data["metrics"]["time to resolve"] == {"count": 4, "median_seconds": 6000, "p90_seconds": 14400,
                                                  "median": "1 h 40 min", "p90": "4 h"}  # fmt: skip
    assert "Payroll" not in json.dumps(data)


def test_sitrep_stats_errors_are_one_line(database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["stats", "--since", "lately", "--database-url", database]) == 2
    assert capsys.readouterr().err.startswith("sitrep: --since: 'lately' is not a duration")
    assert cli(["stats", "--database-url", f"sqlite:///{tmp_path / 'empty.db'}"]) == 2
    assert "run `sitrep db upgrade` first" in capsys.readouterr().err


# --- /incident stats ------------------------------------------------------------------------------------------------


@pytest.fixture
def bot(database_url: str) -> Iterator[Harness]:
    from core.clock import FrozenClock

    with running_bot(database_url, clock=FrozenClock(NOW)) as harness:
        yield harness


def _stats_replies(bot: Harness, response: object, user: str = ALICE) -> list[str]:
    return [text for text in bot.answers(response, user=user) if "Incidents declared" in text]


@pytest.mark.e2e
def test_incident_stats_replies_privately_and_sends_the_chart_to_the_dm(bot: Harness) -> None:
    private = bot.fake.add_channel("inc-20260106-payroll", [BOB], is_private=True, bot_member=True)
    with bot.sitrep.deps.tx() as session:
        make_incidents(session, private_channel=private)

    [reply] = _stats_replies(bot, bot.command("stats 30d"))
    assert "*Incidents declared in the last 30d* (2025-12-21 to 2026-01-20): 4, 3 resolved" in reply
    assert "SEV1 2 · SEV2 1 · SEV3 1 · SEV4 0" in reply
    assert "• Time to resolve: 2 h 20 min (p90 4 h), of 3" in reply
    assert "*Status updates on time:* 1 of 4 (25%)" in reply and "*Action items done:* 1 of 3" in reply
    assert "• a private incident (SEV1): 1 h" in reply and "Payroll" not in reply
    assert "The chart of time to resolve per week is in your direct messages with sitrep" in reply
    [upload] = [m for m in bot.fake.dms(ALICE) if m.get("files")]
    [file] = upload["files"]
    content = bot.fake.files[file["id"]]["content"]
    assert file["name"] == "sitrep-time-to-resolve-30d.png" and content[:8] == b"\x89PNG\r\n\x1a\n"
    assert _pixels(content).shape[:2] == (CHART_SIZE[1], CHART_SIZE[0])

    # a member of the private incident's channel sees it named
    [reply] = _stats_replies(bot, bot.command("stats 30d", user=BOB), user=BOB)
    assert "• INC-2 SEV1 Payroll export leaked: 1 h" in reply

    # wrong periods are answered at once
    answers = bot.answers(bot.command("stats 2w"))
    assert any("`/incident stats 30d`, `/incident stats 90d` or `/incident stats 365d`" in a for a in answers)


@pytest.mark.e2e
def test_incident_stats_with_nothing_resolved_says_so_and_uploads_nothing(bot: Harness) -> None:
    [reply] = _stats_replies(bot, bot.command("stats"))
    assert "*Incidents declared in the last 30d*" in reply and ": 0" in reply
    assert "No chart: no incident of this period is resolved yet" in reply
    assert bot.fake.calls_to("files.completeUploadExternal") == []
