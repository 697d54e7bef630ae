"""Alertmanager alert groups in Slack (SPEC §13.3): each group's one triage message, kept in step with the group's
notifications, and its Declare and Dismiss buttons.

The HTTP answer to Alertmanager waits only for `receive` to store the notification; the message is posted or edited
in the background by `sync`, which holds the row's render lease (core.alerts.claim_render) while it talks to Slack
and goes round again when more notifications came meanwhile, so a storm costs one post and a few edits a group."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from slack_bolt import Ack, App
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import ActionsBlock
from sqlmodel import Session

from core import alerts as core_alerts
from core.alerts import Notification, Recorded
from core.errors import InvalidState, NotFound
from core.models import AlertGroup, Incident
from core.templating import format_when
from handlers import blockkit, modals
from handlers.deps import Deps
from handlers.flows import slack_error
from handlers.reply import Who, guarded

log = logging.getLogger("sitrep.alerts")

DECLARE_ACTION = "sitrep_alert_declare"
DISMISS_ACTION = "sitrep_alert_dismiss"
SHOWN_ALERTS = 8
SHOWN_GROUPS = 30
DRAINERS = 2  # worker threads that talk to Slack about alerts at most at once
EDIT_GAP = 1.0  # seconds between two edits of one message (Slack's chat.update allows about one a second)


def receive(deps: Deps, notification: Notification) -> Recorded:
    """Store one notification (the only work the HTTP answer waits for) and show it in Slack in the background."""
    recorded = deps.together(
        lambda session: core_alerts.record(session=session, notification=notification, now=deps.now())
    )
    in_background(deps, recorded.render_id)
    return recorded


@dataclass
class _Queue:
    """Rows whose message is to be brought up to date, worked off by at most DRAINERS jobs of the worker pool: a
    storm takes a few of the pool's threads (the Slack listeners keep the others) and coalesces in the queue."""

    rows: deque[int] = field(default_factory=deque)
    queued: set[int] = field(default_factory=set)
    deferred: set[int] = field(default_factory=set)
    edited: dict[int, float] = field(default_factory=dict)  # when each message was last edited (monotonic)
    draining: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _queue(deps: Deps) -> _Queue:
    queue = deps.extra.get("alert_queue")
    return queue if isinstance(queue, _Queue) else deps.extra.setdefault("alert_queue", _Queue())


def in_background(deps: Deps, row_id: int, *, delay: float = 0.0) -> None:
    """Bring the row's message up to date in the background (in `delay` seconds); asking again while it waits
    costs nothing: the run shows the latest state of the row."""
    queue = _queue(deps)
    later = getattr(deps.executor, "submit_later", None)
    if delay > 0 and later is not None:
        with queue.lock:
            if row_id in queue.deferred or row_id in queue.queued:
                return
            queue.deferred.add(row_id)
        later(delay, in_background, deps, row_id)
        return
    with queue.lock:
        queue.deferred.discard(row_id)
        if row_id not in queue.queued:
            queue.queued.add(row_id)
            queue.rows.append(row_id)
        if queue.draining >= DRAINERS:
            return
        queue.draining += 1
    if deps.executor is None:
        _drain(deps)
    else:
        deps.executor.submit(_drain, deps)


def _drain(deps: Deps) -> None:
    queue = _queue(deps)
    while True:
        with queue.lock:
            if not queue.rows:
                queue.draining -= 1
                return
            row_id = queue.rows.popleft()
            queue.queued.discard(row_id)
        try:
            sync(deps, row_id)
        except Exception:  # noqa: BLE001 - logged; the scheduler's catch-up or the next notification tries again
            log.exception("could not show alert group %s in Slack", row_id, extra={"alert_group": row_id})


def _edit_wait(deps: Deps, row_id: int) -> float:
    """Seconds until this process may edit the row's message again (at most one edit a message per EDIT_GAP)."""
    last = _queue(deps).edited.get(row_id)
    return 0.0 if last is None else max(0.0, last + EDIT_GAP - time.monotonic())


def sync(deps: Deps, row_id: int) -> None:
    """Bring the row's triage message up to date; returns when it is, when someone else is updating it, or when
    its last edit was too recent (then it runs again once the gap has passed)."""
    while True:
        wait = _edit_wait(deps, row_id)
        if wait > 0:
            with deps.read() as session:
                behind = core_alerts.is_behind(session=session, group_id=row_id)
            if behind:
                in_background(deps, row_id, delay=wait)
            return
        with deps.tx() as session:
            row = core_alerts.claim_render(session=session, group_id=row_id, now=deps.now())
            if row is None:
                return
            version, channel, ts = row.version, row.channel_id, row.message_ts
            text, blocks = render(deps, session, row)
        posted: tuple[str, str] | None = None
        try:
            if ts is None or channel is None:
                posted = _post(deps, text, blocks)
            else:
                deps.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        except BaseException:
            with deps.tx() as session:
                core_alerts.finish_render(session=session, group_id=row_id, version=None)
            raise
        _queue(deps).edited[row_id] = time.monotonic()
        with deps.tx() as session:
            core_alerts.finish_render(
                session=session,
                group_id=row_id,
                version=version,
                channel_id=posted[0] if posted else None,
                ts=posted[1] if posted else None,
            )


def catch_up(deps: Deps) -> int:
    """Bring every message that fell behind up to date (a scheduler job); returns how many were behind."""
    with deps.read() as session:
        rows = core_alerts.behind(session=session, now=deps.now())
    for row_id in rows:
        in_background(deps, row_id)
    return len(rows)


