"""The `/incident` slash command: parse in the ack (instant private errors and help), work after it."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App

from core import jira, outbox, statuspage, store
from core.enums import Priority
from core.errors import InvalidInput, InvalidState, SitrepError
from core.models import Incident
from core.outbox import DeliveryError
from core.templating import unescape_slack
from handlers import blockkit, catchup, flows, modals, pagerduty, resolution, stats, timeline_view
from handlers.deps import Deps, deps_of
from handlers.parse import Command, parse
from handlers.reply import Who, guarded, reply_private

COMMAND = "/incident"
log = logging.getLogger("sitrep.commands")


def help_text(deps: Deps, unknown: str | None = None) -> str:
    return blockkit.mrkdwn("help", unknown=unknown, emoji=f":{deps.config.timeline_emoji[0]}:")


def command_text(body: dict[str, Any]) -> str:
    """The command's text as the person wrote it: Slack escapes `&`, `<` and `>` in it (should_escape)."""
    return unescape_slack(str(body.get("text") or ""))


def ack_command(ack: Ack, body: dict[str, Any], context: Any) -> None:
    """Answer at once: help and grammar errors need nothing but the text."""
    try:
        command = parse(command_text(body))
    except InvalidInput as error:
        ack(text=f":warning: {error}")
        return
    if command.name == "help":
        ack(text=help_text(deps_of(context), command.extras.get("unknown")))
        return
    ack()


def run_command(deps: Deps, body: dict[str, Any]) -> None:
    try:
        command = parse(command_text(body))
    except SitrepError:
        return  # already answered in the ack
    if command.name == "help":
        return
    who = Who.of(body)
    handler = _HANDLERS[command.name]
    if command.needs_incident_channel:
        with deps.read() as session:
            incident = store.require_incident_channel(
                session=session, channel_id=who.channel_id or "", command=f"`/incident {command.name}`"
            )
        if command.changes_incident:
            flows.require_member(deps, incident, who.user_id)
        handler(deps, body, who, command, incident)
    else:
        handler(deps, body, who, command, None)


def _declare(deps: Deps, body: dict[str, Any], who: Who, command: Command, _: Incident | None) -> None:
    if not command.text:
        deps.client.views_open(trigger_id=body["trigger_id"], view=modals.declare_view(channel_id=who.channel_id))
        return
    flows.declare(
        deps, who, title=command.text, severity=command.severity, private=command.private, team_id=body.get("team_id")
    )


