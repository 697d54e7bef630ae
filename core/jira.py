"""Jira (SPEC §13.4), the domain side: when sitrep opens, updates and closes an incident's Jira issue, what each
call says, and what the sync's answer means for the action items. Pure: the session comes in; the HTTP lives in
bot/jira.py.

Every call is an outbox row (core.outbox) written in the transaction of the change that causes it. Jira has no
idempotency key, so each created issue carries a label that names what it is for (`sitrep-INC-7`,
`sitrep-INC-7-item-3`): a create retried after a crash finds the issue it already made instead of making another."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core import outbox
from core.enums import Priority, Severity
from core.models import ActionItem, Incident

INTEGRATION = "jira"
CREATE_ISSUE, LABELS, COMMENT = "create_issue", "labels", "comment"
TRANSITION, CREATE_ITEM = "transition", "create_item"
SUMMARY_LIMIT = 255  # Jira's limit on an issue summary
DEFAULT_PRIORITIES: Mapping[str, str] = {
    "sev1": "Highest", "sev2": "High", "sev3": "Medium", "sev4": "Low", "P1": "Highest", "P2": "High", "P3": "Medium",
}  # fmt: skip


@dataclass(frozen=True)
class JiraRules:
    """What decides whether and how sitrep files incidents in Jira (from the settings)."""

    enabled: bool = False
    severities: frozenset[Severity] = frozenset({Severity.SEV1, Severity.SEV2})
    priorities: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PRIORITIES))
    done_transition: str = "Done"

    def files_on_declare(self, severity: Severity) -> bool:
        return self.enabled and severity in self.severities


def tracking_label(incident: Incident, item_id: int | None = None) -> str:
    """The label that names what an issue is for: found again by a retried create."""
    return f"sitrep-{incident.key}" + (f"-item-{item_id}" if item_id is not None else "")


def _cut(text: str, limit: int = SUMMARY_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def issue_fields(incident: Incident, rules: JiraRules) -> dict[str, Any]:
    """The incident issue as stored in the outbox: the channel link is added by the sender (it may not exist yet)."""
    return {
        "summary": _cut(f"{incident.key} {incident.severity.label}: {incident.title}"),
        "description": incident.description or "",
        "labels": ["incident", incident.severity.value, tracking_label(incident)],
        "priority": rules.priorities.get(incident.severity.value),
        "incident": incident.key,
    }


def item_fields(incident: Incident, item: ActionItem, rules: JiraRules) -> dict[str, Any]:
    """An action item's issue: linked to the incident issue, assigned to the owner (found by email at send time)."""
    return {
        "item_id": item.id,
        "summary": _cut(item.title),
        "description": f"Follow-up of {incident.key}: {incident.title}",
        "labels": ["incident-follow-up", tracking_label(incident, item.id)],
        "priority": rules.priorities.get(item.priority.value if isinstance(item.priority, Priority) else "P2"),
        "due": item.due.isoformat() if item.due else None,
        "owner": item.owner_id,
        "incident": incident.key,
    }


def tracked(key: str | None, status: str | None) -> str | None:
    """How an action item's Jira issue is shown (PIR, App Home, reminders): `Jira OPS-12 (In Progress)`."""
    if not key:
        return None
    return f"Jira {key} ({status})" if status else f"Jira {key}"


def _enqueue(session: Session, incident: Incident, operation: str, payload: Mapping[str, Any], why: str,
             now: datetime) -> bool:  # fmt: skip
    return outbox.enqueue_for(session=session, incident=incident, integration=INTEGRATION, operation=operation,
                              payload=payload, why=why, now=now)  # fmt: skip


def has_issue(*, session: Session, incident: Incident) -> bool:
    """Whether the incident has (or is getting) a Jira issue."""
    return incident.jira_key is not None or outbox.has_row(
        session=session, incident_id=incident.id, integration=INTEGRATION, operation=CREATE_ISSUE
    )


def open_issue(*, session: Session, incident: Incident, rules: JiraRules, now: datetime) -> bool:
    """The incident's issue (on declare at a filed severity, or `/incident jira`), and an issue for each of its action
    items so far. False when it has one already."""
    if has_issue(session=session, incident=incident):
        return False
    _enqueue(session, incident, CREATE_ISSUE, issue_fields(incident, rules), "incident", now)
    items = session.scalars(
        sa.select(ActionItem).where(ActionItem.incident_id == incident.id).order_by(ActionItem.id)  # type: ignore[arg-type]
    )
    for item in items:
        _enqueue(session, incident, CREATE_ITEM, item_fields(incident, item, rules), f"item-{item.id}", now)
    return True


