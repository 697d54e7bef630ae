"""Events API listeners: timeline tagging (reactions, pins, edits, deletes) and who spoke when.

Every delivery gets a 2xx, also the ones sitrep ignores. Each event id is claimed in the same transaction
as its effect, so a retried delivery (X-Slack-Retry-Num) never adds a second entry."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from core import store
from core.templating import unescape_slack
from core.timeline_capture import (
    Tagging,
    delete_message,
    edit_message,
    is_tagged,
    ts_to_datetime,
    untag_message,
)
from handlers.catchup import on_member_joined
from handlers.deps import Deps
from handlers.reply import RETRY_KEY, in_background

Effect = Callable[[Session, int], None]
AT_ACK_WITHIN = 0.2  # seconds an ack waits for the database to say whether a channel is an incident's


def once(deps: Deps, body: dict[str, Any], channel: str | None, effect: Effect) -> bool:
    """Apply `effect` to the incident of `channel`, once per Slack event id. False when nothing was done."""
    incident_id = deps.incident_id_of_channel(channel)
    if incident_id is None:
        return False
    return _claimed(deps, body, lambda session: effect(session, incident_id))


def once_for_message(deps: Deps, body: dict[str, Any], channel: str | None, ts: str | None,
                     effect: Callable[[Session], None]) -> bool:  # fmt: skip
    """Apply an edit or a delete to a tagged message's entries, once per Slack event id: in an incident channel,
    or in any other channel a message was tagged from with the message shortcut."""
    if not channel or not ts:
        return False
    if not is_incident_channel(deps, channel):
        with deps.read() as session:
            if not is_tagged(session=session, channel=channel, ts=ts):
                return False
    return _claimed(deps, body, effect)


def _claimed(deps: Deps, body: dict[str, Any], effect: Callable[[Session], None]) -> bool:
    """Claim the event id and apply its effect in one transaction (shared with the events waiting with it)."""
    event_id = str(body.get("event_id") or "")

    def claimed_with_effect(session: Session) -> bool:
        if event_id and not store.claim_event(session=session, event_id=event_id, now=deps.now()):
            return False
        effect(session)
        return True

    return deps.together(claimed_with_effect)


def already_processed(deps: Deps, body: dict[str, Any]) -> bool:
    """A look before any Slack call, for retried deliveries only: one already processed does nothing."""
    event_id = body.get("event_id")
    if not event_id or not body.get(RETRY_KEY):
        return False
    with deps.read() as session:
        return store.event_seen(session=session, event_id=event_id)


def is_incident_channel(deps: Deps, channel: str | None, *, within: float | None = None) -> bool:
    return deps.incident_id_of_channel(channel, within=within) is not None


def permalink(deps: Deps, channel: str, ts: str, thread_ts: str | None = None) -> str | None:
    """The message's link, built like Slack's own from the workspace URL (no API call per message)."""
    if deps.team_url:
        link = f"{deps.team_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"
        return link + (f"?thread_ts={thread_ts}&cid={channel}" if thread_ts and thread_ts != ts else "")
    try:
        return str(deps.client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"])
    except SlackApiError:
        return None


def tag(deps: Deps, body: dict[str, Any], *, channel: str, ts: str, tag_name: str, source: str,
        message: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Tag a message of an incident channel into that incident's timeline."""
    incident_id = deps.incident_id_of_channel(channel)
    if incident_id is None or already_processed(deps, body):
        return
    message = message or deps.messages.read(channel, ts)
    if message is None:
        return
    tagging = Tagging(
        event_id=str(body.get("event_id") or ""), incident_id=incident_id, channel=channel, ts=ts,
        text=unescape_slack(str(message.get("text") or "")),
        author=str(message.get("user") or message.get("bot_id") or ""),
        tag=tag_name, source=source, at=deps.now(), permalink=permalink(deps, channel, ts, message.get("thread_ts")),
    )  # fmt: skip
    deps.tag_together(tagging)


def _tagging_reaction(deps: Deps, event: dict[str, Any]) -> tuple[str, str, str] | None:
    """(channel, ts, reaction) of a reaction that tags (or untags) a message, else None."""
    item = event.get("item") or {}
    reaction = str(event.get("reaction") or "").split("::")[0]  # `+1::skin-tone-2` is `+1`
    if reaction not in deps.config.timeline_emoji or item.get("type") != "message":
        return None
    channel, ts = item.get("channel"), item.get("ts")
    return (channel, ts, reaction) if channel and ts else None