def _update(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    assert incident is not None
    if not command.text:
        store.require_open(incident, "post an update")
        view = modals.update_view(incident, public=_is_public(deps, incident))
        deps.client.views_open(trigger_id=body["trigger_id"], view=view)
        return
    flows.status_update(deps, incident, phase=command.phase, text=command.text, author_id=who.user_id or "",
                        public=command.public)  # fmt: skip


def _is_public(deps: Deps, incident: Incident) -> bool:
    if not deps.config.statuspage:
        return False
    with deps.read() as session:
        return statuspage.is_public(session=session, incident=incident)


def _severity(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    assert incident is not None and command.severity is not None
    flows.change_severity(deps, incident, severity=command.severity, reason=command.text, actor_id=who.user_id or "")


def _role(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    assert incident is not None and command.role is not None and command.user_id is not None
    flows.assign_role(deps, incident, role=command.role, user_id=command.user_id, actor_id=who.user_id or "")


def _note(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    assert incident is not None
    with deps.tx() as session:
        store.add_note(
            session=session, incident=incident, text=command.text, actor_id=who.user_id or "", now=deps.now()
        )
    reply_private(deps, who, ":memo: Added to the timeline.")


def _action(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    assert incident is not None
    if not command.text:
        raise InvalidInput("Describe the action, e.g. `/incident action Add pool alerts @alice P1 due:2025-01-31`.")
    with deps.tx() as session:
        item = store.add_action_item(
            session=session,
            incident=incident,
            title=command.text,
            owner_id=command.user_id,
            priority=command.priority or Priority.P2,
            due=command.due,
            actor_id=who.user_id or "",
            now=deps.now(),
        )
        filed = jira.on_action_item(session=session, incident=incident, item=item, rules=deps.config.jira,
                                    now=deps.now())  # fmt: skip
    owner = f" for <@{item.owner_id}>" if item.owner_id else ""
    due = f", due {item.due.isoformat()}" if item.due else ""
    in_jira = " It gets a Jira issue, linked to the incident's." if filed else ""
    reply_private(deps, who, f":white_check_mark: Action item added{owner} ({item.priority.value}{due}).{in_jira}")


def _status(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    assert incident is not None
    with deps.read() as session:
        roles = store.roles_of(session=session, incident=incident)
        links = outbox.links(session=session, incident_id=incident.id or 0)
    end = incident.resolved_at or deps.now()
    text = blockkit.mrkdwn(
        "status",
        incident=incident,
        roles=blockkit.role_rows(roles),
        age=end - incident.declared_at,
        tz=deps.config.timezone,
        links=links,
    )
    reply_private(deps, who, text)


def _page(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    assert incident is not None
    pagerduty.page(deps, incident, who)


def _oncall(deps: Deps, body: dict[str, Any], who: Who, command: Command, _: Incident | None) -> None:
    with deps.read() as session:
        incident = store.incident_by_channel(session=session, channel_id=who.channel_id or "")
    pagerduty.show_on_call(deps, incident, who)


def _list(deps: Deps, body: dict[str, Any], who: Who, command: Command, _: Incident | None) -> None:
    incidents = flows.visible_open_incidents(deps, who.user_id or "")
    reply_private(deps, who, blockkit.mrkdwn("list", incidents=incidents))


def _timeline(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    assert incident is not None
    timeline_view.show(deps, who, incident)


def _resolve(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    assert incident is not None
    if not command.text:
        if incident.status != "open":
            raise InvalidState(f"{incident.key} is already resolved. Use `/incident pir` to post the review again.")
        view = modals.resolve_view(incident, public=_is_public(deps, incident))
        deps.client.views_open(trigger_id=body["trigger_id"], view=view)
        return
    resolution.resolve(deps, incident, actor_id=who.user_id or "", root_cause=command.text)


def _jira(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    assert incident is not None
    if not deps.config.jira.enabled:
        raise InvalidState("Jira is not configured: set JIRA_URL, JIRA_PROJECT and the credentials (see the README).")
    with deps.tx() as session:
        incident = store.reload(session=session, incident=incident)
        opened = jira.open_issue(session=session, incident=incident, rules=deps.config.jira, now=deps.now())
    if not opened:
        key = f" ({incident.jira_key})" if incident.jira_key else ""
        raise InvalidState(f"{incident.key} has a Jira issue already{key}: its link is bookmarked in this channel.")
    reply_private(deps, who, f":ticket: Opening a Jira issue for {incident.key}; its link will be bookmarked here.")


def _statuspage(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    assert incident is not None
    if deps.status_page is None:
        raise InvalidState("The status page is not configured: set STATUSPAGE_API_KEY and STATUSPAGE_PAGE_ID.")
    store.require_open(incident, "publish it")
    if _is_public(deps, incident):
        raise InvalidState(f"{incident.key} is on the status page already: publish updates with "
                           "`/incident update --public <message>`.")  # fmt: skip
    trigger = body["trigger_id"]  # read the components first: the trigger lives 3 s, Statuspage answers in less
    try:
        components = deps.status_page.components()
    except DeliveryError as error:
        log.warning("Statuspage components could not be read: %s", error, extra={"incident": incident.key})
        components = []
    deps.client.views_open(trigger_id=trigger, view=modals.statuspage_view(incident, components))


def _reopen(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    if incident is None:  # `/incident reopen INC-7` from any channel
        incident = resolution.incident_to_reopen(deps, key=command.text, user_id=who.user_id or "")
        resolution.reopen(deps, incident, actor_id=who.user_id or "")
        reply_private(deps, who, f":leftwards_arrow_with_hook: {incident.key} is open again: <#{incident.channel_id}>.")
        return
    resolution.reopen(deps, incident, actor_id=who.user_id or "")


def _catchup(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    assert incident is not None
    catchup.show(deps, who, incident)


def _stats(deps: Deps, body: dict[str, Any], who: Who, command: Command, _: Incident | None) -> None:
    stats.show(deps, who, command.text)


def _pir(deps: Deps, body: dict[str, Any], who: Who, command: Command, incident: Incident | None) -> None:
    assert incident is not None
    resolution.post_pir(deps, incident)


_HANDLERS = {
    "declare": _declare,
    "update": _update,
    "severity": _severity,
    "role": _role,
    "note": _note,
    "action": _action,
    "status": _status,
    "list": _list,
    "timeline": _timeline,
    "resolve": _resolve,
    "reopen": _reopen,
    "pir": _pir,
    "catchup": _catchup,
    "stats": _stats,
    "page": _page,
    "jira": _jira,
    "statuspage": _statuspage,
    "oncall": _oncall,
}


def register(app: App) -> None:
    app.command(COMMAND)(ack=ack_command, lazy=[guarded(run_command)])
