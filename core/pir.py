"""The post-incident review (SPEC §10): built from an export, rendered with Jinja2.

Only facts in the data are stated. What is missing is said to be missing (e.g. a root cause "to be completed
by" the commander), never guessed. Raw user text is kept in the model; escaping happens when rendering."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.cadence import DEFAULT_CADENCE_TEXT, Cadence, format_duration, parse_cadence
from core.enums import Severity
from core.export import ExportActionItem, ExportEvent, IncidentExport
from core.impact import ReportedImpact, money, quote, reported_impact
from core.severity import ImpactFacts, classify
from core.templating import format_span, format_when, jinja_env, join_words
from core.timeline import Metric, TimelineAnalysis, analyze, declaration, given_impact_start

# Facts at or under these read as "went well", over them as "did not".
QUICK_DETECT = timedelta(minutes=15)
QUICK_DECLARE = timedelta(minutes=15)
# Over this many events, the body shows the key ones and the full timeline goes in an appendix.
KEY_EVENTS = 100
# Event sources that only an incident run under sitrep has; an export without any is imported.
LIVE_SOURCES = frozenset({"reaction", "pin", "shortcut", "command", "bot"})
# Kinds that change the state of the incident; with status updates, decisions and mitigations they are key events.
STATE_KINDS = frozenset({"trigger", "detection", "declaration", "resolution", "severity_change", "role_change"})
KEY_KINDS = STATE_KINDS | {"mitigation", "escalation", "status_update"}
_DECISION = re.compile(r"\b(decision|decided|decide)\b", re.I)
# An imported export's own lessons read as "went well" or "did not" only when their words say so plainly.
_GOOD_WORDS = re.compile(
    r"\b(worked|effective(ly)?|quick(ly)?|fast|helped|smooth(ly)?|successful(ly)?|prompt(ly)?)\b", re.I
)
_BAD_WORDS = re.compile(
    r"\b(missed|didn't|did not|could have|should have|lack(ed|ing)?|failed|insufficient|slow|late|no|not|without)\b",
    re.I,
)


@dataclass
class TimelineLine:
    at: datetime
    kind: str
    actor: str
    text: str
    permalink: str | None = None
    key: bool = True  # shown in the body; every line is in the appendix when the body shows only key ones


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

    @property
    def shown(self) -> list[TimelineLine]:
        return [line for line in self.lines if line.key]


@dataclass
class Pir:
    title: str
    key: str
    severity: str
    severity_history: list[str]
    status: str
    started_at: datetime | None  # when the impact began, only when the data gives it (a trigger or a start time)
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
    impact_headline: list[str] = field(default_factory=list)  # who, how many, how long, what was lost: short
    reported_metrics: list[tuple[str, str]] = field(default_factory=list)  # as the export states them
    impact_not_reported: list[str] = field(default_factory=list)  # figures left out as defaults, and why
    imported: bool = False  # not run under sitrep: judged on its own data, not on sitrep's cadence
    events_total: int = 0
    trimmed: bool = False  # the body shows key events only; the appendix has them all

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["metrics"] = [m.to_dict() for m in self.metrics]
        data["action_items"] = [item.model_dump(mode="json", exclude_none=True) for item in self.action_items]
        data["roles"] = [{"role": r, "name": n} for r, n in self.roles]
        data["five_whys"] = [{"why": w, "answer": a} for w, a in self.five_whys]
        data["reported_metrics"] = [{"name": n, "value": v} for n, v in self.reported_metrics]
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


def is_imported(export: IncidentExport) -> bool:
    """An incident that did not run under sitrep: no incident channel and no event that only the bot records."""
    return export.incident.channel_id is None and not any(e.source in LIVE_SOURCES for e in export.events)


def _impact_span(analysis: TimelineAnalysis, given: bool) -> tuple[timedelta, str] | None:
    """How long users were affected, and until what: from the impact start the data gives to the mitigation,
    else to the resolution. None when the data gives no impact start (a declaration is not one)."""
    if not given:
        return None
    for name, until in (("time to mitigate", "mitigation"), ("time to resolve", "resolution")):
        metric = analysis.metric(name)
        if metric:
            return metric.duration, until
    return None


def _who(reported: ReportedImpact) -> str | None:
    pct, users = reported.users_pct, reported.users
    if pct is not None and users is not None:
        return f"{pct:g}% of users ({users:,})"
    if pct is not None:
        return f"{pct:g}% of users"
    if users is not None:
        return f"{users:,} users"
    return None


def _data_loss_line(reported: ReportedImpact) -> str | None:
    if reported.data_loss is None:
        return None
    if not reported.data_loss:
        return "No data was lost."
    details = reported.data_loss_details or ([reported.data_loss_stated.sentence] if reported.data_loss_stated else [])
    if details:
        return "Data was lost: " + "; ".join(quote(d) for d in details) + "."
    return "Data was lost; the export does not say how much or from when."


def _affected(reported: ReportedImpact, span: tuple[timedelta, str] | None, *, who: bool = True) -> str | None:
    """`45% of users (12,500) were affected for 1 h 5 min, until mitigation.`, or the parts of it that are known."""
    people = _who(reported) if who else None
    lasted = f" for {format_duration(span[0])}, until {span[1]}" if span else ""
    if people:
        return f"{people[0].upper()}{people[1:]} were affected{lasted}."
    if span:
        return f"Impact lasted {format_duration(span[0])}, until {span[1]}."
    return None


def _headline(reported: ReportedImpact, span: tuple[timedelta, str] | None) -> list[str]:
    """What was lost, how many were affected and for how long, in a few plain sentences."""
    lines: list[str] = []
    affected = _affected(reported, span)
    if affected:
        lines.append(affected)
    if reported.failed_transactions is not None:
        lines.append(f"{reported.failed_transactions:,} transactions failed.")
    if reported.revenue_stated is not None:  # in the export's words, which may say loss, refunds or cost
        lines.append(f"Business impact: {reported.revenue_stated.quoted}.")
    elif reported.revenue_usd is not None:
        lines.append(f"Estimated revenue impact: {money(reported.revenue_usd)}.")
    loss = _data_loss_line(reported)
    if loss:
        lines.append(loss)
    return lines


def _summary(export: IncidentExport, analysis: TimelineAnalysis, headline: list[str], tz: str) -> list[str]:
    incident = export.incident
    lines: list[str] = []
    services = incident.services
    where = f" affecting {join_words(services)}" if services else ""
    given = given_impact_start(export)
    trigger = next((e for e in analysis.events if e.type == "trigger"), None)
    if given:
        first = f" The first sign: {trigger.description.rstrip('.')}." if trigger else ""
        lines.append(f"Impact began at {format_when(given.at, tz)}{where}.{first}")
        where = ""
    detect = analysis.metric("time to detect")
    if detect and given:
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
        when = f" {_after(declare.duration, 'detection')}" if declare else f" at {format_when(declared.at, tz)}"
        lines.append(f"It was declared {severity}{by}{when}{where}.")
    elif severity:
        commander = f", with {incident.commander} as incident commander" if incident.commander else ""
        lines.append(f"It is recorded as {severity}{commander}{where}.")
    for change in history[1:]:
        reason = f" ({change.reason.rstrip('.')})" if change.reason else ""
        lines.append(f"It was changed to {change.severity.label} at {format_when(change.at, tz)}{reason}.")
    lines.extend(headline)
    mitigate = analysis.metric("time to mitigate")
    since = "it began" if given else "it was declared"
    if mitigate and not any(line.endswith("until mitigation.") for line in headline):  # said once
        lines.append(f"Impact was mitigated {_after(mitigate.duration, since)}.")
    resolve = analysis.metric("time to resolve")
    if resolve:
        lines.append(
            f"It was resolved at {format_when(resolve.end.at, tz)}, {format_duration(resolve.duration)} after {since}."
        )
    elif incident.status != "resolved":
        lines.append("It is not resolved yet.")
    return lines


def _error_metrics(metrics: dict[str, Any]) -> str | None:
    """`peak error rate 45%; normal error rate 0.1%` from the export's error metrics, keys read as words."""
    parts = [
        f"{str(name).replace('_', ' ')} {value}"
        for name, value in metrics.items()
        if isinstance(value, str | int | float) and not isinstance(value, bool) and str(value).strip()
    ]
    if not parts:
        return None
    text = "; ".join(parts)
    return f"{text[0].upper()}{text[1:]}."


