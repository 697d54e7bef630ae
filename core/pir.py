"""The post-incident review (SPEC §10): built from an export, rendered with Jinja2.

Only facts in the data are stated. What is missing is said to be missing (e.g. a root cause "to be completed
by" the commander), never guessed. Raw user text is kept in the model; escaping happens when rendering."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.cadence import DEFAULT_CADENCE_TEXT, Cadence, format_duration, parse_cadence
from core.enums import Severity
from core.export import ExportActionItem, ExportEvent, IncidentExport
from core.severity import ImpactFacts, classify
from core.templating import format_when, jinja_env, join_words
from core.timeline import Metric, TimelineAnalysis, analyze, declaration

# Facts at or under these read as "went well", over them as "did not".
QUICK_DETECT = timedelta(minutes=15)
QUICK_DECLARE = timedelta(minutes=15)
FOLLOW_UPS = ((timedelta(days=7), "review the progress of the action items"),
              (timedelta(days=30), "check that the changes made work as intended"),
              (timedelta(days=90), "review whether this kind of incident has come back"))  # fmt: skip


@dataclass
class TimelineLine:
    at: datetime
    kind: str
    actor: str
    text: str
    permalink: str | None = None


@dataclass
class FollowUp:
    at: datetime
    what: str
    exact: bool = False  # a set time (a scheduled meeting) rather than a day


@dataclass
class PhaseSection:
    name: str
    start: datetime
    end: datetime
    lines: list[TimelineLine]


@dataclass
class Pir:
    title: str
    key: str
    severity: str
    severity_history: list[str]
    status: str
    started_at: datetime | None
    declared_at: datetime | None
    resolved_at: datetime | None
    duration: timedelta | None
    commander: str | None
    roles: list[tuple[str, str]]
    services: list[str]
    summary: list[str]
    customer_impact: list[str]
    business_impact: list[str]
    phases: list[PhaseSection]
    metrics: list[Metric]
    cadence_line: str | None
    root_cause: str | None
    root_cause_owner: str
    contributing_factors: list[str]
    mitigation_steps: list[str]
    permanent_fix: str | None
    five_whys: list[tuple[str, str]]
    went_well: list[str]
    went_badly: list[str]
    lessons: list[str]
    action_items: list[ExportActionItem]
    follow_up: list[FollowUp]
    timezone: str = "UTC"
    suggested_severity: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["metrics"] = [m.to_dict() for m in self.metrics]
        data["action_items"] = [item.model_dump(mode="json", exclude_none=True) for item in self.action_items]
        data["roles"] = [{"role": r, "name": n} for r, n in self.roles]
        data["five_whys"] = [{"why": w, "answer": a} for w, a in self.five_whys]
        data["follow_up"] = [
            {"at" if f.exact else "on": _jsonable(f.at) if f.exact else f.at.date().isoformat(), "what": f.what}
            for f in self.follow_up
        ]
        return _jsonable(data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    return value


def _after(duration: timedelta, what: str) -> str:
    """`5 min after detection`, or `as soon as detection` for no time at all."""
    if duration < timedelta(seconds=30):
        return f"within a minute of {what}" if duration else f"as soon as {what}"
    return f"{format_duration(duration)} after {what}"


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _commander(export: IncidentExport) -> str | None:
    if export.incident.commander:
        return export.incident.commander
    for participant in export.participants:
        if participant.role and "commander" in participant.role.lower():
            return participant.name
    return export.incident.roles.get("commander")


def _roles(export: IncidentExport) -> list[tuple[str, str]]:
    rows = [(p.role or "Responder", p.name) for p in export.participants]
    known = {name for _, name in rows}
    for role, name in export.incident.roles.items():
        if name not in known:
            rows.append((role, name))
    return rows


def _summary(export: IncidentExport, analysis: TimelineAnalysis, tz: str) -> list[str]:
    incident = export.incident
    lines: list[str] = []
    services = incident.services
    start = analysis.events[0] if analysis.events else None
    trigger = next((e for e in analysis.events if e.type == "trigger"), None)
    begin = incident.started_at or (trigger.timestamp if trigger else None) or (start.timestamp if start else None)
    if begin:
        where = f" affecting {join_words(services)}" if services else ""
        first = f" The first sign: {trigger.description.rstrip('.')}." if trigger else ""
        lines.append(f"The incident began at {format_when(begin, tz)}{where}.{first}")
    detect = analysis.metric("time to detect")
    if detect:
        lines.append(f"It was detected {_after(detect.duration, 'it began')}, at {format_when(detect.end.at, tz)}.")
    declare = analysis.metric("time to declare")
    history = incident.severity_history
    severity = (history[0].severity.label if history else None) or (
        incident.severity.label if incident.severity else None
    )
    declared = declaration(export)
    if severity and declared is not None:
        actor = declared.event.actor if declared.event is not None else None
        by = f" by {actor or incident.commander}" if (actor or incident.commander) else ""
        when = f" {_after(declare.duration, 'detection')}" if declare else ""
        lines.append(f"It was declared {severity}{by}{when}.")
    elif severity:
        commander = f", with {incident.commander} as incident commander" if incident.commander else ""
        lines.append(f"It is recorded as {severity}{commander}.")
    for change in history[1:]:
        reason = f" ({change.reason.rstrip('.')})" if change.reason else ""
        lines.append(f"It was changed to {change.severity.label} at {format_when(change.at, tz)}{reason}.")
    mitigate = analysis.metric("time to mitigate")
    if mitigate:
        lines.append(f"Impact was mitigated {_after(mitigate.duration, 'it began')}.")
    resolve = analysis.metric("time to resolve")
    if resolve:
        lines.append(
            f"It was resolved at {format_when(resolve.end.at, tz)}, {format_duration(resolve.duration)} after it began."
        )
    elif incident.status != "resolved":
        lines.append("It is not resolved yet.")
    if export.resolution.root_cause:
        lines.append(f"Root cause: {_sentence(export.resolution.root_cause)}")
    return lines


def _impacts(export: IncidentExport) -> tuple[list[str], list[str]]:
    impact, customer = export.impact, export.resolution.customer_impact
    people: list[str] = []
    business: list[str] = []
    if impact.customer_impact:
        people.append(_sentence(impact.customer_impact))
    if impact.affected_users_percentage is not None:
        people.append(f"{impact.affected_users_percentage:g}% of users were affected.")
    if customer and customer.affected_users is not None:
        people.append(f"{customer.affected_users:,} users were affected.")
    if customer and customer.failed_transactions is not None:
        people.append(f"{customer.failed_transactions:,} transactions failed.")
    if impact.degradation_type:
        people.append(f"Degradation: {impact.degradation_type}.")
    if impact.affected_regions:
        people.append(f"Regions: {join_words(impact.affected_regions)}.")
    if impact.workaround_available is not None:
        people.append("A workaround was available." if impact.workaround_available else "No workaround was available.")
    data_loss = impact.data_loss if impact.data_loss is not None else (customer.data_loss if customer else None)
    if data_loss is not None:
        people.append("Data was lost." if data_loss else "No data was lost.")
    if impact.security_breach:
        people.append("Customer data was exposed.")
    if impact.business_impact:
        business.append(_sentence(impact.business_impact))
    if impact.revenue_impact:
        business.append(f"Revenue impact: {impact.revenue_impact}.")
    if customer and customer.revenue_impact_usd is not None:
        business.append(f"Estimated revenue impact: ${customer.revenue_impact_usd:,.0f}.")
    return people, business


def _judgements(
    export: IncidentExport, analysis: TimelineAnalysis, cadence: Cadence, tz: str
) -> tuple[list[str], list[str]]:
    good: list[str] = []
    bad: list[str] = []
    detect = analysis.metric("time to detect")
    if detect:
        text = f"Detected {_after(detect.duration, 'impact began')}"
        (good if detect.duration <= QUICK_DETECT else bad).append(text + ".")
    declare = analysis.metric("time to declare")
    if declare:
        text = f"Declared {_after(declare.duration, 'detection')}"
        (good if declare.duration <= QUICK_DECLARE else bad).append(text + ".")
    kept = analysis.cadence
    if kept and kept.due:
        severity = export.incident.severity
        interval = cadence.get(severity) if severity is not None else None
        rule = f" (the {severity.label} cadence is every {format_duration(interval)})" if severity and interval else ""
        text = f"{kept.on_time} of {kept.due} status updates on time{rule}"
        if kept.on_time == kept.due:
            good.append(f"{text}.")
        else:
            silence = kept.longest_silence
            longest = (
                f"; the longest silence was {format_duration(silence.duration)}, "
                f"from {format_when(silence.start.at, tz, 'time')} to {format_when(silence.end.at, tz, 'time')}"
                if silence is not None
                else ""
            )
            bad.append(f"{text}{longest}.")
    unowned = sum(1 for item in export.action_items if not item.owner)
    if unowned:
        bad.append(f"{unowned} of {len(export.action_items)} action items have no owner yet.")
    if export.resolution.root_cause:
        good.append("The root cause was identified.")
    else:
        bad.append("The root cause is not recorded yet.")
    return good, bad


def _follow_up(export: IncidentExport, resolved: datetime | None) -> list[FollowUp]:
    """A review meeting the data schedules (metadata `postmortem_scheduled`), then the usual check-ins."""
    items: list[FollowUp] = []
    for event in export.events:
        when = event.metadata.get("postmortem_scheduled") or event.metadata.get("review_scheduled")
        if isinstance(when, str):
            try:
                at = datetime.fromisoformat(when.replace("Z", "+00:00"))
            except ValueError:
                continue
            if at.tzinfo is not None:
                items.append(FollowUp(at.astimezone(UTC), "post-incident review meeting", exact=True))
                break
    if resolved:
        items.extend(FollowUp(resolved + delta, what) for delta, what in FOLLOW_UPS)
    return sorted(items, key=lambda f: f.at)


def _phases(analysis: TimelineAnalysis) -> list[PhaseSection]:
    def line(event: ExportEvent) -> TimelineLine:
        return TimelineLine(
            at=event.timestamp,
            kind=event.type,
            actor=event.actor or "",
            text=event.description,
            permalink=event.permalink,
        )

    return [PhaseSection(g.name, g.start, g.end, [line(e) for e in g.events]) for g in analysis.phases]


def build_pir(
    export: IncidentExport,
    *,
    cadence: Cadence | None = None,
    timezone: str = "UTC",
    now: datetime | None = None,
) -> Pir:
    cadence = cadence if cadence is not None else parse_cadence(DEFAULT_CADENCE_TEXT)
    analysis = analyze(export, cadence=cadence, now=now)
    incident = export.incident
    commander = _commander(export)
    history = [
        f"{change.severity.label} from {format_when(change.at, timezone)}"
        + (f": {' '.join(change.reason.split())}" if change.reason else "")
        for change in incident.severity_history
    ]
    start = analysis.metric("time to resolve")
    people, business = _impacts(export)
    good, bad = _judgements(export, analysis, cadence, timezone)
    resolved = incident.resolved_at or (start.end.at if start else None)
    facts = ImpactFacts.from_export(export)
    suggestion = classify(facts).severity if facts != ImpactFacts() else None
    kept = analysis.cadence
    cadence_line = None
    if kept and kept.due:
        cadence_line = f"{kept.on_time} of {kept.due} on time ({kept.late} late, {kept.missed} periods with no update)"
    return Pir(
        title=incident.title,
        key=incident.display_key,
        severity=incident.severity.label if incident.severity else "not set",
        severity_history=history,
        status=(incident.status or ("resolved" if resolved else "open")).capitalize(),
        started_at=analysis.metrics[0].start.at if analysis.metrics else incident.started_at,
        declared_at=incident.declared_at,
        resolved_at=resolved,
        duration=start.duration if start else None,
        commander=commander,
        roles=_roles(export),
        services=incident.services,
        summary=_summary(export, analysis, timezone),
        customer_impact=people,
        business_impact=business,
        phases=_phases(analysis),
        metrics=analysis.metrics,
        cadence_line=cadence_line,
        root_cause=export.resolution.root_cause,
        root_cause_owner=commander or "the incident commander",
        contributing_factors=list(export.resolution.contributing_factors),
        mitigation_steps=list(export.resolution.mitigation_steps),
        permanent_fix=export.resolution.permanent_fix,
        five_whys=[(w.why, w.answer) for w in export.resolution.five_whys],
        went_well=good,
        went_badly=bad,
        lessons=list(export.resolution.lessons),
        action_items=list(export.action_items),
        follow_up=_follow_up(export, resolved),
        timezone=timezone,
        suggested_severity=suggestion.label if isinstance(suggestion, Severity) else None,
    )


def clock_style(pir: Pir) -> str:
    """`time` (14:15) when every moment shown falls on one local day, else `datetime` (2024-01-15 14:15)."""
    moments = [line.at for phase in pir.phases for line in phase.lines]
    moments += [m.at for metric in pir.metrics for m in (metric.start, metric.end)]
    if not moments:
        return "time"
    first, last = (format_when(moment, pir.timezone, "date") for moment in (min(moments), max(moments)))
    return "time" if first == last else "datetime"


def render_markdown(pir: Pir) -> str:
    return jinja_env().get_template("pir.md.j2").render(pir=pir, tz=pir.timezone, clock=clock_style(pir))