def on_declare(*, session: Session, incident: Incident, rules: JiraRules, now: datetime) -> bool:
    """A private incident is filed only by hand (`/incident jira`): its title may be what must not spread."""
    return not incident.private and rules.files_on_declare(incident.severity) and open_issue(
        session=session, incident=incident, rules=rules, now=now
    )


def on_severity_change(*, session: Session, incident: Incident, before: Severity, rules: JiraRules, now: datetime,
                       change_id: int | None) -> bool:  # fmt: skip
    """The issue's severity label follows the incident (and its priority)."""
    if not rules.enabled or before == incident.severity or not has_issue(session=session, incident=incident):
        return False
    payload = {"add": [incident.severity.value], "remove": [before.value],
               "priority": rules.priorities.get(incident.severity.value)}  # fmt: skip
    return _enqueue(session, incident, LABELS, payload, f"severity-{change_id or now.isoformat()}", now)


def on_action_item(*, session: Session, incident: Incident, item: ActionItem, rules: JiraRules,
                   now: datetime) -> bool:  # fmt: skip
    if not rules.enabled or not has_issue(session=session, incident=incident):
        return False
    return _enqueue(session, incident, CREATE_ITEM, item_fields(incident, item, rules), f"item-{item.id}", now)


def resolution_comment(incident: Incident, summary: Sequence[str]) -> str:
    """The comment on resolve: the root cause (never guessed) and the PIR's summary sentences."""
    commander = (incident.people or {}).get(incident.commander_id) or incident.commander_id
    cause = incident.root_cause or f"to be completed by the commander ({commander})"
    lines = [f"{incident.key} resolved.", "", f"Root cause: {cause}"]
    if incident.contributing_factors:
        lines += ["", "Contributing factors:"] + [f"- {factor}" for factor in incident.contributing_factors]
    if summary:
        lines += ["", "Summary:"] + list(summary)
    return "\n".join(lines)


def on_resolve(*, session: Session, incident: Incident, rules: JiraRules, now: datetime,
               summary: Sequence[str]) -> bool:  # fmt: skip
    """A comment with the root cause and the PIR summary, then the done transition."""
    if not rules.enabled or not has_issue(session=session, incident=incident):
        return False
    why = f"resolve-{now.isoformat()}"
    _enqueue(session, incident, COMMENT, {"text": resolution_comment(incident, summary), "marker": why}, why, now)
    return _enqueue(session, incident, TRANSITION, {"name": rules.done_transition}, why, now)


# --- what the sender and the sync record ----------------------------------------------------------------


def record_issue(*, session: Session, incident_id: int, key: str) -> None:
    session.execute(sa.update(Incident).where(Incident.id == incident_id).values(jira_key=key))  # type: ignore[arg-type]


def record_item_issue(*, session: Session, item_id: int, key: str) -> None:
    session.execute(sa.update(ActionItem).where(ActionItem.id == item_id).values(jira_key=key))  # type: ignore[arg-type]


def item_issue(*, session: Session, item_id: int) -> str | None:
    return session.execute(sa.select(ActionItem.jira_key).where(ActionItem.id == item_id)).scalar_one_or_none()  # type: ignore[call-overload, arg-type, no-any-return]


def incident_issue(*, session: Session, incident_id: int) -> str | None:
    return session.execute(sa.select(Incident.jira_key).where(Incident.id == incident_id)).scalar_one_or_none()  # type: ignore[call-overload, arg-type, no-any-return]


def open_item_keys(*, session: Session) -> list[str]:
    """The Jira keys of the action items still open in sitrep (what the sync reads back)."""
    query = sa.select(ActionItem.jira_key).where(ActionItem.status == "open", ActionItem.jira_key.is_not(None))  # type: ignore[union-attr, call-overload, arg-type]
    return sorted({key for key in session.execute(query).scalars() if key})


@dataclass(frozen=True)
class IssueState:
    key: str
    status: str
    done: bool  # Jira's status category is "done"


def apply_sync(*, session: Session, states: Sequence[IssueState]) -> list[ActionItem]:
    """Record each issue's status on its action item; items whose issue is done become done. Returns those."""
    by_key = {state.key: state for state in states}
    if not by_key:
        return []
    items = list(session.scalars(sa.select(ActionItem).where(ActionItem.jira_key.in_(by_key))))  # type: ignore[union-attr]
    finished = []
    for item in items:
        state = by_key[item.jira_key or ""]
        item.jira_status = state.status[:64]
        item.jira_done = state.done
        if state.done and item.status == "open":
            item.status = "done"
            finished.append(item)
    session.flush()
    return finished
