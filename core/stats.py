"""Incident statistics (SPEC §14): incidents by severity, median and p90 of the §9 metrics, status updates on
time, action items done, and time to resolve per week by severity. Pure over a session: three queries (one row per
incident, with the first entry of each kind it needs, times as seconds), then arithmetic in Python.

The metrics follow core.timeline (SPEC §9), read from stored timeline entries:
- impact start: the first trigger entry, else the declaration;
- declaration: the first declaration entry, else the incident's declared_at;
- time to detect: impact start -> first detection entry;
- time to declare: first detection entry -> declaration;
- time to mitigate: impact start -> first status update announcing `monitoring` (the status_updates table);
- time to resolve: impact start -> first resolution entry, else resolved_at.
A metric whose end is missing, or comes before its start, is left out (never counted as 0). A status update is
on time when posted by its due time with no reminder sent before it (a reminder re-arms the due time), out of
the updates that had a due time (a severity with a cadence). Incidents are
those declared in the window; a private incident counts like any other but is named only where the caller
lets it be (`IncidentFigures.private`)."""

from __future__ import annotations

import heapq
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
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
    def of(cls, seconds: list[float]) -> Spread:
        if not seconds:
            return cls(0, None, None)
        ordered = sorted(seconds)
        p90 = ordered[math.ceil(0.9 * len(ordered)) - 1]
        return cls(len(ordered), _rounded(statistics.median(ordered)), _rounded(p90))

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


def _rounded(seconds: float) -> timedelta:
    """A duration to the millisecond (the database's float arithmetic is not exact to the microsecond)."""
    return timedelta(milliseconds=round(seconds * 1000))


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else int(value.total_seconds())


def _text(value: timedelta | None) -> str | None:
    return None if value is None else format_duration(value)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _epoch(session: Session, value: Any) -> Any:
    """Seconds since 1970 of a stored UTC time, to the millisecond, as a float computed by the database (no
    datetime per row; rounded so that a time on the hour stays on it, not a hair before)."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.func.round(sa.extract("epoch", value), 3), sa.Float)
    return sa.func.round((sa.func.julianday(value) - 2440587.5) * 86400.0, 3)  # SQLite keeps UTC times as text


def _first(kind: EntryKind) -> Any:
    entries = TimelineEntry.__table__  # type: ignore[attr-defined]
    return sa.func.min(sa.case((entries.c.kind == kind.value, entries.c.occurred_at)))


def compute(*, session: Session, since: datetime, until: datetime, zone: tzinfo) -> Stats:
    """The statistics of the incidents declared from `since` to `until`; weeks start on Monday in `zone`."""
    incidents = Incident.__table__  # type: ignore[attr-defined]
    entries = TimelineEntry.__table__  # type: ignore[attr-defined]
    updates = StatusUpdate.__table__  # type: ignore[attr-defined]
    items = ActionItem.__table__  # type: ignore[attr-defined]
    window = sa.and_(incidents.c.declared_at >= sa.literal(since, UTCDateTime),
                     incidents.c.declared_at <= sa.literal(until, UTCDateTime))  # fmt: skip
    in_window = sa.select(incidents.c.id).where(window).scalar_subquery()

    # One row per incident: its own times and the first entry of each kind that a metric is measured from,
    # as seconds since 1970 (the entries read through the index on incident, kind and time).
    kinds = (EntryKind.TRIGGER, EntryKind.DETECTION, EntryKind.DECLARATION, EntryKind.RESOLUTION)
    firsts = (
        sa.select(entries.c.incident_id, *(_first(kind).label(kind.value) for kind in kinds))
        .where(entries.c.incident_id.in_(in_window), entries.c.kind.in_([kind.value for kind in kinds]))
        .group_by(entries.c.incident_id)
        .subquery()
    )
    mitigated = (
        sa.select(updates.c.incident_id, sa.func.min(updates.c.posted_at).label("at"))
        .where(updates.c.incident_id.in_(in_window), updates.c.phase == Phase.MONITORING.value)
        .group_by(updates.c.incident_id)
        .subquery()
    )
    rows = session.execute(
        sa.select(
            incidents.c.key, incidents.c.title, incidents.c.severity, incidents.c.private, incidents.c.channel_id,
            incidents.c.status, _epoch(session, incidents.c.declared_at).label("declared_at"),
            _epoch(session, incidents.c.resolved_at).label("resolved_at"),
            *(_epoch(session, firsts.c[kind.value]).label(kind.value) for kind in kinds),
            _epoch(session, mitigated.c.at).label("mitigated"),
        )
        .select_from(
            incidents.outerjoin(firsts, firsts.c.incident_id == incidents.c.id)
            .outerjoin(mitigated, mitigated.c.incident_id == incidents.c.id)
        )
        .where(window)
    ).all()  # fmt: skip
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

    severities = {severity.value: severity for severity in Severity}
    by_severity = {severity: 0 for severity in Severity}
    measured: dict[str, list[float]] = {name: [] for name in METRICS}
    weekly: dict[tuple[date, Severity], list[float]] = defaultdict(list)
    longest: list[tuple[float, float, int]] = []  # (-seconds to resolve, declared, row index): a heap
    resolved = 0
    for index, row in enumerate(rows):
        severity = severities[row.severity]
        by_severity[severity] += 1
        is_resolved = row.status == IncidentStatus.RESOLVED.value
        resolved += is_resolved
        durations = _durations(row, is_resolved)
        for name, value in durations.items():
            measured[name].append(value)
        took = durations.get("time to resolve")
        if took is not None:
            week = datetime.fromtimestamp(row.declared_at, zone).date()
            weekly[(week - timedelta(days=week.weekday()), severity)].append(took)
            entry = (took, -row.declared_at, index)
            if len(longest) < LONGEST:
                heapq.heappush(longest, entry)
            else:
                heapq.heappushpop(longest, entry)
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
        longest=[_figures(rows[index], severities) for _, _, index in sorted(longest, reverse=True)],
    )


def _figures(row: Any, severities: dict[str, Severity]) -> IncidentFigures:
    return IncidentFigures(
        key=row.key,
        title=row.title,
        severity=severities[row.severity],
        private=bool(row.private),
        channel_id=row.channel_id,
        declared_at=datetime.fromtimestamp(row.declared_at, UTC),
        durations={name: _rounded(value) for name, value in _durations(row, True).items()},
    )


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _weeks(first: date, last: date) -> list[date]:
    start, end = _monday(first), _monday(last)
    return [start + timedelta(weeks=n) for n in range((end - start).days // 7 + 1)]


def _durations(row: Any, resolved: bool) -> dict[str, float]:
    """The metrics of one incident in seconds, those whose two ends are known and in order (SPEC §9)."""
    declared = row.declaration if row.declaration is not None else row.declared_at
    start = row.trigger if row.trigger is not None else declared
    resolution = row.resolution if row.resolution is not None else row.resolved_at
    spans = {
        "time to detect": (start, row.detection),
        "time to declare": (row.detection, declared),
        "time to mitigate": (start, row.mitigated),
        "time to resolve": (start, resolution if resolved else None),
    }
    return {name: end - begin for name, (begin, end) in spans.items()
            if begin is not None and end is not None and end >= begin}  # fmt: skip
