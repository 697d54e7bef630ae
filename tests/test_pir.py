"""The PIR model and its Markdown (SPEC §10): facts only, escaped user text, no reprs, the golden file."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.enums import Severity
from core.export import load_export, parse_export
from core.pir import build_pir, render_markdown
from core.severity import ImpactFacts, classify
from core.templating import escape_markdown, format_when, jinja_env

FIXTURES = Path(__file__).parent / "fixtures"
FULL = FIXTURES / "incident-commander" / "sample_incident_data.json"
FLAT = FIXTURES / "incident-commander" / "sample_incident_pir_data.json"
ALL = [FULL, FLAT, FIXTURES / "bot_export.json", FIXTURES / "minimal_open_incident.json"]
ALL += sorted((FIXTURES / "pir").glob("*.json"))  # the exports made for each class of issue 12
GOLDEN = Path(__file__).parent / "golden" / "sample_incident_pir.md"
REPRS = ("['", "{'", "None", "datetime.", "timedelta(")


def test_the_markdown_of_the_sample_matches_the_golden_file() -> None:
    """Regenerate with SITREP_UPDATE_GOLDEN=1 after a deliberate change, and read the diff."""
    text = render_markdown(build_pir(load_export(FULL)))
    if os.environ.get("SITREP_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_the_pir_model_of_the_sample() -> None:
    pir = build_pir(load_export(FULL))
    assert (pir.key, pir.severity, pir.status, pir.commander) == ("INC-2024-0142", "SEV1", "Resolved", "Jane Smith")
    assert [phase.name for phase in pir.phases] == [
        "detection",
        "triage",
        "investigation",
        "mitigation",
        "monitoring",
        "resolution",
    ]
    assert [m.name for m in pir.metrics] == ["time to detect", "time to declare", "time to mitigate", "time to resolve"]
    assert pir.root_cause and "ORM 3.2.0 opening 3x more connections" in pir.root_cause
    assert pir.five_whys == []  # none in the data, none invented
    assert pir.went_well == ["Detected 5 min after impact began.", "Declared 3 min after detection."]
    assert pir.went_badly == []  # imported: not judged against sitrep's cadence, and no filler
    assert pir.imported and pir.cadence_line is None
    assert [(f.what, f.exact) for f in pir.follow_up] == [("post-incident review meeting", True)]
    assert {m.name: m.duration.total_seconds() for m in pir.metrics} == {
        "time to detect": 300,
        "time to declare": 180,
        "time to mitigate": 3900,
        "time to resolve": 9000,
    }
    data = pir.to_dict()
    json.dumps(data)
    assert data["metrics"][0]["from"]["at"] == "2024-01-15T14:15:00Z"


def test_five_whys_appear_only_when_given() -> None:
    with_whys = render_markdown(build_pir(load_export(FIXTURES / "bot_export.json")))
    assert "## Five whys" in with_whys
    assert "1. **Why did logins fail?** Clients could not verify the certificate chain" in with_whys
    for fixture in (FULL, FLAT):
        assert "Five whys" not in render_markdown(build_pir(load_export(fixture)))


def test_a_missing_root_cause_is_left_to_the_commander_not_guessed() -> None:
    pir = build_pir(load_export(FIXTURES / "minimal_open_incident.json"))
    text = render_markdown(pir)
    assert pir.root_cause is None and "To be completed by Priya Nair." in text
    assert "It is not resolved yet." in text
    assert "## What went well" not in text  # no empty sections


def test_times_are_shown_in_the_zone_asked_for() -> None:
    text = render_markdown(build_pir(load_export(FULL), timezone="Europe/Berlin"))
    assert "| Impact began | 2024-01-15 15:15 CET |" in text
    assert "- **15:15** trigger" in text


def test_a_timeline_over_several_days_shows_dates() -> None:
    data = json.loads(FULL.read_text())
    data["events"][-1]["timestamp"] = "2024-01-16T09:00:00Z"
    text = render_markdown(build_pir(parse_export(data)))
    assert "- **2024-01-16 09:00** communication" in text


@pytest.mark.parametrize("fixture", ALL, ids=lambda p: p.stem)
def test_no_python_repr_in_any_rendering(fixture: Path) -> None:
    pir = build_pir(load_export(fixture))
    for text in (render_markdown(pir), json.dumps(pir.to_dict())):
        for bad in REPRS:
            assert bad not in text, bad


EVIL = "<!channel> <https://evil.example|click> & <@U0EVIL>"
# Fields that are not free text: times, enumerations, and the status word a status update carries.
NOT_TEXT = {"timestamp", "at", "started_at", "declared_at", "resolved_at", "deadline", "severity", "priority",
            "type", "source", "revenue_impact", "status", "metric", "postmortem_scheduled", "permalink",
            "start_time", "end_time", "detection_time", "war_room_established"}  # fmt: skip


def poison(value: Any, key: str = "") -> Any:
    """Every free-text string in an export replaced by EVIL (keys of `roles` kept)."""
    if isinstance(value, dict):
        return {k: poison(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [poison(v, key) for v in value]
    if isinstance(value, str) and key not in NOT_TEXT:
        return EVIL
    return value


@pytest.mark.parametrize("fixture", ALL, ids=lambda p: p.stem)
def test_every_user_text_field_is_escaped(fixture: Path) -> None:
    data = poison(json.loads(fixture.read_text()))
    if "incident" in data:
        data["incident"]["title"] = EVIL
    text = render_markdown(build_pir(parse_export(data)))
    assert not re.search(r"(?<!\\)<[!@/A-Za-z]", text), "no tag, autolink or Slack mention opens in the Markdown"
    assert "&amp;" not in text and "&lt;" not in text  # escaped for Markdown, not with HTML entities
    assert escape_markdown(EVIL) in text


def test_the_jinja_environment_is_strict_and_has_the_filters() -> None:
    env = jinja_env()
    assert env is jinja_env()
    assert {"slack", "cell", "md", "md_block", "duration", "when"} <= set(env.filters)
    assert env.from_string("{{ x | slack }}").render(x="a < b & c > d") == "a &lt; b &amp; c &gt; d"
    assert env.from_string("{{ x | cell }}").render(x="a | b\nc") == "a \\| b c"
    with pytest.raises(Exception, match="undefined"):
        env.from_string("{{ missing }}").render()
    assert format_when(None) == ""


def test_a_permalink_must_be_a_plain_link() -> None:
    data = json.loads((FIXTURES / "bot_export.json").read_text())
    data["events"][4]["permalink"] = "<!channel>"
    with pytest.raises(ValueError, match=r"^events\[4\]\.permalink: not an http\(s\) link"):
        parse_export(data)


# ------------------------------------------------------------------ issue 12: one export per class of input
CLASSES = FIXTURES / "pir"


def _md(name: str, **options: Any) -> str:
    return render_markdown(build_pir(load_export(CLASSES / name), **options))


def _section(text: str, heading: str) -> str:
    """The text of one `## heading` section."""
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_1_zeros_that_contradict_other_figures_are_left_out() -> None:
    """8% of users next to 0 users, "high" next to $0, 0 failed on a full outage: only the real figures stay."""
    pir = build_pir(load_export(CLASSES / "zeros_and_defaults.json"))
    text = render_markdown(pir)
    assert "8% of users were affected" in text and "Revenue impact: high." in text
    for contradiction in ("0 users", "$0", "0 transactions", "transactions failed"):
        assert contradiction not in text, contradiction
    assert len(pir.impact_not_reported) == 3  # said in the JSON, not printed as facts
    from handlers.pir_blocks import summary_blocks

    slack = json.dumps(summary_blocks(pir))
    assert "8% of users were affected for 1 h, until resolution" in slack and "Revenue impact: high." in slack
    assert "$0" not in slack and "0 users" not in slack and "0 transactions" not in slack


def test_2_data_loss_says_what_was_lost_how_many_and_how_long_everywhere() -> None:
    from handlers.pir_blocks import summary_blocks

    pir = build_pir(load_export(CLASSES / "data_loss.json"))
    text = render_markdown(pir)
    lost = "“Orders written between 02:05 and 02:10 UTC were lost: 1,240 orders are not in the new primary”"
    for part in (_section(text, "Summary"), _section(text, "Impact")):
        assert f"Data was lost: {lost}." in part
        assert "3% of users" in part and "1 h 30 min" in part
    assert "Data was lost.\n" not in text
    blocks = summary_blocks(pir)
    impact = next(b["text"]["text"] for b in blocks if b.get("text", {}).get("text", "").startswith("*Impact*"))
    assert "3% of users were affected for 1 h 30 min, until mitigation" in impact and "1,240 orders" in impact
    assert len(blocks) <= 50 and all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)


def test_3_the_flat_shape_feeds_figures_from_its_words_and_keeps_response_figures() -> None:
    export = load_export(CLASSES / "flat_text_figures.json")
    result = classify(ImpactFacts.from_export(export))
    assert result.severity is Severity.SEV1
    assert "30% of users affected (25% to 75%) gives SEV2" in result.reasons[0]
    assert "“About 30% of customers could not upload photos”" in result.reasons[0]
    assert any("“340 files written between 10:00 and 10:20 were lost”" in r for r in result.reasons)
    assert any("$12,000" in r and "“Refunds and credits estimated at $12k”" in r for r in result.reasons)
    text = render_markdown(build_pir(export))
    metrics = _section(text, "Metrics")
    for row in (
        "| Time to detect | 12 minutes |",
        "| Time to respond | 3 minutes |",
        "| Time to escalate | 20 minutes |",
        "| Executives notified | yes |",
        "| Status page updated | no |",
    ):
        assert row in metrics, row  # fmt: skip
    assert "Peak error rate 31%; normal error rate 0.2%." in _section(text, "Impact")
    assert build_pir(export).to_dict()["reported_metrics"][1] == {"name": "Time to respond", "value": "3 minutes"}


def test_4_peoples_text_cannot_rewrite_the_markdown() -> None:
    text = _md("hostile_text.json")
    ours = [line for line in text.splitlines() if line.startswith("#")]
    assert ours == [
        "# Post-incident review: \\# Not a heading \\[click\\](http://evil.example)",
        "## Summary", "## Timeline", "### Triage (09:00 to 09:20)", "### Resolution (10:00)", "## Metrics",
        "## Root cause", "## Lessons", "## Action items",
    ]  # fmt: skip
    cause = _section(text, "Root cause").split("**Contributing factors**")[0]
    assert not re.search(r"^[ \t]*(>|[-+*] |\d+[.)] |```|~~~|={3,}|    \S)", cause, re.M)
    assert "A config \\`\\`\\`python\nimport os\n" in cause and "\n\\## Root cause again" in cause
    assert "```" not in text.replace("\\`", "")  # no fence opens
    assert not re.search(r"(?<!\\)\[[^\]]*(?<!\\)\]\(http", text)  # no live link or image from people
    assert not re.search(r"(?<!\\)<[A-Za-z!/]", text)  # no HTML, no autolink
    assert "error rate >5% & <0.1% of \\_all\\_ \\*\\*requests\\*\\*" in text  # reads as written
    assert "&gt;" not in text and "&lt;" not in text and "\\&amp; entity" in text


def test_5_times_in_a_span_across_midnight_carry_their_dates_and_durations_keep_their_units() -> None:
    from handlers.pir_blocks import summary_blocks

    pir = build_pir(load_export(CLASSES / "multi_day_offsets.json"), timezone="Asia/Kolkata")
    text = render_markdown(pir)
    assert "| Duration | 2 d 7 h 40 min |" in text
    assert "the longest silence was 1 d 12 h 53 min, from 2025-07-02 18:14 to 2025-07-04 07:07." in text
    assert "### Triage (2025-07-01 23:27)" in text and "- **2025-07-02 00:30** status update" in text
    fields = json.dumps(summary_blocks(pir), ensure_ascii=False)
    assert "2 d 7 h 40 min (2025-07-01 23:27 → 2025-07-04 07:07)" in fields
    assert not re.search(r"\(\d\d:\d\d → \d\d:\d\d\)", fields)


def test_6_no_follow_up_dates_are_invented() -> None:
    for name in ("data_loss.json", "multi_day_offsets.json", "zeros_and_defaults.json"):
        assert "## Follow-up" not in _md(name), name
    text = render_markdown(build_pir(load_export(FULL)))
    assert _section(text, "Follow-up").strip() == "- 2024-01-17 10:00 UTC: post-incident review meeting"


def test_7_judgements_are_facts_of_the_data_only() -> None:
    flat = build_pir(load_export(FLAT))
    assert flat.imported and "Rollback procedure worked effectively - 7 minute rollback time." in flat.went_well
    assert "Load testing didn't include realistic database query patterns." in flat.went_badly
    for pir in (flat, build_pir(load_export(FULL)), build_pir(load_export(CLASSES / "data_loss.json"))):
        lines = pir.went_well + pir.went_badly
        assert not any("status updates" in line or "root cause" in line.lower() for line in lines), lines
    live = build_pir(load_export(CLASSES / "multi_day_offsets.json"))
    assert not live.imported and live.went_badly[0].startswith("1 of 14 status updates on time")


def test_8_events_before_the_trigger_are_before_the_incident() -> None:
    pir = build_pir(load_export(CLASSES / "early_event.json"))
    assert [(p.name, [line.kind for line in p.lines]) for p in pir.phases] == [
        ("before the incident", ["investigation"]),
        ("detection", ["trigger", "detection"]),
        ("triage", ["declaration"]),
        ("investigation", ["investigation"]),
        ("mitigation", ["mitigation"]),
        ("resolution", ["resolution"]),
    ]
    assert "### Before the incident (03:00)\n\n- **03:00** investigation · backup-bot:" in render_markdown(pir)


def test_9_a_long_incident_shows_its_key_events_and_the_full_timeline_in_an_appendix() -> None:
    start = datetime(2025, 10, 1, 8, 0, tzinfo=UTC)
    events = [
        {"timestamp": start.isoformat(), "type": "trigger", "description": "Errors"},
        {"timestamp": (start + timedelta(minutes=1)).isoformat(), "type": "declaration", "description": "SEV2"},
    ]
    for i in range(3000):
        kind = ("note", "investigation", "mitigation")[i % 3]
        events.append(
            {
                "timestamp": (start + timedelta(minutes=2, seconds=5 * i)).isoformat(),
                "type": kind,
                "description": f"Step {i:04d}",
            }
        )
    events.append({"timestamp": (start + timedelta(hours=6)).isoformat(), "type": "resolution", "description": "Done"})
    pir = build_pir(parse_export({"incident": {"title": "Long", "severity": "SEV2"}, "events": events}))
    text = render_markdown(pir)
    body, appendix = text.split("\n## Appendix: full timeline\n")
    shown = re.findall(r"^- \*\*", _section(body, "Timeline"), re.M)
    assert pir.trimmed and 90 <= len(shown) <= 100
    assert "The 100 key events of 3,003 (state changes" in body
    assert all(f"Step {i:04d}" in appendix for i in range(3000)) and "- **14:00** resolution: Done" in body
    assert all("mitigation" in line or "trigger" in line or "declaration" in line or "resolution" in line
               for line in re.findall(r"^- .*$", _section(body, "Timeline"), re.M))  # fmt: skip
    assert len(body.encode()) < 100_000


def test_10_root_cause_once_declared_not_impact_began_and_one_point_phases() -> None:
    text = render_markdown(build_pir(load_export(FULL)))
    assert text.count("ORM 3.2.0 opening 3x more connections") == 1
    live = _md("live_no_impact_start.json")
    assert "Impact began" not in live and "| Declared | 2025-09-02 14:23 UTC |" in live
    assert "It was declared SEV3 by Kai Moreno at 2025-09-02 14:23 UTC." in live
    assert "### Triage (14:23)\n" in live and "14:23 to 14:23" not in live
