"""The incident export: both shapes load, errors name the field, timestamps end up in UTC, round trips."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from core import store
from core.cadence import DEFAULT_CADENCE_TEXT, parse_cadence
from core.clock import FrozenClock
from core.db import transaction
from core.enums import Priority, Severity
from core.export import ExportError, IncidentExport, dump_export, load_export, parse_export
from core.incident_export import export_incident
from core.pir import build_pir, render_markdown

FIXTURES = Path(__file__).parent / "fixtures"
FULL = FIXTURES / "incident-commander" / "sample_incident_data.json"
FLAT = FIXTURES / "incident-commander" / "sample_incident_pir_data.json"
ALL = [FULL, FLAT, FIXTURES / "bot_export.json", FIXTURES / "minimal_open_incident.json"]


def sample() -> dict:  # type: ignore[type-arg]
    return json.loads(FULL.read_text())


def test_the_full_sample_loads_with_its_facts() -> None:
    export = load_export(FULL)
    assert export.incident.severity is Severity.SEV1
    assert export.incident.declared_at == datetime(2024, 1, 15, 14, 23, tzinfo=UTC)
    assert len(export.events) == 18 and export.events[0].type == "trigger"
    assert [e.announced_status for e in export.events if e.announced_status] == [
        "investigating",
        "identified",
        "monitoring",
        "resolved",
    ]
    assert export.impact.affected_users_percentage == 45 and export.impact.revenue_impact == "high"
    assert [(p.name, p.role) for p in export.participants][0] == ("Jane Smith", "Incident Commander")
    assert export.action_items[0].priority is Priority.P1 and export.action_items[0].deadline == date(2024, 1, 22)
    assert export.incident.services == ["payment-gateway", "checkout", "subscription-billing"]


def test_the_flat_shape_is_mapped_without_inventing_anything() -> None:
    export = load_export(FLAT)
    incident = export.incident
    assert incident.id == "INC-2024-0315-001" and incident.severity is Severity.SEV2
    assert incident.started_at == datetime(2024, 3, 15, 14, 30, tzinfo=UTC)
    assert incident.resolved_at == datetime(2024, 3, 15, 15, 35, tzinfo=UTC)
    assert incident.declared_at is None  # the flat shape records no declaration
    assert ("Tom Wilson", "Database Team Lead") in [(p.name, p.role) for p in export.participants]
    assert len(export.participants) == 5  # the commander is among the responders already
    assert export.resolution.root_cause and export.resolution.root_cause.startswith("Inefficient database query")
    assert export.resolution.five_whys == []
    assert export.resolution.lessons[-1] == "Rollback procedure worked effectively - 7 minute rollback time"
    assert [(a.title, a.owner, a.priority, a.deadline) for a in export.action_items][0] == (
        "Fix inefficient query for v2.3.2 deployment",
        None,
        None,
        None,
    )
    assert [e.type for e in export.events] == ["detection", "note", "communication", "communication"]
    assert export.impact.customer_impact and export.impact.customer_impact.startswith("80% of users")
    assert export.impact.affected_users_percentage is None  # not parsed out of prose
    assert export.context["response_details"]["time_to_response"] == "5 minutes"  # kept, not lost
    # ... and mapped where the PIR reads them (issue 12)
    assert (export.response.time_to_respond, export.response.time_to_escalate) == ("5 minutes", "10 minutes")
    assert (export.response.executives_notified, export.response.status_page_updated) == (False, True)
    assert export.response.time_to_detect == "immediate"
    assert export.impact.error_metrics["peak_error_rate"] == "45%"


@pytest.mark.parametrize("fixture", ALL, ids=lambda p: p.stem)
def test_an_export_round_trips(fixture: Path) -> None:
    first = load_export(fixture)
    text = dump_export(first)
    again = load_export(io.StringIO(text))
    assert again == first
    assert dump_export(again) == text
    assert "incident" in json.loads(text)


def test_offsets_are_converted_to_utc() -> None:
    export = load_export(FIXTURES / "bot_export.json")
    assert export.incident.started_at == datetime(2024, 6, 10, 6, 2, tzinfo=UTC)
    assert '"started_at": "2024-06-10T06:02:00Z"' in dump_export(export)


def test_events_are_sorted_stably_and_exact_duplicates_dropped() -> None:
    data = sample()
    events = data["events"]
    same_time = {**events[1], "description": "Another alert at the same minute"}
    data["events"] = [*reversed(events), events[3], same_time]
    export = parse_export(data)
    assert [e.timestamp for e in export.events] == sorted(e.timestamp for e in export.events)
    assert len(export.events) == len(events) + 1  # the exact duplicate went, the same-minute event stayed
    assert [e.description for e in export.events[1:3]] == [
        "PagerDuty alert fired: payment-gateway error rate >5% (current: 8.2%)",
        "Another alert at the same minute",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["events"][3].update(timestamp="2024-01-15T14:23:00"),
            "events[3].timestamp: timestamp has no time zone",
        ),
        (lambda d: d["events"][0].update(timestamp="yesterday"), "events[0].timestamp:"),
        (lambda d: d.update(events="many"), "events: input should be a valid list"),
        (lambda d: d["incident"].update(severity="critical"), "incident.severity: unknown severity"),
        (lambda d: d["incident"].pop("title"), "incident.title: required field is missing"),
        (lambda d: d["impact"].update(affected_users_percentage=140), "impact.affected_users_percentage:"),
        (lambda d: d["impact"].update(revenue_impact="huge"), "impact.revenue_impact:"),
        (lambda d: d["action_items"][2].update(priority="urgent"), "action_items[2].priority: unknown priority"),
        (lambda d: d["action_items"][0].update(deadline="soon"), "action_items[0].deadline:"),
        (lambda d: d.update(events=[]), "events: no events"),
    ],
)
def test_errors_are_one_line_naming_the_field(change, message: str) -> None:  # type: ignore[no-untyped-def]
    data = sample()
    change(data)
    with pytest.raises(ExportError) as caught:
        parse_export(data)
    text = str(caught.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_flat_shape_errors_name_the_flat_field() -> None:
    data = json.loads(FLAT.read_text())
    data["start_time"] = "2024-03-15 14:30"
    with pytest.raises(ExportError, match=r"^start_time: timestamp has no time zone"):
        parse_export(data)
    data = json.loads(FLAT.read_text())
    data["communication_log"][1]["timestamp"] = "2024-03-15T15:35:00"
    with pytest.raises(ExportError, match=r"^communication_log\[1\]\.timestamp: timestamp has no time zone"):
        parse_export(data)


def test_file_errors() -> None:
    with pytest.raises(ExportError, match="no such file"):
        load_export("/nonexistent/incident.json")
    with pytest.raises(ExportError, match="not JSON"):
        load_export(io.StringIO("{"))
    with pytest.raises(ExportError, match="expected a JSON object"):
        load_export(io.StringIO("[]"))
    assert issubclass(ExportError, ValueError)


def test_a_model_built_in_code_is_normalised_too() -> None:
    export = IncidentExport.model_validate(
        {
            "incident": {
                "title": "Built by the bot",
                "key": "INC-3",
                "severity": "sev2",
                "roles": {"commander": "Ann"},
            },
            "events": [
                {"timestamp": "2024-01-01T10:05:00Z", "type": "Note", "description": "later", "source": "reaction"},
                {"timestamp": "2024-01-01T10:00:00+01:00", "type": "declaration", "source": "command"},
            ],
        }
    )
    assert [e.type for e in export.events] == ["declaration", "note"]
    assert export.events[0].timestamp == datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
    assert export.incident.display_key == "INC-3"


def test_an_unticked_box_of_the_declare_form_is_exported_as_not_reported(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    """Issue 12: "no data lost" is said only when someone said it; an unticked box is the form's default."""
    impact = {"users_affected_pct": 30, "customer_facing": True, "data_loss": False, "security_breach": False,
              "revenue_systems_down": False, "sla_or_regulatory": False, "workaround_available": False}  # fmt: skip
    with transaction(sessions) as session:
        incident = store.declare(
            session=session,
            title="Checkout errors",
            severity=Severity.SEV2,
            declared_by="U1",
            now=clock.now(),
            cadence=parse_cadence(DEFAULT_CADENCE_TEXT),
            impact=impact,
        )
    with sessions() as session:
        incident = store.incident_by_key(session=session, key=incident.key or "")
        export = export_incident(session=session, incident=incident)
    assert export.impact.affected_users_percentage == 30 and export.impact.workaround_available is False
    assert (export.impact.data_loss, export.impact.security_breach, export.impact.revenue_systems_down) == (None,) * 3
    text = render_markdown(build_pir(export))
    assert "30% of users were affected." in text and "No workaround was available." in text
    assert "data was lost" not in text.lower()