def _impacts(
    export: IncidentExport, reported: ReportedImpact, span: tuple[timedelta, str] | None
) -> tuple[list[str], list[str]]:
    impact = export.impact
    people: list[str] = []
    business: list[str] = []
    if impact.customer_impact:
        people.append(_sentence(impact.customer_impact))
    # A share stated in the export's words is in its text just above: only the figures the fields add are said.
    affected = _affected(reported, span, who=reported.users_pct_stated is None)
    if reported.users_pct_stated is not None and reported.users is not None:
        people.append(f"{reported.users:,} users were affected.")
    if affected:
        people.append(affected)
    if reported.failed_transactions is not None:
        people.append(f"{reported.failed_transactions:,} transactions failed.")
    if impact.degradation_type:
        people.append(f"Degradation: {impact.degradation_type}.")
    if impact.affected_regions:
        people.append(f"Regions: {join_words(impact.affected_regions)}.")
    errors = _error_metrics(impact.error_metrics)
    if errors:
        people.append(errors)
    if impact.workaround_available is not None:
        people.append("A workaround was available." if impact.workaround_available else "No workaround was available.")
    loss = _data_loss_line(reported)
    said = reported.data_loss_stated
    if loss and not (said and said.where == "customer impact" and reported.data_loss_details in ([], [said.sentence])):
        people.append(loss)  # unless the export's own words, just above, say it all
    if impact.security_breach:
        people.append("Customer data was exposed.")
    if impact.business_impact:
        business.append(_sentence(impact.business_impact))
    if reported.revenue_level:
        business.append(f"Revenue impact: {reported.revenue_level}.")
    if reported.revenue_usd is not None and reported.revenue_stated is None:
        business.append(f"Estimated revenue impact: {money(reported.revenue_usd)}.")
    return people, business


