"""The message shortcut "Add to incident timeline" (callback id sitrep_add_to_timeline), from any channel."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App
from slack_sdk.errors import SlackApiError

from core import store
from core.errors import InvalidInput
from core.models import Incident
from core.templating import unescape_slack
from core.timeline_capture import tag_message
from handlers import flows, modals
from handlers.deps import Deps
from handlers.events import permalink
from handlers.messages import read_one
from handlers.reply import Who, after_ack, reply_private

CALLBACK = "sitrep_add_to_timeline"
log = logging.getLogger("sitrep.handlers")



def add(
    deps: Deps,
    who: Who,
    incident: Incident,
    *,
    channel: str,
    ts: str,
    text: str,
    author: str,
    thread_ts: str | None = None,
) -> None:
    link = permalink(deps, channel, ts, thread_ts)
    with deps.tx() as session:
        created = tag_message(
            session=session, incident_id=incident.id or 0, channel=channel, ts=ts, text=text, author=author,
            tag=f"shortcut:{who.user_id}", source="shortcut", now=deps.now(), permalink=link,
        )  # fmt: skip
    said = "Added to" if created else "Already in"
    reply_private(deps, who, f":pushpin: {said} the {incident.key} timeline.")


def on_shortcut(deps: Deps, body: dict[str, Any]) -> None:
    who = Who.of(body)
    message = body["message"]
    tagged = {  # the message to add, as add() and the picker's private_metadata take it
        "channel": body["channel"]["id"], "ts": message["ts"], "thread_ts": message.get("thread_ts"),
        "text": unescape_slack(str(message.get("text") or "")),
        "author": str(message.get("user") or message.get("bot_id") or ""),
    }  # fmt: skip
    with deps.read() as session:
        here = store.incident_by_channel(session=session, channel_id=tagged["channel"])
    if here is not None:
        add(deps, who, here, **tagged)
        return
    incidents = flows.visible_open_incidents(deps, who.user_id or "")
    if not incidents:
        raise InvalidInput("There is no open incident to add this message to.")
    if len(incidents) == 1:
        add(deps, who, incidents[0], **tagged)
        return
    view = modals.pick_incident_view(incidents, message=tagged)
    deps.client.views_open(trigger_id=body["trigger_id"], view=view)


def on_pick(deps: Deps, body: dict[str, Any]) -> None:
    view = body["view"]
    meta = modals.metadata(view)
    with deps.read() as session:
        incident = store.incident_by_id(session=session, incident_id=modals.state_value(view, "incident"))
    # Answer where the shortcut was used: the person may not be in the incident's channel.
    who = Who(user_id=body["user"]["id"], channel_id=meta["channel"], response_url=None)
    text = meta["text"] if not meta.get("cut") else _whole_text(deps, meta["channel"], meta["ts"], meta["text"])
    add(deps, who, incident, channel=meta["channel"], ts=meta["ts"], thread_ts=meta.get("thread_ts"), text=text,
        author=meta["author"])  # fmt: skip


def _whole_text(deps: Deps, channel: str, ts: str, start: str) -> str:
    """A message too long to travel whole in the modal: read it from Slack where the bot can (not in a channel
    it is not a member of), else keep the start that travelled, marked as cut."""
    try:
        message = read_one(deps.client, channel, ts)
    except SlackApiError as error:
        reason = error.response.get("error")
        log.info("could not read a long message whole", extra={"channel": channel, "error": reason})
        message = None
    return unescape_slack(str(message.get("text") or "")) if message else f"{start}…"


def register(app: App) -> None:
    app.shortcut(CALLBACK)(**after_ack(on_shortcut))
    app.view(modals.PICK_INCIDENT)(**after_ack(on_pick))
