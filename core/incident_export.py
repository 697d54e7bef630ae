"""A stored incident as a canonical export (SPEC §3 `sitrep export`), so that `sitrep pir` on the export gives
the same PIR as the one the bot posts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from core import store
from core.enums import EntryKind, IncidentStatus
from core.export import IncidentExport, parse_export
from core.jira import tracked
from core.models import Incident

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def export_incident(*, session: Session, incident: Incident, names: Mapping[str, str] | None = None) -> IncidentExport:
    """Build the canonical export of a stored incident. `names` maps Slack user ids to display names."""
    names = names or {}

    def who(user_id: str | None) -> str | None:
        if not user_id:
            return None
        return names.get(user_id, user_id)

    def readable(text: str) -> str:
        """Mentions the bot wrote (`<@U123>`) as names: the export is read by people and by other tools."""
        return _MENTION.sub(lambda m: f"@{who(m.group(1))}", text)

    roles = store.roles_of(session=session, incident=incident)
    events: list[dict[str, Any]] = []
    for entry in store.entries_of(session=session, incident=incident):
        event: dict[str, Any] = {
            "timestamp": _iso(entry.occurred_at),
            "type": entry.kind.value,
            "description": readable(entry.text),
            "actor": who(entry.actor),
            "source": entry.source if entry.source in ("reaction", "pin", "shortcut", "command", "bot") else None,
            "permalink": entry.permalink,
            "metadata": dict(entry.details or {}),
        }
        if entry.kind == EntryKind.STATUS_UPDATE and "status" not in event["metadata"]:
            event["metadata"]["status"] = incident.phase.value
        events.append(event)

    severity_history = [
        {"at": _iso(change.changed_at), "severity": change.to_severity.value, "reason": change.reason or None,
         "actor": who(change.actor_id)}
        for change in store.severity_changes_of(session=session, incident=incident)
    ]  # fmt: skip
    participants: list[dict[str, Any]] = []
    seen: set[str] = set()
    for role, user in roles.items():
        participants.append({"name": who(user), "role": role.title, "user_id": user})
        seen.add(user)
    for participant in store.participants_of(session=session, incident=incident):
        if participant.user_id not in seen:
            participants.append({"name": who(participant.user_id), "role": "Responder", "user_id": participant.user_id})
            seen.add(participant.user_id)

    impact = dict(incident.impact or {})
    data: dict[str, Any] = {
        "incident": {
            "key": incident.key,
            "id": incident.key,
            "title": incident.title,
            "severity": incident.severity.value,
            "status": incident.status.value,
            "declared_at": _iso(incident.declared_at),
            "resolved_at": _iso(incident.resolved_at) if incident.status == IncidentStatus.RESOLVED else None,
            "commander": who(incident.commander_id),
            "affected_services": list(incident.services),
            "description": incident.description or None,
            "channel_id": incident.channel_id,
            "channel_name": incident.channel_name,
            "private": incident.private,
            "severity_history": severity_history,
            "roles": {role.value: who(user) for role, user in roles.items()},
        },
        "events": events,
        "impact": {
            "affected_users_percentage": impact.get("users_affected_pct"),
            "revenue_impact": impact.get("revenue_impact"),
            "customer_facing": impact.get("customer_facing"),
            "workaround_available": impact.get("workaround_available"),
            # Ticked boxes of the declare form: an unticked one is the form's default, not a "no" anyone gave,
            # so it is left out ("not reported") rather than exported as "no data was lost".
            "security_breach": impact.get("security_breach") or None,
            "data_loss": impact.get("data_loss") or None,
            "revenue_systems_down": impact.get("revenue_systems_down") or None,
            "sla_or_regulatory": impact.get("sla_or_regulatory") or None,
            "customer_impact": incident.customer_impact,
        },
        "resolution": {
            "root_cause": incident.root_cause,
            "contributing_factors": list(incident.contributing_factors),
            "lessons": list(incident.lessons),
            "five_whys": [dict(w) for w in incident.five_whys],
        },
        "action_items": [
            {
                "title": item.title,
                "owner": who(item.owner_id),
                "priority": item.priority.value,
                "deadline": item.due.isoformat() if item.due else None,
                "status": item.status,
                "tracker": tracked(item.jira_key, item.jira_status),
            }
            for item in store.action_items_of(session=session, incident=incident)
        ],  # fmt: skip
        "participants": participants,
    }
    return parse_export(_drop_none(data), require_events=False)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