def _reported_metrics(export: IncidentExport) -> list[tuple[str, str]]:
    response = export.response
    rows: list[tuple[str, str]] = []
    for name, value in (
        ("Time to detect", response.time_to_detect),
        ("Time to respond", response.time_to_respond),
        ("Time to escalate", response.time_to_escalate),
        ("Time to resolve", response.time_to_resolve),
    ):
        if value:
            rows.append((name, " ".join(value.split())))
    for name, flag in (
        ("Executives notified", response.executives_notified),
        ("Status page updated", response.status_page_updated),
    ):
        if flag is not None:
            rows.append((name, "yes" if flag else "no"))
    return rows


def _judgements(
    export: IncidentExport, analysis: TimelineAnalysis, cadence: Cadence, tz: str, imported: bool
) -> tuple[list[str], list[str], list[str]]:
    """What went well, what did not, and the lessons left over: only facts of the data, never filler.

    Every incident: time to detect and to declare, action items with no owner. A live incident: the status updates
    against the cadence. An imported one: its own lessons, where their words plainly say went well or not."""
    good: list[str] = []
    bad: list[str] = []
    lessons = list(export.resolution.lessons)
    detect = analysis.metric("time to detect")
    if detect and given_impact_start(export):
        text = f"Detected {_after(detect.duration, 'impact began')}"
        (good if detect.duration <= QUICK_DETECT else bad).append(text + ".")
    declare = analysis.metric("time to declare")
    if declare:
        text = f"Declared {_after(declare.duration, 'detection')}"
        (good if declare.duration <= QUICK_DECLARE else bad).append(text + ".")
    kept = analysis.cadence
    if kept and kept.due and not imported:
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
                f"from {format_span(silence.start.at, silence.end.at, tz)}"
                if silence is not None
                else ""
            )
            bad.append(f"{text}{longest}.")
    if imported:
        kept_lessons: list[str] = []
        for lesson in lessons:
            well, badly = bool(_GOOD_WORDS.search(lesson)), bool(_BAD_WORDS.search(lesson))
            if well != badly:
                (good if well else bad).append(_sentence(lesson))
            else:
                kept_lessons.append(lesson)
        lessons = kept_lessons
    unowned = sum(1 for item in export.action_items if not item.owner)
    if unowned:
        bad.append(f"{unowned} of {len(export.action_items)} action items have no owner yet.")
    return good, bad, lessons


def _follow_up(export: IncidentExport) -> list[FollowUp]:
    """Only a review the data schedules (event metadata `postmortem_scheduled` or `review_scheduled`): no dates are
    made up."""
    for event in export.events:
        when = event.metadata.get("postmortem_scheduled") or event.metadata.get("review_scheduled")
        if isinstance(when, str):
            try:
                at = datetime.fromisoformat(when.replace("Z", "+00:00"))
            except ValueError:
                continue
            if at.tzinfo is not None:
                return [FollowUp(at.astimezone(UTC), "post-incident review meeting", exact=True)]
    return []


