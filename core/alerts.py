"""Alertmanager notifications and their alert groups (SPEC §13.3). Pure domain: the session and the time come in.

A notification (webhook payload version 4) is stored on its group's row in one short transaction; the group's one
triage message is posted or edited afterwards by whoever claims the row's render lease (see `claim_render`), so
that notifications arriving together never post a group twice and the message ends with the latest state."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from core.enums import EntryKind, Severity
from core.errors import BadPayload
from core.models import AlertGroup, Incident
from core.store import add_entry

TRIAGE_PER_MINUTE = 20
RENDER_LEASE = timedelta(seconds=60)
DEFAULT_ALERT_SEVERITY = "critical=sev2,warning=sev3,info=sev4"
_NEW_GROUP_LOCK = 0x5173_0005  # PostgreSQL advisory lock: new groups are counted one at a time (flood control)


@dataclass(frozen=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    ends_at: str
    generator_url: str
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname") or "alert"

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.annotations.get("description") or ""


@dataclass(frozen=True)
class Notification:
    group_key: str
    status: str
    receiver: str = ""
    alerts: list[Alert] = field(default_factory=list)
    group_labels: dict[str, str] = field(default_factory=dict)
    common_labels: dict[str, str] = field(default_factory=dict)
    common_annotations: dict[str, str] = field(default_factory=dict)
    external_url: str = ""
    truncated_alerts: int = 0

    @property
    def firing(self) -> list[Alert]:
        return [alert for alert in self.alerts if alert.status == "firing"]

    @property
    def title(self) -> str:
        """The incident title an alert suggests: the summary, else the alert names."""
        first = (self.firing or self.alerts or [None])[0]
        summary = self.common_annotations.get("summary") or (first.summary if first else "")
        if summary:
            return summary
        names = sorted({alert.name for alert in self.alerts}) or [self.group_labels.get("alertname", "Alert")]
        return ", ".join(names)

    def severity_label(self) -> str | None:
        first = (self.firing or self.alerts or [None])[0]
        return self.common_labels.get("severity") or (first.labels.get("severity") if first else None)

    def to_json(self) -> dict[str, Any]:
        """As stored (dataclasses.asdict, which deep-copies, costs more than the rest of a notification's path)."""
        return {**vars(self), "alerts": [dict(vars(alert)) for alert in self.alerts]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Notification:
        alerts = [Alert(**alert) for alert in data.get("alerts") or []]
        return cls(**{**data, "alerts": alerts})


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadPayload(where, "must be an object of strings")
    return {str(k): v for k, v in value.items()}


def _text(data: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadPayload(where, "must be a non-empty string" if required else "must be a string")
    return value


def parse_notification(body: Any) -> Notification:
    """Alertmanager's webhook payload (version 4) as a Notification; BadPayload names the first wrong field."""
    if not isinstance(body, dict):
        raise BadPayload("body", "must be a JSON object")
    if str(body.get("version", "4")) != "4":
        raise BadPayload("version", "only version 4 of the webhook payload is understood")
    status = _text(body, "status", "status", required=True)
    if status not in ("firing", "resolved"):
        raise BadPayload("status", "must be firing or resolved")
    raw_alerts = body.get("alerts")
    if not isinstance(raw_alerts, list):
        raise BadPayload("alerts", "must be a list")
    alerts = []
    for n, raw in enumerate(raw_alerts):
        where = f"alerts[{n}]"
        if not isinstance(raw, dict):
            raise BadPayload(where, "must be an object")
        labels = _strings(raw.get("labels"), f"{where}.labels")
        alert_status = _text(raw, "status", f"{where}.status") or status
        fingerprint = _text(raw, "fingerprint", f"{where}.fingerprint") or _fingerprint(labels)
        alerts.append(
            Alert(
                status="resolved" if alert_status == "resolved" else "firing",
                labels=labels,
                annotations=_strings(raw.get("annotations"), f"{where}.annotations"),
                starts_at=_text(raw, "startsAt", f"{where}.startsAt"),
                ends_at=_text(raw, "endsAt", f"{where}.endsAt"),
                generator_url=_text(raw, "generatorURL", f"{where}.generatorURL"),
                fingerprint=fingerprint,
            )
        )
    truncated = body.get("truncatedAlerts") or 0
    if not isinstance(truncated, int):
        raise BadPayload("truncatedAlerts", "must be a number")
    return Notification(
        group_key=_text(body, "groupKey", "groupKey", required=True),
        status=status,
        receiver=_text(body, "receiver", "receiver"),
        alerts=alerts,
        group_labels=_strings(body.get("groupLabels"), "groupLabels"),
        common_labels=_strings(body.get("commonLabels"), "commonLabels"),
        common_annotations=_strings(body.get("commonAnnotations"), "commonAnnotations"),
        external_url=_text(body, "externalURL", "externalURL"),
        truncated_alerts=truncated,
    )


def _fingerprint(labels: Mapping[str, str]) -> str:
    return hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16]


def parse_alert_severity(text: str) -> dict[str, Severity]:
    """`critical=sev2,warning=sev3` -> {label value: severity}; ValueError names the wrong part."""
    mapping: dict[str, Severity] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        label, sep, severity = part.partition("=")
        if not sep or not label.strip():
            raise ValueError(f"{part!r} is not label=sevN, e.g. critical=sev2")
        mapping[label.strip().lower()] = Severity.parse(severity)
    return mapping


def suggested_severity(notification: Notification, mapping: Mapping[str, Severity]) -> Severity | None:
    label = notification.severity_label()
    return mapping.get(label.lower()) if label else None


# --- storing notifications ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    group_id: int
    render_id: int  # the row whose message shows the group: its own, or the flood summary it is part of
    incident_id: int | None
    new: bool


def group_hash(group_key: str) -> str:
    return hashlib.sha256(group_key.encode()).hexdigest()


def _get_or_create(session: Session, *, hash_: str, key: str, kind: str, now: datetime) -> tuple[AlertGroup, bool]:
    """The row of a group (or summary), made when missing; safe when several make it at once (unique hash)."""
    row = session.exec(select(AlertGroup).where(AlertGroup.group_hash == hash_)).first()
    if row is not None:
        return row, False
    try:
        with session.begin_nested():
            row = AlertGroup(group_hash=hash_, group_key=key, kind=kind, created_at=now, updated_at=now)
            session.add(row)
    except IntegrityError:
        row = session.exec(select(AlertGroup).where(AlertGroup.group_hash == hash_)).one()
        return row, False
    return row, True


def _own_messages_since(session: Session, since: datetime) -> int:
    query = (
        select(func.count())
        .select_from(AlertGroup)
        .where(AlertGroup.kind == "group", col(AlertGroup.summary_id).is_(None), col(AlertGroup.created_at) > since)
    )
    return int(session.exec(query).one())


def _summary_for(session: Session, now: datetime) -> AlertGroup:
    """The flood summary of this minute: one message that sums up the groups beyond the limit."""
    minute = now.strftime("%Y%m%dT%H%M")
    row, _ = _get_or_create(session, hash_=f"summary-{minute}", key=f"summary {minute}", kind="summary", now=now)
    return row


def record(
    *, session: Session, notification: Notification, now: datetime, per_minute: int = TRIAGE_PER_MINUTE
) -> Recorded:
    """Store one notification on its group; a group linked to an incident adds the changes to its timeline.

    The hot path of a storm: one indexed look-up and one UPDATE (the stored payload is neither read nor parsed)."""
    table = AlertGroup.__table__  # type: ignore[attr-defined]
    hash_ = group_hash(notification.group_key)
    look = sa.select(table.c.id, table.c.status, table.c.incident_id, table.c.summary_id)
    found = session.execute(look.where(table.c.group_hash == hash_)).first()
    new = False
    if found is None:
        if session.get_bind().dialect.name == "postgresql":  # replicas count new groups one at a time
            session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _NEW_GROUP_LOCK})
        row, new = _get_or_create(session, hash_=hash_, key=notification.group_key, kind="group", now=now)
        if new and _own_messages_since(session, now - timedelta(minutes=1)) > per_minute:
            row.summary_id = _summary_for(session, now).id
        session.flush()
        found = session.execute(look.where(table.c.id == row.id)).one()
    group_id, before, incident_id, summary_id = found
    values: dict[str, Any] = {
        "status": notification.status,
        "receiver": notification.receiver[:255],
        "payload": notification.to_json(),
        "version": table.c.version + 1,
        "updated_at": now,
    }
    if notification.status == "firing" and before == "resolved":
        values["dismissed_by"] = None  # the group fires again: it needs a look again
    if incident_id is not None:
        states = dict(session.execute(sa.select(table.c.alert_states).where(table.c.id == group_id)).scalar_one())
        incident = session.get(Incident, incident_id)
        if incident is not None:
            _add_changes(session, incident, notification, states, before, now)
        values["alert_states"] = {**states, **_states(notification)}
    session.execute(sa.update(table).where(table.c.id == group_id).values(**values))
    if summary_id is not None:
        bump(session=session, group_id=summary_id)
    return Recorded(group_id=group_id, render_id=summary_id or group_id, incident_id=incident_id, new=new)