def expect_reacted_message(deps: Deps, body: dict[str, Any]) -> None:
    """At the ack: the work will read the message reacted to (see MessageReader)."""
    event = body["event"]
    tagging = _tagging_reaction(deps, event) if event["type"] == "reaction_added" else None
    if tagging is not None and is_incident_channel(deps, tagging[0], within=AT_ACK_WITHIN):
        deps.messages.expect(tagging[0], tagging[1])


def on_reaction(deps: Deps, body: dict[str, Any]) -> None:
    event = body["event"]
    tagging = _tagging_reaction(deps, event)
    if tagging is None:
        return
    channel, ts, reaction = tagging
    tag_name = f"reaction:{event.get('user')}:{reaction}"
    if event["type"] == "reaction_added":
        tag(deps, body, channel=channel, ts=ts, tag_name=tag_name, source="reaction")
    else:
        once(deps, body, channel, lambda s, i: _untag(s, i, channel, ts, tag_name))


def _untag(session: Session, incident_id: int, channel: str, ts: str, tag_name: str) -> None:
    untag_message(session=session, incident_id=incident_id, channel=channel, ts=ts, tag=tag_name)


def on_pin(deps: Deps, body: dict[str, Any]) -> None:
    event = body["event"]
    item = event.get("item") or {}
    message = item.get("message") or {}
    channel = event.get("channel_id") or item.get("channel")
    ts = message.get("ts") or item.get("ts")
    if item.get("type") != "message" or not ts:
        return
    if event["type"] == "pin_added":
        with deps.read() as session:
            incident = store.incident_by_channel(session=session, channel_id=channel or "")
        if incident is not None and incident.intro_ts == ts:
            return  # the bot's own intro, pinned by the bot
        tag(deps, body, channel=channel, ts=ts, tag_name="pin", source="pin", message=message or None)
    else:
        once(deps, body, channel, lambda s, i: _untag(s, i, channel, ts, "pin"))


def on_message(deps: Deps, body: dict[str, Any]) -> None:
    event = body["event"]
    channel = event.get("channel")
    subtype = event.get("subtype")
    if subtype == "message_changed":
        ts, text = _changed_ts(event), unescape_slack(str((event.get("message") or {}).get("text") or ""))
        once_for_message(deps, body, channel, ts, lambda s: _edited(s, channel, ts, text))
    elif subtype == "message_deleted":
        ts = _changed_ts(event)
        once_for_message(deps, body, channel, ts, lambda s: _deleted(s, channel, ts))
    elif subtype in (None, "thread_broadcast", "file_share") and event.get("user") and not event.get("bot_id"):
        user, at = event["user"], ts_to_datetime(event["ts"])
        once(
            deps,
            body,
            channel,
            lambda s, i: store.record_participant(session=s, incident_id=i, user_id=user, at=at),
        )


def _changed_ts(event: dict[str, Any]) -> str | None:
    """The ts of the message that a message_changed or message_deleted event is about."""
    if event.get("subtype") == "message_changed":
        return (event.get("message") or {}).get("ts")
    return event.get("deleted_ts") if event.get("subtype") == "message_deleted" else None


def _edited(session: Session, channel: str, ts: str, text: str) -> None:
    edit_message(session=session, channel=channel, ts=ts, text=text)


def _deleted(session: Session, channel: str, ts: str) -> None:
    delete_message(session=session, channel=channel, ts=ts)


# The events sitrep follows. One listener takes them all: Bolt tries each listener's matcher in turn (with
# keyword injection, not free), and this is the busiest path, every message and reaction in the workspace.
FOLLOWED: dict[str, Callable[[Deps, dict[str, Any]], None]] = {
    "message": on_message,
    "reaction_added": on_reaction,
    "reaction_removed": on_reaction,
    "pin_added": on_pin,
    "pin_removed": on_pin,
    "member_joined_channel": on_member_joined,
}


def on_event(deps: Deps, body: dict[str, Any]) -> None:
    FOLLOWED[body["event"]["type"]](deps, body)


def at_ack(deps: Deps, body: dict[str, Any]) -> None:
    event = body["event"]
    if event["type"] == "reaction_added":
        expect_reacted_message(deps, body)
    elif event["type"] == "message" and event.get("channel") and (ts := _changed_ts(event)):
        deps.messages.forget(event["channel"], ts)  # a copy read ahead is stale now


def ignore() -> None:
    """Events nobody listens to are acknowledged (Bolt would answer 404 and Slack would retry); app.py
    registers this last, after every surface's own event listeners."""


def register(app: App) -> None:
    app.event(re.compile(f"^({'|'.join(FOLLOWED)})$"))(in_background(on_event, at_ack=at_ack))
