"""The PIR model and its Markdown (SPEC §10): facts only, escaped user text, no reprs, the golden file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from core.export import load_export, parse_export
from core.pir import build_pir, render_markdown
from core.templating import escape_slack, format_when, jinja_env

FIXTURES = Path(__file__).parent / "fixtures"
FULL = FIXTURES / "incident-commander" / "sample_incident_data.json"
FLAT = FIXTURES / "incident-commander" / "sample_incident_pir_data.json"
ALL = [FULL, FLAT, FIXTURES / "bot_export.json", FIXTURES / "minimal_open_incident.json"]
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
    assert "Detected 5 min after impact began." in pir.went_well
    assert pir.went_badly == [
        "2 of 9 status updates on time (the SEV1 cadence is every 15 min); "
        "the longest silence was 1 h 25 min, from 15:20 to 16:45."
    ]
    assert pir.follow_up[0].what == "post-incident review meeting" and pir.follow_up[0].exact
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
    assert "<!channel>" not in text and "<https://" not in text and "<@U0EVIL>" not in text
    assert "& " not in text.replace("&amp; ", "")
    assert escape_slack(EVIL) in text


def test_the_jinja_environment_is_strict_and_has_the_filters() -> None:
    env = jinja_env()
    assert env is jinja_env()
    assert {"slack", "cell", "duration", "when"} <= set(env.filters)
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