def _states(notification: Notification) -> dict[str, str]:
    return {alert.fingerprint: alert.status for alert in notification.alerts}


def _describe(alert: Alert) -> str:
    return f"{alert.name}: {alert.summary}" if alert.summary else alert.name


def moment(text: str, default: datetime) -> datetime:
    """An alert's RFC 3339 time (startsAt, endsAt), or `default` when it has none (Alertmanager's zero time)."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return default
    return when if when.tzinfo is not None and when.year > 1 else default


def _alert_entry(session: Session, incident: Incident, alert: Alert, kind: EntryKind, now: datetime) -> None:
    firing = alert.status == "firing"
    add_entry(
        session=session,
        incident=incident,
        kind=kind,
        text=f"Alert {'firing' if firing else 'resolved'}: {_describe(alert)}",
        actor="alertmanager",
        now=now,
        occurred_at=min(moment(alert.starts_at if firing else alert.ends_at, now), now),
        source="alert",
        details={"fingerprint": alert.fingerprint, "status": alert.status},
    )


def _add_changes(
    session: Session, incident: Incident, n: Notification, states: dict[str, str], before: str, now: datetime
) -> None:
    changed = [alert for alert in n.alerts if states.get(alert.fingerprint) != alert.status]
    for alert in (a for a in changed if a.status == "firing"):
        _alert_entry(session, incident, alert, EntryKind.DETECTION, now)
    if n.status == "resolved" and before != "resolved":
        names = ", ".join(sorted({alert.name for alert in n.alerts}))
        add_entry(session=session, incident=incident, kind=EntryKind.NOTE, text=f"Alert group resolved: {names}",
                  actor="alertmanager", now=now, source="alert", details={"status": "resolved"})  # fmt: skip
        return
    for alert in (a for a in changed if a.status == "resolved"):
        _alert_entry(session, incident, alert, EntryKind.NOTE, now)


def link_incident(*, session: Session, group_id: int, incident: Incident, now: datetime) -> bool:
    """Make the group's alerts part of the incident declared from it; False when it is linked already."""
    row = session.get(AlertGroup, group_id)
    if row is None or row.incident_id is not None:
        return False
    notification = Notification.from_json(row.payload)
    row.incident_id = incident.id
    row.alert_states = _states(notification)
    row.version += 1
    row.updated_at = now
    session.add(row)
    for alert in notification.firing:
        _alert_entry(session, incident, alert, EntryKind.TRIGGER, now)
    session.flush()
    return True


