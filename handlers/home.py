"""The App Home tab: open incidents the viewer may see, their roles and action items, a Declare button."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk.models.blocks import ActionsBlock, Block, DividerBlock

from core import store
from core.jira import tracked
from core.models import Incident
from core.templating import escape_slack
from handlers import flows, modals
from handlers.blockkit import button, context, header, section, to_dicts
from handlers.deps import Deps
from handlers.reply import after_ack, in_background

MAX_LISTED = 25  # per list; 3 lists of 25 and the frame stay well under the 100 blocks of a Home view


def _line(incident: Incident) -> str:
    where = f" <#{incident.channel_id}>" if incident.channel_id else ""
    lock = " :lock:" if incident.private else ""
    return f"*{incident.key}* {incident.severity.label}{where} {escape_slack(incident.title)}{lock}"


PRIVATE_ITEM = "An action item in a private incident"


def _member(deps: Deps, incident: Incident, user_id: str) -> bool:
    return incident.channel_id is not None and flows.is_member(deps, incident.channel_id, user_id)


def home_view(deps: Deps, user_id: str) -> dict[str, Any]:
    # Most severe first, then newest (visible_open_incidents gives newest first; the sort is stable).
    visible = sorted(flows.visible_open_incidents(deps, user_id), key=lambda i: i.severity.level)
    visible_ids = {i.id for i in visible}
    with deps.read() as session:
        roles = store.roles_held(session=session, user_id=user_id)
        items = store.open_items_owned(session=session, user_id=user_id)
    blocks: list[Block] = [
        header("sitrep"),
        ActionsBlock(block_id="home", elements=[button("Declare an incident", "sitrep_home_declare", style="danger")]),
        DividerBlock(),
        section(f"*Open incidents* ({len(visible)})" if visible else "*Open incidents*\nNone right now. :tada:"),
    ]
    blocks += [section(_line(incident)) for incident in visible[:MAX_LISTED]]
    if len(visible) > MAX_LISTED:
        blocks.append(context(f"…and {len(visible) - MAX_LISTED} more: `/incident list` shows them all."))
    mine = [(role, incident) for role, incident in roles if incident.id in visible_ids]
    blocks += [DividerBlock(), section("*Your roles*" if mine else "*Your roles*\nNone in open incidents.")]
    blocks += [section(f"{role.role.title} in {_line(incident)}") for role, incident in mine[:MAX_LISTED]]
    blocks += [DividerBlock(), section("*Your action items*" if items else "*Your action items*\nNone open.")]
    today = deps.now().astimezone(deps.config.zone).date()
    for item, incident in items[:MAX_LISTED]:
        if incident.private and incident.id not in visible_ids and not _member(deps, incident, user_id):
            blocks.append(section(PRIVATE_ITEM))  # neither its title nor its incident (SPEC §15)
            continue
        due = f", due {item.due.isoformat()}" if item.due else ""
        if item.due and item.due < today:
            due += ", :warning: overdue"
        elif item.due == today:
            due += ", today"
        jira = tracked(item.jira_key, item.jira_status)
        where = f", {escape_slack(jira)}" if jira else ""
        blocks.append(section(f"{escape_slack(item.title)} ({item.priority.value}{due}{where}) from *{incident.key}*"))
    return {"type": "home", "blocks": to_dicts(blocks)}


def publish(deps: Deps, body: dict[str, Any]) -> None:
    event = body["event"]
    if event.get("tab", "home") != "home":
        return
    deps.client.views_publish(user_id=event["user"], view=home_view(deps, event["user"]))



def open_declare(deps: Deps, body: dict[str, Any]) -> None:
    deps.client.views_open(trigger_id=body["trigger_id"], view=modals.declare_view(channel_id=None))


def register(app: App) -> None:
    app.event("app_home_opened")(in_background(publish))
    app.action("sitrep_home_declare")(**after_ack(open_declare))