def _post(deps: Deps, text: str, blocks: list[dict[str, Any]]) -> tuple[str, str]:
    channel = deps.config.triage_channel
    if not channel:
        raise RuntimeError("SITREP_TRIAGE_CHANNEL is not set")
    try:
        response = deps.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
    except SlackApiError as exc:
        if slack_error(exc) != "not_in_channel":
            raise
        deps.client.conversations_join(channel=channel)
        response = deps.client.chat_postMessage(channel=channel, text=text, blocks=blocks)
    return str(response["channel"]), str(response["ts"])


def safe_url(url: str) -> str | None:
    """A link target Slack can show: http(s) only, with no `|` that would end the link early."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return url.replace("|", "%7C")


def render(deps: Deps, session: Session, row: AlertGroup) -> tuple[str, list[dict[str, Any]]]:
    """The text and blocks of a row's message: a group's triage message, or a flood summary."""
    if row.kind == "summary":
        return _render_summary(session, row)
    notification = Notification.from_json(row.payload)
    incident = core_alerts.incident_of(session=session, group=row)
    alerts = [
        {**vars(alert), "name": alert.name, "summary": alert.summary, "url": safe_url(alert.generator_url),
         "since": format_when(core_alerts.moment(alert.starts_at, row.created_at), deps.config.timezone)}
        for alert in sorted(notification.alerts, key=lambda a: (a.status != "firing", a.starts_at))
    ]
    body = blockkit.mrkdwn(
        "triage",
        group=row,
        alerts=alerts,
        truncated=notification.truncated_alerts,
        firing=len(notification.firing),
        shown=SHOWN_ALERTS,
        external_url=safe_url(notification.external_url),
        incident=incident,
    )
    state = "Resolved" if row.status == "resolved" else "Firing"
    text = blockkit.fallback_text(f"{state}: {notification.title}")
    blocks: list[Any] = [blockkit.section(body)]
    if row.status == "firing" and incident is None and row.dismissed_by is None:
        value = str(row.id)
        blocks.append(
            ActionsBlock(
                block_id=f"alert-group-{row.id}",
                elements=[
                    blockkit.button("Declare", DECLARE_ACTION, value, style="primary"),
                    blockkit.button("Dismiss", DISMISS_ACTION, value),
                ],
            )
        )
    return text, blockkit.to_dicts(blocks)


def _render_summary(session: Session, row: AlertGroup) -> tuple[str, list[dict[str, Any]]]:
    assert row.id is not None
    lines = []
    for member in core_alerts.members_of(session=session, summary_id=row.id):
        notification = Notification.from_json(member.payload)
        incident = core_alerts.incident_of(session=session, group=member)
        lines.append({
            "status": member.status,
            "names": ", ".join(sorted({a.name for a in notification.alerts})) or "alert",
            "title": notification.common_annotations.get("summary", ""),
            "count": len(notification.alerts) + notification.truncated_alerts,
            "dismissed_by": member.dismissed_by,
            "incident": incident.key if incident else None,
        })  # fmt: skip
    body = blockkit.mrkdwn("triage_summary", groups=lines, shown=SHOWN_GROUPS, limit=core_alerts.TRIAGE_PER_MINUTE)
    text = blockkit.fallback_text(f"{len(lines)} more alert groups firing")
    return text, blockkit.to_dicts([blockkit.section(body)])


def linker(deps: Deps, group_id: int) -> Callable[[Session, Incident], None]:
    """What flows.declare runs in its transaction for an incident declared from an alert group."""

    def link(session: Session, incident: Incident) -> None:
        core_alerts.link_incident(session=session, group_id=group_id, incident=incident, now=deps.now())

    return link


def refresh(deps: Deps, group_id: int) -> None:
    """Show a group's changed state (declared, dismissed) in its message."""
    with deps.read() as session:
        row = core_alerts.group_by_id(session=session, group_id=group_id)
    if row is not None:
        sync(deps, row.summary_id or group_id)


def _group_of(deps: Deps, body: dict[str, Any]) -> tuple[AlertGroup, Incident | None]:
    value = (body.get("actions") or [{}])[0].get("value") or ""
    with deps.read() as session:
        row = core_alerts.group_by_id(session=session, group_id=int(value)) if value.isdigit() else None
        if row is None or row.kind != "group":
            raise NotFound("That alert group is no longer known.")
        return row, core_alerts.incident_of(session=session, group=row)


def open_declare(deps: Deps, body: dict[str, Any]) -> None:
    """Declare: the declare form, prefilled from the alerts (title from the summary, severity from the label)."""
    row, incident = _group_of(deps, body)
    if incident is not None:
        raise InvalidState(f"These alerts are part of {incident.key} already: <#{incident.channel_id}>.")
    notification = Notification.from_json(row.payload)
    names = ", ".join(sorted({alert.name for alert in notification.alerts}))
    source = safe_url(notification.external_url) or next(
        (url for url in (safe_url(a.generator_url) for a in notification.alerts) if url), None
    )
    description = f"From Alertmanager: {names}" + (f"\n{source}" if source else "")
    view = modals.declare_view(
        channel_id=Who.of(body).channel_id,
        title=notification.title,
        severity=core_alerts.suggested_severity(notification, deps.config.alert_severity),
        description=description,
        alert_group=row.id,
    )
    deps.client.views_open(trigger_id=body["trigger_id"], view=view)


def dismiss(deps: Deps, body: dict[str, Any]) -> None:
    row, _ = _group_of(deps, body)
    assert row.id is not None
    with deps.tx() as session:
        core_alerts.dismiss(session=session, group_id=row.id, user_id=body["user"]["id"], now=deps.now())
    sync(deps, row.summary_id or row.id)


def _ack(ack: Ack) -> None:
    ack()


def register(app: App) -> None:
    app.action(DECLARE_ACTION)(ack=_ack, lazy=[guarded(open_declare)])
    app.action(DISMISS_ACTION)(ack=_ack, lazy=[guarded(dismiss)])
