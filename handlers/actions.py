"""Buttons on the bot's messages: Post update, Change severity, Resolve (they open modals)."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from core import store
from core.models import Incident
from handlers import flows, modals
from handlers.deps import Deps
from handlers.reply import Who, after_ack


def incident_of_action(deps: Deps, body: dict[str, Any]) -> Incident:
    """The incident a button of the bot's messages names, if the person pressing it may change it."""
    value = (body.get("actions") or [{}])[0].get("value")
    with deps.read() as session:
        incident = store.incident_by_id(session=session, incident_id=value)
    flows.require_member(deps, incident, Who.of(body).user_id)
    return incident



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
    app.action("sitrep_post_update")(**after_ack(open_update))
    app.action("sitrep_change_severity")(**after_ack(open_severity))
    app.action("sitrep_resolve")(**after_ack(open_resolve))
