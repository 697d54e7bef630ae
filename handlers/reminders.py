"""The status-update reminder (SPEC §7): its message, and its Snooze buttons (15m, 30m, 1h), which put the next
reminder that much later."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from typing import Any

from slack_bolt import App
from slack_sdk.models.blocks import ActionsBlock

from core import store
from core.errors import InvalidInput
from core.reminders import Claim
from core.templating import format_when
from handlers import blockkit, flows
from handlers.deps import Deps
from handlers.reply import Who, after_ack, reply_private

SNOOZES = {"15m": 15, "30m": 30, "1h": 60}  # the buttons' labels and minutes


def escalation_mention(target: str) -> str:
    return f"<!subteam^{target}>" if target.startswith("S") else f"<@{target}>"


def reminder_message(claim: Claim, *, comms: str | None, escalation: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The reminder's text and blocks: who is asked, a Post update button and the Snooze buttons."""
    text = blockkit.mrkdwn("reminder", claim=claim, comms=comms, escalation=escalation)
    return text, [blockkit.section(text).to_dict(), reminder_buttons(claim.incident_id)]


@lru_cache(maxsize=8192)
def reminder_buttons(incident_id: int) -> dict[str, Any]:
    """The reminder's buttons for one incident, the same for each of its reminders: built and checked by
    slack_sdk once per incident (checking a block of four buttons was a fifth of a tick with 500 reminders due).
    Callers must not change the dict."""
    incident = str(incident_id)
    buttons = [blockkit.button("Post update", "sitrep_post_update", incident, style="primary")]
    buttons += [
        blockkit.button(f"Snooze {label}", f"sitrep_snooze_{label}", f"{incident}:{minutes}")
        for label, minutes in SNOOZES.items()
    ]
    return ActionsBlock(block_id=f"reminder-{incident}", elements=buttons).to_dict()


def snooze(deps: Deps, body: dict[str, Any]) -> None:
    incident_id, _, minutes = str(body["actions"][0].get("value") or "").partition(":")
    if not (incident_id.isdigit() and minutes.isdigit() and int(minutes) in SNOOZES.values()):
        raise InvalidInput("That snooze button is not one of sitrep's (15m, 30m or 1h).")
    with deps.read() as session:
        snoozed = store.incident_by_id(session=session, incident_id=incident_id)
    flows.require_member(deps, snoozed, Who.of(body).user_id)
    until = deps.now() + timedelta(minutes=int(minutes))
    with deps.tx() as session:
        incident = store.incident_by_id(session=session, incident_id=incident_id)
        store.snooze(session=session, incident=incident, until=until)
        key = incident.key
    reply_private(deps, Who.of(body), f":zzz: Next reminder for {key} at {format_when(until, deps.config.timezone)}.")


def register(app: App) -> None:
    app.action(re.compile(r"^sitrep_snooze_"))(**after_ack(snooze))
