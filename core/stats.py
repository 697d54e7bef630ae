"""Incident statistics (SPEC §14): incidents by severity, median and p90 of the §9 metrics, status updates on
time, action items done, and time to resolve per week by severity. Pure over a session: four aggregate queries,
whatever the number of incidents and entries, then arithmetic in Python.

The metrics follow core.timeline (SPEC §9), read from stored timeline entries:
- impact start: the first trigger entry, else the declaration;
- declaration: the first declaration entry, else the incident's declared_at;
- time to detect: impact start -> first detection entry;
- time to declare: first detection entry -> declaration;
- time to mitigate: impact start -> first status update announcing `monitoring`;
- time to resolve: impact start -> first resolution entry, else resolved_at.
A metric whose end is missing, or comes before its start, is left out (never counted as 0). Incidents are
those declared in the window; a private incident counts like any other but is named only where the caller
lets it be (`IncidentFigures.private`)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.cadence import format_duration
from core.enums import EntryKind, IncidentStatus, Phase, Severity
from core.models import ActionItem, Incident, StatusUpdate, TimelineEntry, UTCDateTime

METRICS = ("time to detect", "time to declare", "time to mitigate", "time to resolve")
LONGEST = 3  # incidents named as the longest to resolve


@dataclass(frozen=True)
class Spread:
    """Median and 90th percentile (nearest rank: the smallest value with 90% of values at or below it)."""

    count: int
    median: timedelta | None
    p90: timedelta | None

    @classmethod
    def of(cls, values: list[timedelta]) -> Spread:
        if not values:
            return cls(0, None, None)
        ordered = sorted(values)
        median = timedelta(seconds=statistics.median(v.total_seconds() for v in ordered))
        return cls(len(ordered), median, ordered[math.ceil(0.9 * len(ordered)) - 1])

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "median_seconds": _seconds(self.median), "p90_seconds": _seconds(self.p90),
                "median": _text(self.median), "p90": _text(self.p90)}  # fmt: skip


@dataclass(frozen=True)
class IncidentFigures:
    key: str
    title: str
    severity: Severity
    private: bool
    channel_id: str | None
    declared_at: datetime
    durations: dict[str, timedelta]  # metric name -> duration, only those measured


@dataclass(frozen=True)
class WeekBar:
    week: date  # the Monday the week starts on (in the zone given)
    severity: Severity
    median_resolve: timedelta
    count: int


@dataclass(frozen=True)
class Stats:
    since: datetime
    until: datetime
    by_severity: dict[Severity, int]
    resolved: int
    metrics: dict[str, Spread]
    updates_on_time: int
    updates_due: int
    items_done: int
    items_total: int
    weekly: list[WeekBar] = field(default_factory=list)
    weeks: list[date] = field(default_factory=list)  # every week of the window, those with no bar too
    longest: list[IncidentFigures] = field(default_factory=list)  # longest to resolve first

    @property
    def total(self) -> int:
        return sum(self.by_severity.values())

    def to_dict(self, *, named: set[str] | None = None) -> dict[str, Any]:
        """As JSON data; `named`: keys of the private incidents that may be named (others are not)."""
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "incidents": self.total,
            "resolved": self.resolved,
            "by_severity": {severity.label: count for severity, count in self.by_severity.items()},
            "metrics": {name: spread.to_dict() for name, spread in self.metrics.items()},
            "status_updates": {"on_time": self.updates_on_time, "due": self.updates_due},
            "action_items": {"done": self.items_done, "total": self.items_total},
            "weekly_time_to_resolve": [
                {"week": bar.week.isoformat(), "severity": bar.severity.label, "count": bar.count,
                 "median_seconds": _seconds(bar.median_resolve)}
                for bar in self.weekly
            ],  # fmt: skip
            "longest_to_resolve": [
                {"key": figures.key, "title": figures.title, "severity": figures.severity.label,
                 "seconds": _seconds(figures.durations["time to resolve"])}
                if not figures.private or figures.key in (named or set())
                else {"key": None, "title": "a private incident", "severity": figures.severity.label,
                      "seconds": _seconds(figures.durations["time to resolve"])}
                for figures in self.longest
            ],  # fmt: skip
        }


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def _text(value: timedelta | None) -> str | None:
    return None if value is None else format_duration(value)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _first(kind: EntryKind | tuple[EntryKind, ...], extra: Any = None) -> Any:
    """MIN(occurred_at) of the entries of a kind (and a further condition), as an aware UTC datetime."""
    entries = TimelineEntry.__table__  # type: ignore[attr-defined]
    kinds = (kind,) if isinstance(kind, EntryKind) else kind
    condition = entries.c.kind.in_([k.value for k in kinds])
    if extra is not None:
        condition = sa.and_(condition, extra)
    return sa.type_coerce(sa.func.min(sa.case((condition, entries.c.occurred_at))), UTCDateTime)


def compute(*, session: Session, since: datetime, until: datetime, zone: tzinfo) -> Stats:
    """The statistics of the incidents declared from `since` to `until`; weeks start on Monday in `zone`."""
    incidents = Incident.__table__  # type: ignore[attr-defined]
    entries = TimelineEntry.__table__  # type: ignore[attr-defined]
    updates = StatusUpdate.__table__  # type: ignore[attr-defined]
    items = ActionItem.__table__  # type: ignore[attr-defined]
    window = sa.and_(incidents.c.declared_at >= sa.literal(since, UTCDateTime),
                     incidents.c.declared_at <= sa.literal(until, UTCDateTime))  # fmt: skip
    in_window = sa.select(incidents.c.id).where(window).scalar_subquery()

    rows = session.execute(
        sa.select(incidents.c.id, incidents.c.key, incidents.c.title, incidents.c.severity, incidents.c.private,
                  incidents.c.channel_id, incidents.c.status, incidents.c.declared_at, incidents.c.resolved_at)
        .where(window)
    ).all()  # fmt: skip
    announced = entries.c.details["status"].as_string()
    firsts = {
        row.incident_id: row
        for row in session.execute(
            sa.select(
                entries.c.incident_id,
                _first(EntryKind.TRIGGER).label("trigger"),
                _first(EntryKind.DETECTION).label("detection"),
                _first(EntryKind.DECLARATION).label("declaration"),
                _first((EntryKind.STATUS_UPDATE, EntryKind.COMMUNICATION), announced == Phase.MONITORING.value)
                .label("mitigated"),
                _first(EntryKind.RESOLUTION).label("resolution"),
            )
            .where(entries.c.incident_id.in_(in_window), entries.c.kind.in_([
                k.value for k in (EntryKind.TRIGGER, EntryKind.DETECTION, EntryKind.DECLARATION,
                                  EntryKind.STATUS_UPDATE, EntryKind.COMMUNICATION, EntryKind.RESOLUTION)]))
            .group_by(entries.c.incident_id)
        )
    }  # fmt: skip
    on_time = sa.and_(updates.c.due_at.is_not(None), updates.c.posted_at <= updates.c.due_at,
                      sa.func.coalesce(updates.c.reminders_before, 0) == 0)  # fmt: skip
    due, kept = session.execute(
        sa.select(sa.func.count(updates.c.due_at), sa.func.sum(sa.case((on_time, 1), else_=0)))
        .where(updates.c.incident_id.in_(in_window))
    ).one()  # fmt: skip
    total_items, done_items = session.execute(
        sa.select(sa.func.count(), sa.func.sum(sa.case((items.c.status == "done", 1), else_=0)))
        .where(items.c.incident_id.in_(in_window))
    ).one()  # fmt: skip

    by_severity = {severity: 0 for severity in Severity}
    measured: dict[str, list[timedelta]] = {name: [] for name in METRICS}
    weekly: dict[tuple[date, Severity], list[timedelta]] = defaultdict(list)
    figures: list[IncidentFigures] = []
    resolved = 0
    for row in rows:
        severity = Severity(row.severity)
        by_severity[severity] += 1
        resolved += row.status == IncidentStatus.RESOLVED.value
        first = firsts.get(row.id)
        durations = _durations(row, first)
        for name, value in durations.items():
            measured[name].append(value)
        if "time to resolve" in durations:
            weekly[(_monday(row.declared_at.astimezone(zone).date()), severity)].append(durations["time to resolve"])
            figures.append(IncidentFigures(row.key, row.title, severity, bool(row.private), row.channel_id,
                                           row.declared_at, durations))  # fmt: skip
    figures.sort(key=lambda f: (-f.durations["time to resolve"], f.declared_at))
    return Stats(
        since=since,
        until=until,
        by_severity=by_severity,
        resolved=resolved,
        metrics={name: Spread.of(values) for name, values in measured.items()},
        updates_on_time=int(kept or 0),
        updates_due=int(due or 0),
        items_done=int(done_items or 0),
        items_total=int(total_items or 0),
        weekly=[
            WeekBar(week, severity, Spread.of(values).median or timedelta(0), len(values))
            for (week, severity), values in sorted(weekly.items(), key=lambda kv: (kv[0][0], kv[0][1].level))
        ],
        weeks=_weeks(since.astimezone(zone).date(), until.astimezone(zone).date()),
        longest=figures[:LONGEST],
    )


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _weeks(first: date, last: date) -> list[date]:
    start, end = _monday(first), _monday(last)
    return [start + timedelta(weeks=n) for n in range((end - start).days // 7 + 1)]


def _durations(row: Any, first: Any) -> dict[str, timedelta]:
    declared = (first.declaration if first is not None else None) or row.declared_at
    start = (first.trigger if first is not None else None) or declared
    detected = first.detection if first is not None else None
    mitigated = first.mitigated if first is not None else None
    resolution = (first.resolution if first is not None else None) or row.resolved_at
    spans = {
        "time to detect": (start, detected),
        "time to declare": (detected, declared),
        "time to mitigate": (start, mitigated),
        "time to resolve": (start, resolution if row.status == IncidentStatus.RESOLVED.value else None),
    }
    return {name: end - begin for name, (begin, end) in spans.items() if begin and end and end >= begin}
