"""Timeline analysis (SPEC §9): phases that never flap, metrics between two named events, cadence kept.

Pure functions over an IncidentExport; the same input always gives the same output."""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.cadence import DEFAULT_CADENCE_TEXT, Cadence, format_duration, parse_cadence
from core.enums import Severity
from core.export import ExportEvent, IncidentExport

PHASES = ("detection", "triage", "investigation", "mitigation", "monitoring", "resolution")
BEFORE = "before the incident"
"""The phase of events logged before the impact began (before the first trigger, or the recorded start)."""

# An event's kind decides its phase first; a kind that says nothing of the phase lets its words decide.
_PHASE_OF_KIND = {
    "trigger": "detection",
    "detection": "detection",
    "alert": "detection",
    "declaration": "triage",
    "escalation": "triage",
    "investigation": "investigation",
    "mitigation": "mitigation",
    "resolution": "resolution",
}
_PHASE_OF_STATUS = {
    "investigating": "investigation",
    "identified": "mitigation",
    "monitoring": "monitoring",
    "resolved": "resolution",
}
_PHASE_OF_WORDS = (
    ("resolution", re.compile(r"\b(resolved|all clear|incident closed)\b", re.I)),
    ("monitoring", re.compile(r"\bmonitoring\b", re.I)),
    (
        "mitigation",
        re.compile(r"\b(roll(ed)?[ -]?back|mitigat\w*|hotfix|fix (deployed|applied)|failover|restart\w*)\b", re.I),
    ),
    ("investigation", re.compile(r"\b(investigat\w*|root cause|identified|looking into)\b", re.I)),
    ("triage", re.compile(r"\b(declared|paged|escalat\w*|war room|bridge)\b", re.I)),
    ("detection", re.compile(r"\b(alert\w*|detected|fired)\b", re.I)),
)


@dataclass(frozen=True)
class Moment:
    """One end of a metric: when, and which event it is (None when it comes from an incident field)."""

    at: datetime
    label: str
    event: ExportEvent | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, event: ExportEvent) -> Moment:
        return cls(event.timestamp, label(event), event)

    def to_dict(self) -> dict[str, Any]:
        return {"at": _iso(self.at), "event": self.label}


@dataclass(frozen=True)
class Metric:
    name: str
    duration: timedelta
    start: Moment
    end: Moment

    @property
    def start_event(self) -> ExportEvent | None:
        return self.start.event

    @property
    def end_event(self) -> ExportEvent | None:
        return self.end.event

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": int(self.duration.total_seconds()),
            "text": format_duration(self.duration),
            "from": self.start.to_dict(),
            "to": self.end.to_dict(),
        }


@dataclass(frozen=True)
class PhaseGroup:
    name: str
    events: list[ExportEvent]

    @property
    def start(self) -> datetime:
        return self.events[0].timestamp

    @property
    def end(self) -> datetime:
        return self.events[-1].timestamp


@dataclass(frozen=True)
class Gap:
    start: Moment
    end: Moment

    @property
    def duration(self) -> timedelta:
        return self.end.at - self.start.at

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": int(self.duration.total_seconds()), "text": format_duration(self.duration),
                "from": self.start.to_dict(), "to": self.end.to_dict()}  # fmt: skip


@dataclass(frozen=True)
class CadenceKept:
    """Status updates against the cadence of the severity in force: on time, late, missed periods."""

    on_time: int
    late: int
    missed: int
    longest_silence: Gap | None

    @property
    def due(self) -> int:
        return self.on_time + self.late + self.missed

    def to_dict(self) -> dict[str, Any]:
        return {
            "updates_on_time": self.on_time,
            "updates_late": self.late,
            "periods_missed": self.missed,
            "updates_due": self.due,
            "longest_silence": self.longest_silence.to_dict() if self.longest_silence else None,
        }