def dismiss(*, session: Session, group_id: int, user_id: str, now: datetime) -> AlertGroup | None:
    row = session.get(AlertGroup, group_id)
    if row is None or row.kind != "group":
        return None
    if row.dismissed_by is None:
        row.dismissed_by = user_id
        row.version += 1
        row.updated_at = now
        session.add(row)
        if row.summary_id is not None:
            bump(session=session, group_id=row.summary_id)
    return row


def bump(*, session: Session, group_id: int) -> None:
    """Ask for the message of a row to be shown again (its state changed elsewhere, e.g. the incident)."""
    session.execute(sa.update(AlertGroup).where(col(AlertGroup.id) == group_id).values(version=AlertGroup.version + 1))


# --- rendering the triage message -----------------------------------------------------------------------


def claim_render(*, session: Session, group_id: int, now: datetime) -> AlertGroup | None:
    """Take the row's render lease when its message is behind; None when it is current or someone renders it."""
    table = AlertGroup.__table__  # type: ignore[attr-defined]
    claimed = session.execute(
        sa.update(table)
        .where(
            table.c.id == group_id,
            table.c.rendered_version < table.c.version,
            sa.or_(table.c.render_until.is_(None), table.c.render_until < now),
        )
        .values(render_until=now + RENDER_LEASE)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(AlertGroup, group_id, populate_existing=True)


def finish_render(
    *, session: Session, group_id: int, version: int | None, channel_id: str | None = None, ts: str | None = None
) -> None:
    """Record what the message now shows (None: the attempt failed) and give the lease back."""
    values: dict[str, Any] = {"render_until": None}
    if version is not None:
        values["rendered_version"] = version
    if ts is not None:
        values.update(channel_id=channel_id, message_ts=ts)
    session.execute(sa.update(AlertGroup).where(col(AlertGroup.id) == group_id).values(**values))


def is_behind(*, session: Session, group_id: int) -> bool:
    table = AlertGroup.__table__  # type: ignore[attr-defined]
    query = sa.select(table.c.rendered_version < table.c.version).where(table.c.id == group_id)
    return bool(session.execute(query).scalar())


def behind(*, session: Session, now: datetime) -> list[int]:
    """Rows whose message is behind their state and that no one is updating (Slack failed, a replica stopped)."""
    table = AlertGroup.__table__  # type: ignore[attr-defined]
    query = sa.select(table.c.id).where(
        table.c.rendered_version < table.c.version,
        table.c.summary_id.is_(None),
        sa.or_(table.c.render_until.is_(None), table.c.render_until < now),
    )
    return [int(row_id) for row_id in session.execute(query.order_by(table.c.id)).scalars()]


def members_of(*, session: Session, summary_id: int) -> list[AlertGroup]:
    query = select(AlertGroup).where(AlertGroup.summary_id == summary_id)
    return list(session.exec(query.order_by(col(AlertGroup.id))))


def group_by_id(*, session: Session, group_id: int) -> AlertGroup | None:
    return session.get(AlertGroup, group_id)


def incident_of(*, session: Session, group: AlertGroup) -> Incident | None:
    return session.get(Incident, group.incident_id) if group.incident_id else None
