"""Buttons on the bot's messages: Post update, Change severity, Resolve (they open modals)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from core import store
from core.errors import NotFound
from core.models import Incident
from handlers import modals
from handlers.deps import Deps
from handlers.reply import guarded


def incident_of_action(deps: Deps, body: dict[str, Any]) -> Incident:
    value = (body.get("actions") or [{}])[0].get("value") or ""
    with deps.tx() as session:
        incident = session.get(Incident, int(value)) if value.isdigit() else None
    if incident is None:
        raise NotFound("That incident no longer exists.")
    return incident


def _ack(ack: Ack) -> None:
    ack()


def open_update(deps: Deps, body: dict[str, Any]) -> None:
    incident = incident_of_action(deps, body)
    store.require_open(incident, "post an update")
    deps.client.views_open(trigger_id=body["trigger_id"], view=modals.update_view(incident))


def open_severity(deps: Deps, body: dict[str, Any]) -> None:
    incident = incident_of_action(deps, body)
    store.require_open(incident, "change its severity")
    deps.client.views_open(trigger_id=body["trigger_id"], view=modals.severity_view(incident))


def open_resolve(deps: Deps, body: dict[str, Any]) -> None:
    incident = incident_of_action(deps, body)
    store.require_open(incident, "resolve it")
    deps.client.views_open(trigger_id=body["trigger_id"], view=modals.resolve_view(incident))


def register(app: App) -> None:
    app.action("sitrep_post_update")(ack=_ack, lazy=[guarded(open_update)])
    app.action("sitrep_change_severity")(ack=_ack, lazy=[guarded(open_severity)])
    app.action("sitrep_resolve")(ack=_ack, lazy=[guarded(open_resolve)])
