"""Timeline analysis (SPEC §9): phases that never flap, metrics between two events, cadence kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.cadence import parse_cadence
from core.export import load_export, parse_export
from core.timeline import PHASES, analyze

FIXTURES = Path(__file__).parent / "fixtures"
FULL = FIXTURES / "incident-commander" / "sample_incident_data.json"


def at(hhmm: str) -> datetime:
    hours, minutes = hhmm.split(":")
    return datetime(2024, 1, 15, int(hours), int(minutes), tzinfo=UTC)


def export_of(events: list[tuple[str, str, str]], **incident: object):  # type: ignore[no-untyped-def]
    return parse_export(
        {
            "incident": {"title": "Test", "severity": "sev2", **incident},
            "events": [{"timestamp": f"2024-01-15T{t}:00Z", "type": k, "description": d} for t, k, d in events],
        }
    )


def test_the_sample_metrics_each_with_their_two_events() -> None:
    analysis = analyze(load_export(FULL))
    found = {m.name: (m.duration, m.start.at, m.end.at, m.start_event, m.end_event) for m in analysis.metrics}
    detect = found["time to detect"]
    assert detect[:3] == (timedelta(minutes=5), at("14:15"), at("14:20"))
    assert detect[3] is not None and detect[3].type == "trigger"
    assert detect[4] is not None and detect[4].description.startswith("PagerDuty alert fired")
    assert found["time to declare"][:3] == (timedelta(minutes=3), at("14:20"), at("14:23"))
    assert found["time to declare"][4].type == "declaration"  # type: ignore[union-attr]
    assert found["time to resolve"][:3] == (timedelta(hours=2, minutes=30), at("14:15"), at("16:45"))
    assert found["time to resolve"][4].type == "resolution"  # type: ignore[union-attr]
    # the first status update saying "monitoring" ends the time to mitigate
    assert found["time to mitigate"][:3] == (timedelta(hours=1, minutes=5), at("14:15"), at("15:20"))


def test_the_sample_goes_through_the_six_phases_once_each_in_order() -> None:
    analysis = analyze(load_export(FULL))
    assert [group.name for group in analysis.phases] == list(PHASES)
    assert sum(len(group.events) for group in analysis.phases) == 18


def test_phases_never_go_back_even_when_the_words_do() -> None:
    export = export_of(
        [
            ("09:00", "alert", "High CPU detected"),
            ("09:05", "note", "Engineer investigating high CPU alerts"),
            ("09:10", "mitigation", "Deployed hotfix to reduce CPU usage"),
            ("09:12", "detection", "Another alert fired"),  # an old kind late on: stays in mitigation
            ("09:15", "note", "Investigating whether the fix holds"),
            ("09:25", "note", "CPU back to normal; monitoring"),
            ("09:30", "note", "All clear, incident resolved"),
            ("09:31", "note", "Alert detected again on one host"),
        ]
    )
    names = [group.name for group in analyze(export).phases]
    assert names == ["detection", "investigation", "mitigation", "monitoring", "resolution"]
    assert len(names) == len(set(names))


def test_status_words_from_metadata_decide_the_phase() -> None:
    export = parse_export(
        {
            "incident": {"title": "T"},
            "events": [
                {"timestamp": "2024-01-15T10:00:00Z", "type": "declaration"},
                {"timestamp": "2024-01-15T10:10:00Z", "type": "status_update", "metadata": {"status": "monitoring"}},
            ],
        }
    )
    assert analyze(export).phase_of == ["triage", "monitoring"]


def test_a_metric_whose_end_is_missing_is_left_out_never_zero() -> None:
    export = export_of([("10:00", "declaration", "Declared"), ("10:30", "note", "Looking at logs")])
    analysis = analyze(export)
    assert analysis.metrics == []
    assert all(m.duration > timedelta(0) for m in analyze(load_export(FULL)).metrics)


def test_impact_start_falls_back_to_the_recorded_start_then_the_declaration() -> None:
    events = [("10:05", "detection", "Alert"), ("10:10", "declaration", "Declared"), ("11:00", "resolution", "Done")]
    with_start = analyze(export_of(events, started_at="2024-01-15T10:01:00Z"))
    assert with_start.metric("time to detect").duration == timedelta(minutes=4)  # type: ignore[union-attr]
    without = analyze(export_of(events))
    assert without.metric("time to detect") is None  # declaration after detection: no negative duration
    assert without.metric("time to resolve").duration == timedelta(minutes=50)  # type: ignore[union-attr]


def test_an_event_marked_mitigation_complete_ends_the_time_to_mitigate() -> None:
    export = load_export(FIXTURES / "bot_export.json")
    metric = analyze(export).metric("time to mitigate")
    assert metric is not None and metric.duration == timedelta(minutes=32)
    assert metric.end_event is not None and metric.end_event.metadata == {"mitigation_complete": True}


def test_cadence_kept_on_the_sample() -> None:
    kept = analyze(load_export(FULL)).cadence
    assert kept is not None
    # SEV1, every 15 min from the declaration at 14:23: 14:30 and 14:45 on time; none by 15:00 or 15:15
    # (the first missed period, then 15:20 late); then 15:35 .. 16:35 pass with no update before 16:45.
    assert (kept.on_time, kept.late, kept.missed, kept.due) == (2, 1, 6, 9)
    silence = kept.longest_silence
    assert silence is not None and (silence.start.at, silence.end.at) == (at("15:20"), at("16:45"))


def test_cadence_follows_the_map_and_severity_changes() -> None:
    export = load_export(FIXTURES / "bot_export.json")
    kept = analyze(export, cadence=parse_cadence("sev1=2h,sev2=2h")).cadence
    assert kept is not None and (kept.on_time, kept.late, kept.missed) == (2, 0, 0)
    data = json.loads((FIXTURES / "bot_export.json").read_text())
    data["events"] = [e for e in data["events"] if e["type"] != "status_update"]
    kept = analyze(parse_export(data), cadence=parse_cadence("sev1=30m,sev2=1h")).cadence
    # SEV2 (1 h) from 06:09; SEV1 (30 min) from 06:20: due 06:50, 07:20, resolved 07:40
    assert kept is not None and (kept.on_time, kept.missed) == (0, 2)
    assert analyze(export, cadence=parse_cadence("sev1=off,sev2=off")).cadence.due == 0  # type: ignore[union-attr]


def test_gaps_are_the_longest_silences_longest_first() -> None:
    gaps = analyze(load_export(FULL)).gaps
    assert [(g.start.at, g.end.at) for g in gaps] == [
        (at("15:30"), at("16:30")),
        (at("15:00"), at("15:15")),
        (at("16:30"), at("16:45")),
    ]


def test_to_dict_is_json_with_no_reprs() -> None:
    text = json.dumps(analyze(load_export(FULL)).to_dict())
    assert '"name": "time to detect", "seconds": 300, "text": "5 min"' in text
    for bad in ("None", "datetime.", "['"):
        assert bad not in text
