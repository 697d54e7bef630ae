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
from functools import cached_property
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
from core.export_flat import from_flat


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

    @cached_property  # read for every event by the analysis, the PIR and its key events; the event does not change
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
    error_metrics: dict[str, Any] = Field(default_factory=dict)  # as reported, e.g. {"peak_error_rate": "45%"}


class ExportResponse(_Model):
    """How the response went, as the export reports it (figures in its own words, e.g. "5 minutes"); the PIR
    shows them next to the metrics it measures from the timeline, never instead of them."""

    time_to_detect: str | None = None
    time_to_respond: str | None = None
    time_to_escalate: str | None = None
    time_to_resolve: str | None = None
    executives_notified: bool | None = None
    status_page_updated: bool | None = None

    @field_validator("time_to_detect", "time_to_respond", "time_to_escalate", "time_to_resolve", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


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
    tracker: str | None = None  # where it is tracked, e.g. "Jira OPS-12 (In Progress)"

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
    response: ExportResponse = Field(default_factory=ExportResponse)
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
        data, where = from_flat(data)
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