@dataclass(frozen=True)
class TimelineAnalysis:
    events: list[ExportEvent]
    phase_of: list[str]
    phases: list[PhaseGroup]
    metrics: list[Metric]
    cadence: CadenceKept | None
    gaps: list[Gap] = field(default_factory=list)

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "phases": [
                {
                    "name": group.name,
                    "start": _iso(group.start),
                    "end": _iso(group.end),
                    "events": [_event_dict(e) for e in group.events],
                }
                for group in self.phases
            ],
            "metrics": [m.to_dict() for m in self.metrics],
            "cadence": self.cadence.to_dict() if self.cadence else None,
            "gaps": [g.to_dict() for g in self.gaps],
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _event_dict(event: ExportEvent) -> dict[str, Any]:
    data: dict[str, Any] = {"at": _iso(event.timestamp), "type": event.type, "description": event.description}
    if event.actor:
        data["actor"] = event.actor
    return data


def label(event: ExportEvent, limit: int = 80) -> str:
    """A short name for an event in a metric: `detection: PagerDuty alert fired…`."""
    text = " ".join(event.description.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    kind = event.type.replace("_", " ")  # as the timeline names it: "status update", not "status_update"
    return f"{kind}: {text}" if text else kind


def phase_candidate(event: ExportEvent) -> str | None:
    status = event.announced_status
    if status:
        return _PHASE_OF_STATUS[status]
    if event.type in _PHASE_OF_KIND:
        return _PHASE_OF_KIND[event.type]
    for phase, words in _PHASE_OF_WORDS:
        if words.search(event.description):
            return phase
    return None


def assign_phases(events: list[ExportEvent], start: datetime | None = None) -> list[str]:
    """Each event's phase; phases only move forward, so none repeats and none flaps. Events before `start` (the
    impact start, when one is given) are "before the incident" and move no phase: a backup failing hours earlier
    does not open an investigation that swallows the trigger, the detection and the declaration."""
    current = 0
    result: list[str] = []
    for event in events:
        if start is not None and event.timestamp < start:
            result.append(BEFORE)
            continue
        candidate = phase_candidate(event)
        if candidate is not None:
            current = max(current, PHASES.index(candidate))
        result.append(PHASES[current])
    return result


def _first(events: list[ExportEvent], kind: str) -> ExportEvent | None:
    return next((e for e in events if e.type == kind), None)


def impact_start(export: IncidentExport) -> Moment | None:
    """When the impact began: the first trigger, else the recorded start, else (for the metrics) the declaration."""
    return given_impact_start(export) or declaration(export)


def given_impact_start(export: IncidentExport) -> Moment | None:
    """The impact start the data gives (a trigger event or a recorded start time); None when it gives none."""
    trigger = _first(export.events, "trigger")
    if trigger:
        return Moment.of(trigger)
    if export.incident.started_at:
        return Moment(export.incident.started_at, "impact start (recorded start time)")
    return None


def _event_or_field(export: IncidentExport, kind: str, field: datetime | None) -> Moment | None:
    """The first event of `kind`, else the incident's own timestamp for it, else nothing."""
    event = _first(export.events, kind)
    if event:
        return Moment.of(event)
    return Moment(field, f"{kind} (recorded time)") if field else None


def declaration(export: IncidentExport) -> Moment | None:
    return _event_or_field(export, "declaration", export.incident.declared_at)


def resolution(export: IncidentExport) -> Moment | None:
    return _event_or_field(export, "resolution", export.incident.resolved_at)


def _metric(name: str, start: Moment | None, end: Moment | None) -> Metric | None:
    if start is None or end is None or end.at < start.at:
        return None
    return Metric(name, end.at - start.at, start, end)


def severity_at(export: IncidentExport, moment: datetime) -> Severity | None:
    current = export.incident.severity_history[0].severity if export.incident.severity_history else None
    for change in export.incident.severity_history:
        if change.at <= moment:
            current = change.severity
    return current or export.incident.severity


def cadence_kept(export: IncidentExport, cadence: Cadence, *, now: datetime | None = None) -> CadenceKept | None:
    start = declaration(export)
    if start is None:
        return None
    end_moment = resolution(export)
    end = end_moment.at if end_moment else now
    if end is None:
        end = export.events[-1].timestamp if export.events else start.at
    updates = [e for e in export.events if e.announced_status and start.at <= e.timestamp <= end]
    if not updates and cadence.get(severity_at(export, start.at) or Severity.SEV3) is None:
        return None

    def period(at: datetime) -> timedelta | None:
        severity = severity_at(export, at)
        return cadence.get(severity) if severity else None

    # Status updates and severity changes re-arm the next due time (SPEC §7); a change is no update itself.
    changes = [c.at for c in export.incident.severity_history[1:] if start.at < c.at <= end]
    steps = sorted([(u.timestamp, 1, u) for u in updates] + [(at, 0, None) for at in changes], key=lambda s: s[:2])
    on_time = late = missed = 0
    last = start
    longest: Gap | None = None
    step = period(start.at)
    due = start.at + step if step else None
    for at, _, update in steps:
        if update is None:
            while due is not None and step and due < at:  # reminders that went unanswered before the change
                missed += 1
                due += step
        else:
            if due is not None and step:
                while at > due + step:  # whole periods with no update at all
                    missed += 1
                    due += step
                if at <= due:
                    on_time += 1
                else:
                    late += 1
            here = Moment.of(update)
            if longest is None or here.at - last.at > longest.duration:
                longest = Gap(last, here)
            last = here
        step = period(at)
        due = at + step if step else None
    while due is not None and step and due < end:  # periods after the last update, up to the end
        missed += 1
        due += step
    closing = end_moment or Moment(end, "end of the record")
    if longest is None or closing.at - last.at > longest.duration:
        longest = Gap(last, closing) if closing.at > last.at else longest
    return CadenceKept(on_time=on_time, late=late, missed=missed, longest_silence=longest)


def gaps(events: list[ExportEvent], top: int = 3) -> list[Gap]:
    """The `top` longest silences between consecutive events, longest first (ties: earliest first)."""
    times = [event.timestamp for event in events]
    spans = [(b - a, a, index) for index, (a, b) in enumerate(zip(times, times[1:], strict=False)) if b > a]
    longest = heapq.nsmallest(top, spans, key=lambda span: (-span[0], span[1]))
    return [Gap(Moment.of(events[i]), Moment.of(events[i + 1])) for _, _, i in longest]


def analyze(export: IncidentExport, *, cadence: Cadence | None = None, now: datetime | None = None) -> TimelineAnalysis:
    cadence = cadence if cadence is not None else parse_cadence(DEFAULT_CADENCE_TEXT)
    events = list(export.events)
    given = given_impact_start(export)
    phase_of = assign_phases(events, given.at if given else None)
    groups: list[PhaseGroup] = []
    for event, phase in zip(events, phase_of, strict=True):
        if groups and groups[-1].name == phase:
            groups[-1].events.append(event)
        else:
            groups.append(PhaseGroup(phase, [event]))

    start = impact_start(export)
    detection = _first(events, "detection")
    detected = Moment.of(detection) if detection else None
    mitigated_event = next((e for e in events if e.announced_status == "monitoring" or e.mitigation_complete), None)
    mitigated = Moment.of(mitigated_event) if mitigated_event else None
    metrics = [
        m
        for m in (
            _metric("time to detect", start, detected),
            _metric("time to declare", detected, declaration(export)),
            _metric("time to mitigate", start, mitigated),
            _metric("time to resolve", start, resolution(export)),
        )
        if m is not None
    ]
    return TimelineAnalysis(
        events=events,
        phase_of=phase_of,
        phases=groups,
        metrics=metrics,
        cadence=cadence_kept(export, cadence, now=now),
        gaps=gaps(events),
    )