def is_key(event: ExportEvent) -> bool:
    """State changes, status updates, tagged decisions and mitigations: what the body of a long PIR shows."""
    return (
        event.type in KEY_KINDS
        or event.announced_status is not None
        or event.mitigation_complete
        or bool(_DECISION.search(event.description[:200]))
    )


def _key_marks(events: list[ExportEvent], limit: int = KEY_EVENTS) -> list[bool]:
    """Which events the body shows: all when there are at most `limit`; else the key ones, at most `limit`. State
    changes and changes of status come first; the other key events fill the rest, spread evenly over time."""
    if len(events) <= limit:
        return [True] * len(events)
    first: list[int] = []
    rest: list[int] = []
    status = None
    for index, event in enumerate(events):
        announced = event.announced_status
        if event.type in STATE_KINDS or event.mitigation_complete or (announced and announced != status):
            first.append(index)
        elif announced or is_key(event):
            rest.append(index)
        status = announced or status
    chosen = first[:limit]
    room = limit - len(chosen)
    if room > 0 and rest:
        step = len(rest) / room
        chosen += rest if len(rest) <= room else [rest[int(i * step)] for i in range(room)]
    marks = [False] * len(events)
    for index in chosen:
        marks[index] = True
    return marks


def _phases(analysis: TimelineAnalysis) -> list[PhaseSection]:
    marks = iter(_key_marks(analysis.events))

    def line(event: ExportEvent) -> TimelineLine:
        return TimelineLine(
            at=event.timestamp,
            kind=event.type,
            actor=event.actor or "",
            text=event.description,
            permalink=event.permalink,
            key=next(marks),
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
    imported = is_imported(export)
    history = [
        f"{change.severity.label} from {format_when(change.at, timezone)}"
        + (f": {' '.join(change.reason.split())}" if change.reason else "")
        for change in incident.severity_history
    ]
    start = analysis.metric("time to resolve")
    given = given_impact_start(export)
    reported = reported_impact(export)
    span = _impact_span(analysis, given is not None)
    headline = _headline(reported, span)
    people, business = _impacts(export, reported, span)
    good, bad, lessons = _judgements(export, analysis, cadence, timezone, imported)
    resolved = incident.resolved_at or (start.end.at if start else None)
    facts = ImpactFacts.from_export(export)
    suggestion = classify(facts).severity if facts != ImpactFacts() else None
    kept = analysis.cadence
    cadence_line = None
    if kept and kept.due and not imported:
        cadence_line = f"{kept.on_time} of {kept.due} on time ({kept.late} late, {kept.missed} periods with no update)"
    phases = _phases(analysis)
    return Pir(
        title=incident.title,
        key=incident.display_key,
        severity=incident.severity.label if incident.severity else "not set",
        severity_history=history,
        status=(incident.status or ("resolved" if resolved else "open")).capitalize(),
        started_at=given.at if given else None,
        declared_at=incident.declared_at,
        resolved_at=resolved,
        duration=start.duration if start else None,
        commander=commander,
        roles=_roles(export),
        services=incident.services,
        summary=_summary(export, analysis, headline, timezone),
        customer_impact=people,
        business_impact=business,
        phases=phases,
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
        lessons=lessons,
        action_items=list(export.action_items),
        follow_up=_follow_up(export),
        timezone=timezone,
        suggested_severity=suggestion.label if isinstance(suggestion, Severity) else None,
        impact_headline=headline,
        reported_metrics=_reported_metrics(export),
        impact_not_reported=list(reported.not_reported),
        imported=imported,
        events_total=len(analysis.events),
        trimmed=len(analysis.events) > KEY_EVENTS,
    )


def clock_style(pir: Pir) -> str:
    """`time` (14:15) when every moment shown falls on one local day, else `datetime` (2024-01-15 14:15)."""
    moments = [phase.start for phase in pir.phases] + [phase.end for phase in pir.phases]
    moments += [m.at for metric in pir.metrics for m in (metric.start, metric.end)]
    if not moments:
        return "time"
    first, last = (format_when(moment, pir.timezone, "date") for moment in (min(moments), max(moments)))
    return "time" if first == last else "datetime"


def render_markdown(pir: Pir) -> str:
    return jinja_env().get_template("pir.md.j2").render(pir=pir, tz=pir.timezone, clock=clock_style(pir))
