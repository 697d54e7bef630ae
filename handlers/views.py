"""Modal submissions and the declare modal's live severity suggestion."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from core import statuspage, store
from core.enums import Phase, Severity
from core.models import Incident
from handlers import alerts, flows, modals, resolution
from handlers.deps import Deps
from handlers.reply import Who, after_ack, guarded


def _errors_of_declare(values: dict[str, Any]) -> dict[str, str]:
    title = modals.declare_from_state(values)["title"]
    return {} if " ".join(title.split()) else {"title": "Give the incident a title."}


def ack_declare(ack: Ack, view: dict[str, Any]) -> None:
    errors = _errors_of_declare(view["state"]["values"])
    ack(response_action="errors", errors=errors) if errors else ack()


def run_declare(deps: Deps, body: dict[str, Any]) -> None:
    view = body["view"]
    values = modals.declare_from_state(view["state"]["values"])
    meta = modals.metadata(view)
    who = Who(user_id=body["user"]["id"], channel_id=meta.get("channel_id"), response_url=None)
    group = meta.get("alert_group") if isinstance(meta.get("alert_group"), int) else None
    also = alerts.linker(deps, group) if group else None
    flows.declare(deps, who, team_id=(body.get("team") or {}).get("id"), also=also, **values)
    if group:
        alerts.refresh(deps, group)


def ack_impact_changed(ack: Ack) -> None:
    ack()


def run_impact_changed(deps: Deps, body: dict[str, Any]) -> None:
    """Show the suggested severity and its reasons in the declare modal as the impact answers change."""
    view = body["view"]
    values = dict((view.get("state") or {}).get("values") or {})
    for action in body.get("actions") or []:  # the answer that just changed, in case state lags behind
        values[action["block_id"]] = {action["action_id"]: action}
    impact = modals.impact_from_state(values)
    severity, reasons = flows.suggest(deps, severity=None, impact=impact)
    text = modals.suggestion_text(severity, [r.removeprefix("suggested: ") for r in reasons])
    meta = modals.metadata(view)
    again = modals.declare_view(channel_id=meta.get("channel_id"), suggestion=text, alert_group=meta.get("alert_group"))
    deps.client.views_update(view_id=view["id"], hash=view.get("hash"), view=again)


def _incident_of(deps: Deps, view: dict[str, Any], user_id: str) -> Incident:
    """The incident a submitted modal is about, if the person submitting it may change it."""
    incident_id = modals.metadata(view).get("incident_id")
    with deps.read() as session:
        incident = store.incident_by_id(session=session, incident_id=incident_id)
    flows.require_member(deps, incident, user_id)
    return incident


def ack_update(ack: Ack, view: dict[str, Any]) -> None:
    text = modals.state_value(view, "text") or ""
    ack(response_action="errors", errors={"text": "Say what changed."}) if not text else ack()


def run_update(deps: Deps, body: dict[str, Any]) -> None:
    view = body["view"]
    incident = _incident_of(deps, view, body["user"]["id"])
    phase = modals.state_value(view, "phase")
    flows.status_update(
        deps,
        incident,
        phase=Phase(phase) if phase else None,
        text=modals.state_value(view, "text") or "",
        author_id=body["user"]["id"],
        public=bool(modals.published(view)),
    )


def run_severity(deps: Deps, body: dict[str, Any]) -> None:
    view = body["view"]
    incident = _incident_of(deps, view, body["user"]["id"])
    flows.change_severity(
        deps,
        incident,
        severity=Severity(modals.state_value(view, "severity")),
        reason=modals.state_value(view, "reason") or "",
        actor_id=body["user"]["id"],
    )


def run_resolve(deps: Deps, body: dict[str, Any]) -> None:
    view = body["view"]
    incident = _incident_of(deps, view, body["user"]["id"])
    resolution.resolve(deps, incident, actor_id=body["user"]["id"], publish=modals.published(view),
                       **modals.resolution_from_state(view))  # fmt: skip


def ack_statuspage(ack: Ack, view: dict[str, Any]) -> None:
    values = modals.statuspage_from_state(view)
    errors = {block: "Required." for block in ("name", "body") if not " ".join(values[block].split())}
    ack(response_action="errors", errors=errors) if errors else ack()


def run_statuspage(deps: Deps, body: dict[str, Any]) -> None:
    view = body["view"]
    incident = _incident_of(deps, view, body["user"]["id"])
    with deps.tx() as session:
        incident = store.reload(session=session, incident=incident)
        statuspage.publish(session=session, incident=incident, now=deps.now(), **modals.statuspage_from_state(view))
    flows.post_in_channel(deps, incident, f":globe_with_meridians: <@{body['user']['id']}> is making "
                                          f"{incident.key} public on the status page.")  # fmt: skip



def register(app: App) -> None:
    app.view(modals.DECLARE)(ack=ack_declare, lazy=[guarded(run_declare)])
    app.view(modals.UPDATE)(ack=ack_update, lazy=[guarded(run_update)])
    app.view(modals.SEVERITY)(**after_ack(run_severity))
    app.view(modals.RESOLVE)(**after_ack(run_resolve))
    app.view(modals.STATUSPAGE)(ack=ack_statuspage, lazy=[guarded(run_statuspage)])
    app.action(modals.IMPACT_ACTION)(ack=ack_impact_changed, lazy=[guarded(run_impact_changed)])

