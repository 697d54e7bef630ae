"""The canonical incident export (SPEC §3) and the loader for both accepted shapes.

The canonical shape is that of `sample_incident_data.json` (incident, events, communications, impact, signals,
context, resolution, action_items, participants). The flat shape of `sample_incident_pir_data.json` is mapped
into it without inventing anything that is not in the file.

All timestamps are timezone-aware and normalised to UTC; a naive timestamp is an error naming the field.
Events are sorted by time (stable) and exact duplicates (same timestamp, type and description) are dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from core.enums import Priority, Severity


class ExportError(ValueError):
    """A bad incident export. The message is one line and starts with the field path."""


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError("timestamp has no time zone (add Z or an offset such as +02:00)")
    return value.astimezone(UTC)


def _dump_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc), PlainSerializer(_dump_utc, return_type=str)]
"""An aware datetime, converted to UTC, dumped as `2024-01-15T14:15:00Z`."""


def _parse_severity(value: Any) -> Any:
    if isinstance(value, str):
        return Severity.parse(value)
    return value


SeverityField = Annotated[
    Severity,
    BeforeValidator(_parse_severity),
    PlainSerializer(lambda s: s.label, return_type=str),
]


def _parse_priority(value: Any) -> Any:
    if isinstance(value, str):
        token = value.strip().upper()
        if token in {"P1", "P2", "P3"}:
            return Priority(token)
        raise ValueError(f"unknown priority {value.strip()}: use P1, P2 or P3")
    return value


PriorityField = Annotated[Priority, BeforeValidator(_parse_priority)]


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


class _Model(BaseModel):
    # Unknown keys are kept (and dumped again) so a round trip loses nothing.
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


class SeverityChange(_Model):
    at: UtcDatetime
    severity: SeverityField
    reason: str | None = None
    actor: str | None = None


class ExportIncident(_Model):
    title: str = Field(min_length=1)
    id: str | None = None
    key: str | None = None
    severity: SeverityField | None = None
    status: Annotated[str | None, BeforeValidator(_lower)] = None
    started_at: UtcDatetime | None = None
    declared_at: UtcDatetime | None = None
    resolved_at: UtcDatetime | None = None
    commander: str | None = None
    service: str | None = None
    affected_services: list[str] = Field(default_factory=list)
    description: str | None = None
    channel_id: str | None = None
    channel_name: str | None = None
    private: bool = False
    severity_history: list[SeverityChange] = Field(default_factory=list)
    roles: dict[str, str] = Field(default_factory=dict)

    @property
    def display_key(self) -> str:
        return self.key or self.id or ""

    @property
    def services(self) -> list[str]:
        """The main service first, then the affected ones, without repeats (order kept)."""
        seen: list[str] = []
        for name in [self.service, *self.affected_services]:
            if name and name not in seen:
                seen.append(name)
        return seen


EventSource = Literal["reaction", "pin", "shortcut", "command", "bot", "import"]
STATUS_WORDS = ("investigating", "identified", "monitoring", "resolved")


class ExportEvent(_Model):
    timestamp: UtcDatetime
    type: Annotated[str, BeforeValidator(_lower)] = Field(min_length=1)
    description: str = ""
    actor: str | None = None
    source: EventSource | None = None
    permalink: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("permalink")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s<>|()\[\]]+", value):
            raise ValueError("not an http(s) link")
        return value

    @property
    def announced_status(self) -> str | None:
        """The status a status update announces, or None when this event is not a status update."""
        if self.type in ("status_update", "communication"):
            status = self.metadata.get("status")
            if isinstance(status, str) and status.lower() in STATUS_WORDS:
                return status.lower()
        return None

    @property
    def mitigation_complete(self) -> bool:
        return self.metadata.get("mitigation_complete") is True

    def dedup_key(self) -> tuple[datetime, str, str]:
        return (self.timestamp, self.type, self.description)


class ExportCommunication(_Model):
    timestamp: UtcDatetime
    message: str
    channel: str | None = None
    audience: str | None = None


class ExportImpact(_Model):
    affected_users_percentage: float | None = Field(default=None, ge=0, le=100)
    revenue_impact: Annotated[Literal["none", "low", "medium", "high"] | None, BeforeValidator(_lower)] = None
    customer_facing: bool | None = None
    workaround_available: bool | None = None
    security_breach: bool | None = None
    data_loss: bool | None = None
    data_integrity_risk: bool | None = None
    revenue_systems_down: bool | None = None
    sla_or_regulatory: bool | None = None
    internal_only: bool | None = None
    degradation_type: str | None = None
    affected_regions: list[str] = Field(default_factory=list)
    customer_impact: str | None = None
    business_impact: str | None = None


class ExportCustomerImpact(_Model):
    affected_users: int | None = None
    failed_transactions: int | None = None
    revenue_impact_usd: float | None = None
    data_loss: bool | None = None


class FiveWhy(_Model):
    why: str
    answer: str


class ExportResolution(_Model):
    root_cause: str | None = None
    contributing_factors: list[str] = Field(default_factory=list)
    mitigation_steps: list[str] = Field(default_factory=list)
    permanent_fix: str | None = None
    customer_impact: ExportCustomerImpact | None = None
    five_whys: list[FiveWhy] = Field(default_factory=list)
    lessons: list[str] = Field(default_factory=list)


class ExportActionItem(_Model):
    title: str = Field(min_length=1)
    owner: str | None = None
    priority: PriorityField | None = None
    deadline: date | None = None
    type: str | None = None
    status: Annotated[str, BeforeValidator(_lower)] = "open"

    @field_validator("deadline", mode="before")
    @classmethod
    def _date_only(cls, value: Any) -> Any:
        # Accept a full timestamp too, but keep only its (UTC) date.
        if isinstance(value, str) and "T" in value:
            return _to_utc(datetime.fromisoformat(value.replace("Z", "+00:00"))).date()
        return value


class ExportParticipant(_Model):
    name: str = Field(min_length=1)
    role: str | None = None
    user_id: str | None = None


class IncidentExport(_Model):
    incident: ExportIncident
    events: list[ExportEvent] = Field(default_factory=list)
    communications: list[ExportCommunication] = Field(default_factory=list)
    impact: ExportImpact = Field(default_factory=ExportImpact)
    signals: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    resolution: ExportResolution = Field(default_factory=ExportResolution)
    action_items: list[ExportActionItem] = Field(default_factory=list)
    participants: list[ExportParticipant] = Field(default_factory=list)

    @model_validator(mode="after")
    def _normalise(self) -> IncidentExport:
        # Sorted by time (stable, so ties keep their order), exact duplicates dropped, history in order.
        seen: set[tuple[datetime, str, str]] = set()
        events: list[ExportEvent] = []
        for event in sorted(self.events, key=lambda e: e.timestamp):
            key = event.dedup_key()
            if key not in seen:
                seen.add(key)
                events.append(event)
        self.events = events
        self.communications = sorted(self.communications, key=lambda c: c.timestamp)
        self.incident.severity_history = sorted(self.incident.severity_history, key=lambda c: c.at)
        return self


# --------------------------------------------------------------------------------------------- loading


def _field_path(loc: tuple[int | str, ...], where: Mapping[tuple[int | str, ...], str] | None = None) -> str:
    path = ""
    for size in range(len(loc), 0, -1) if where else ():
        if loc[:size] in where:
            path, loc = where[loc[:size]], loc[size:]
            break
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _one_line(exc: ValidationError, where: Mapping[tuple[int | str, ...], str] | None = None) -> str:
    error = exc.errors(include_url=False)[0]
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error["type"] == "missing":
        message = "required field is missing"
    message = message[0].lower() + message[1:] if message else message
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{_field_path(tuple(error['loc']), where)}: {message}{suffix}"


def parse_export(data: Any, *, require_events: bool = True) -> IncidentExport:
    """Validate decoded JSON (either shape) into an IncidentExport; ExportError naming the field."""
    if not isinstance(data, Mapping):
        kind = "a list" if isinstance(data, list) else type(data).__name__
        raise ExportError(f"(top level): expected a JSON object (an incident export), got {kind}")
    where: dict[tuple[int | str, ...], str] = {}
    if "incident" not in data:
        data, where = _from_flat(data)
    try:
        export = IncidentExport.model_validate(data)
    except ValidationError as exc:
        raise ExportError(_one_line(exc, where)) from None
    if require_events and not export.events:
        raise ExportError("events: no events; a timeline or PIR needs at least one event (e.g. the declaration)")
    return export


def load_export(source: str | Path | TextIO, *, require_events: bool = True) -> IncidentExport:
    """Read an export from a path, `-` (standard input) or an open text stream."""
    name = "-"
    try:
        if isinstance(source, str | Path):
            name = str(source)
            if name == "-":
                import sys

                text = sys.stdin.read()
            else:
                text = Path(source).read_text(encoding="utf-8")
        else:
            name = getattr(source, "name", "-")
            text = source.read()
    except FileNotFoundError:
        raise ExportError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ExportError(f"{name}: is a directory, not an export file") from None
    except UnicodeDecodeError:
        raise ExportError(f"{name}: not UTF-8 text") from None
    except OSError as exc:
        raise ExportError(f"{name}: cannot read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(f"(file): not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    return parse_export(data, require_events=require_events)


def dump_export(export: IncidentExport) -> str:
    """The export as JSON in the canonical shape (`load_export` reads it back to an equal model)."""
    return export.model_dump_json(indent=2, exclude_none=True) + "\n"


# ------------------------------------------------------------------------------------- the flat shape

_RESPONDER = re.compile(r"^\s*(?P<name>.+?)\s+[-–—]\s+(?P<role>.+?)\s*$")


def _from_flat(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[tuple[int | str, ...], str]]:
    """Map the flat shape of `sample_incident_pir_data.json` onto the canonical one.

    Mapping (nothing is invented; absent data stays absent):
    incident_id -> incident.id; title, description, severity, status, affected_services as they are;
    start_time -> incident.started_at (impact start); end_time -> incident.resolved_at;
    incident_commander -> incident.commander and a participant; responders `Name - Role` -> participants;
    customer_impact / business_impact text -> impact.customer_impact / impact.business_impact;
    technical_details.root_cause -> resolution.root_cause; technical_details.affected_regions ->
    impact.affected_regions; lessons_learned_preview -> resolution.lessons; preliminary_action_items ->
    action items with no owner, priority or due date; communication_log -> communications and
    communication events; detection_details -> a detection event; response_details.war_room_established ->
    a note event; five_whys (when present) -> resolution.five_whys.
    """
    flat = dict(data)
    # canonical location prefix -> the flat field it came from, so errors name the field the user wrote
    where: dict[tuple[int | str, ...], str] = {
        ("incident", "id"): "incident_id",
        ("incident", "title"): "title",
        ("incident", "description"): "description",
        ("incident", "severity"): "severity",
        ("incident", "status"): "status",
        ("incident", "started_at"): "start_time",
        ("incident", "resolved_at"): "end_time",
        ("incident", "commander"): "incident_commander",
        ("incident", "affected_services"): "affected_services",
        ("impact", "customer_impact"): "customer_impact",
        ("impact", "business_impact"): "business_impact",
        ("impact", "affected_regions"): "technical_details.affected_regions",
        ("resolution", "root_cause"): "technical_details.root_cause",
        ("resolution", "lessons"): "lessons_learned_preview",
        ("resolution", "five_whys"): "five_whys",
        ("action_items",): "preliminary_action_items",
        ("participants",): "responders",
        ("communications",): "communication_log",
    }
    incident: dict[str, Any] = {
        "id": flat.get("incident_id"),
        "title": flat.get("title"),
        "description": flat.get("description"),
        "severity": flat.get("severity"),
        "status": flat.get("status"),
        "started_at": flat.get("start_time"),
        "resolved_at": flat.get("end_time"),
        "commander": flat.get("incident_commander"),
        "affected_services": flat.get("affected_services") or [],
    }
    incident = {k: v for k, v in incident.items() if v is not None}

    participants: list[Any] = []
    responders = flat.get("responders") or []
    if not isinstance(responders, list):
        responders = [responders]  # let validation name the wrong type
    for responder in responders:
        if isinstance(responder, str):
            match = _RESPONDER.match(responder)
            if match:
                participants.append({"name": match["name"], "role": match["role"]})
            else:
                participants.append({"name": responder.strip()})
        else:
            participants.append(responder)
    commander = flat.get("incident_commander")
    if (
        isinstance(commander, str)
        and commander
        and all(not (isinstance(p, dict) and p.get("name") == commander) for p in participants)
    ):
        where[("participants", len(participants))] = "incident_commander"
        participants.append({"name": commander, "role": "Incident Commander"})

    events: list[Any] = []
    detection = flat.get("detection_details")
    if isinstance(detection, Mapping) and detection.get("detection_time"):
        method = str(detection.get("detection_method") or "").replace("_", " ").strip()
        alert = str(detection.get("alert_source") or "").strip()
        text = "Detected"
        if method:
            text += f" by {method}"
        if alert:
            text += f": {alert}"
        where[("events", len(events))] = "detection_details"
        where[("events", len(events), "timestamp")] = "detection_details.detection_time"
        events.append(
            {
                "timestamp": detection["detection_time"],
                "type": "detection",
                "actor": "monitoring" if "monitor" in method else None,
                "description": text,
                "source": "import",
            }
        )
    response = flat.get("response_details")
    if isinstance(response, Mapping) and response.get("war_room_established"):
        where[("events", len(events))] = "response_details"
        where[("events", len(events), "timestamp")] = "response_details.war_room_established"
        events.append(
            {
                "timestamp": response["war_room_established"],
                "type": "note",
                "description": "War room established",
                "source": "import",
            }
        )

    communications: list[Any] = []
    log = flat.get("communication_log") or []
    for index, entry in enumerate(log if isinstance(log, list) else [log]):
        if not isinstance(entry, Mapping):
            communications.append(entry)
            continue
        communications.append(
            {
                "timestamp": entry.get("timestamp"),
                "message": entry.get("message"),
                "channel": entry.get("type") or entry.get("channel"),
                "audience": entry.get("audience"),
            }
        )
        if entry.get("timestamp") and entry.get("message"):
            where[("events", len(events))] = f"communication_log[{index}]"
            events.append(
                {
                    "timestamp": entry["timestamp"],
                    "type": "communication",
                    "description": f"{(entry.get('type') or 'message').replace('_', ' ')}: {entry['message']}",
                    "source": "import",
                    "metadata": {"channel": entry.get("type") or entry.get("channel")},
                }
            )

    impact: dict[str, Any] = {}
    for key in ("customer_impact", "business_impact"):
        if flat.get(key) is not None:
            impact[key] = flat[key]
    technical = flat.get("technical_details") if isinstance(flat.get("technical_details"), Mapping) else {}
    if technical.get("affected_regions"):
        impact["affected_regions"] = technical["affected_regions"]

    resolution: dict[str, Any] = {}
    if technical.get("root_cause"):
        resolution["root_cause"] = technical["root_cause"]
    if flat.get("lessons_learned_preview") is not None:
        resolution["lessons"] = flat["lessons_learned_preview"]
    if flat.get("five_whys") is not None:
        resolution["five_whys"] = flat["five_whys"]

    method = technical.get("resolution_method")
    if isinstance(method, str) and method:
        step = method.replace("_", " ").capitalize()
        if technical.get("rollback_target"):
            step += f" to {technical['rollback_target']}"
        if technical.get("rollback_duration"):
            step += f" (took {technical['rollback_duration']})"
        resolution["mitigation_steps"] = [step]

    # What has no place in the canonical shape is kept, untouched, under context.
    mapped = {
        "incident_id",
        "title",
        "description",
        "severity",
        "status",
        "start_time",
        "end_time",
        "incident_commander",
        "affected_services",
        "responders",
        "detection_details",
        "communication_log",
        "customer_impact",
        "business_impact",
        "lessons_learned_preview",
        "preliminary_action_items",
        "five_whys",
    }
    context = {key: value for key, value in flat.items() if key not in mapped}

    action_items: list[Any] = []
    preliminary = flat.get("preliminary_action_items") or []
    for item in preliminary if isinstance(preliminary, list) else [preliminary]:
        action_items.append({"title": item} if isinstance(item, str) else item)

    canonical = {
        "incident": incident,
        "events": events,
        "communications": communications,
        "impact": impact,
        "resolution": resolution,
        "action_items": action_items,
        "participants": participants,
        "context": context,
    }
    return canonical, where
