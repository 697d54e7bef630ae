"""Catch-up (SPEC §14): `/incident catchup`, and a private welcome to each person who joins an incident
channel (once per person per incident, whichever replica or retried delivery sees the join)."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from core import store
from core.channel_life import CatchUp, catch_up, claim_welcome, release_welcome
from core.models import Incident
from handlers import blockkit
from handlers.deps import Deps
from handlers.reply import Who, reply_private

log = logging.getLogger("sitrep.catchup")


def catchup_blocks(view: CatchUp, *, tz: str, welcome: str | None = None) -> list[dict[str, Any]]:
    """The catch-up as Block Kit: seven blocks, each section within Slack's 3,000 characters however long the
    incident's timeline and texts (each shown text is cut to a fixed size)."""
    incident = view.incident
    more = ""
    if view.entry_count > len(view.entries):
        more = f"`/incident timeline` shows all {view.entry_count} entries; "
    return blockkit.to_dicts(
        [
            blockkit.header(f"{incident.key} {incident.severity.label}: {incident.title}"),
            blockkit.section(blockkit.mrkdwn("catchup", incident=incident, age=view.age, tz=tz, welcome=welcome)),
            blockkit.section(blockkit.mrkdwn("roles", roles=blockkit.role_rows(view.roles))),
            blockkit.section(blockkit.mrkdwn("catchup_update", update=view.latest_update, tz=tz)),
            blockkit.section(
                blockkit.mrkdwn("catchup_entries", entries=view.entries, total=view.entry_count, tz=tz)
            ),
            blockkit.section(blockkit.mrkdwn("catchup_items", items=view.open_items, total=view.open_item_count)),
            blockkit.context(f"{more}`/incident status` shows when the next update is due."),
        ]
    )


def catchup_text(incident: Incident) -> str:
    return blockkit.fallback_text(f"Catch-up on {incident.key} {incident.severity.label}: {incident.title}")


def show(deps: Deps, who: Who, incident: Incident) -> None:
    """`/incident catchup`: the catch-up, privately."""
    with deps.read() as session:
        view = catch_up(session=session, incident=incident, now=deps.now())
    reply_private(deps, who, catchup_text(incident), catchup_blocks(view, tz=deps.config.timezone))


def on_member_joined(deps: Deps, body: dict[str, Any]) -> None:
    """member_joined_channel: welcome the person with the catch-up, once per person per incident."""
    event = body["event"]
    user, channel = event.get("user"), event.get("channel")
    if not user or not channel or user == deps.bot_user_id:
        return
    incident_id = deps.incident_id_of_channel(channel)
    if incident_id is None:
        return
    with deps.tx() as session:
        incident = store.incident_by_id(session=session, incident_id=incident_id)
        if user == incident.declared_by:  # the declarer was there from the start
            return
        if not claim_welcome(session=session, incident_id=incident_id, user_id=user, now=deps.now()):
            return
        view = catch_up(session=session, incident=incident, now=deps.now())
    blocks = catchup_blocks(view, tz=deps.config.timezone, welcome=user)
    try:
        deps.client.chat_postEphemeral(channel=channel, user=user, text=catchup_text(incident), blocks=blocks)
    except SlackApiError as exc:  # e.g. they left again at once: the welcome waits for their next join
        log.warning(
            "could not welcome a newcomer to %s: %s",
            incident.key,
            exc.response.get("error"),
            extra={"incident": incident.key, "channel": channel, "user": user},
        )
        with deps.tx() as session:
            release_welcome(session=session, incident_id=incident_id, user_id=user)
