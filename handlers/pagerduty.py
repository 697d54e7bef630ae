"""PagerDuty in Slack (SPEC §13.2): `/incident page`, `/incident oncall` with Invite buttons, the on-call people
invited on declare, and what PagerDuty's webhook events do (timeline entries, triage messages)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App
from slack_sdk.models.blocks import ActionsBlock

from core import paging, store
from core.enums import EntryKind
from core.errors import InvalidInput, NotFound
from core.models import Incident
from core.paging import OnCallPerson, WebhookEvent
from handlers import blockkit, flows
from handlers.deps import Deps
from handlers.reply import Who, guarded, reply_private

log = logging.getLogger("sitrep.pagerduty")
INVITE = "sitrep_oncall_invite"


# --- paging --------------------------------------------------------------------------------------


def page(deps: Deps, incident: Incident, who: Who) -> None:
    """`/incident page`: one more trigger for the incident (e.g. a sev3 that needs people now)."""
    if not deps.config.paging.enabled:
        raise InvalidInput("Paging is off: set PAGERDUTY_ROUTING_KEY to page PagerDuty from sitrep.")
    with deps.tx() as session:
        incident = store.reload(session=session, incident=incident)
        store.require_open(incident, "page")
        now = deps.now()
        paging.page(session=session, incident=incident, now=now, why=f"page-{now.isoformat()}")
        store.add_entry(session=session, incident=incident, kind=EntryKind.ESCALATION,
                        text="Paged PagerDuty", actor=who.user_id or "", now=now, source="command")  # fmt: skip
    reply_private(deps, who, f":pager: Paging PagerDuty for {incident.key}; this channel hears when it is accepted.")


# --- on call -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """An on-call person, with their Slack user when their PagerDuty e-mail is a Slack user's."""

    name: str
    email: str
    level: int
    schedule: str
    user_id: str | None


def on_call(deps: Deps) -> list[Found]:
    if deps.oncall is None:
        raise InvalidInput(
            "On-call look-ups are off: set PAGERDUTY_API_TOKEN and PAGERDUTY_ESCALATION_POLICY to use them."
        )
    people: list[OnCallPerson] = deps.oncall.on_call()
    return [Found(p.name, p.email, p.level, p.schedule, flows.slack_user_of(deps, p.email)) for p in people]


def show_on_call(deps: Deps, incident: Incident | None, who: Who) -> None:
    """`/incident oncall`: who is on call now, each with an Invite button (in an incident channel)."""
    people = on_call(deps)
    text = blockkit.mrkdwn("oncall", people=people, policy=deps.config.escalation_policy)
    blocks: list[Any] = [blockkit.section(text)]
    invitable = [person for person in people if person.user_id] if incident is not None else []
    if invitable:
        buttons = [blockkit.button(f"Invite {person.name}"[:75], f"{INVITE}_{n}", f"{incident.id}:{person.user_id}")
                   for n, person in enumerate(invitable[:25])]  # fmt: skip
        blocks += [ActionsBlock(block_id=f"oncall-{n}", elements=buttons[n : n + 5]) for n in range(0, len(buttons), 5)]
    reply_private(deps, who, text, blocks=blockkit.to_dicts(blocks))


def ack_invite(ack: Ack) -> None:
    ack()


def run_invite(deps: Deps, body: dict[str, Any]) -> None:
    who = Who.of(body)
    action = (body.get("actions") or [{}])[0]
    incident_id, _, user_id = str(action.get("value") or "").partition(":")
    with deps.tx() as session:
        incident = session.get(Incident, int(incident_id)) if incident_id.isdigit() else None
    if incident is None or not incident.channel_id or not user_id:
        raise NotFound("That incident is gone.")
    if not flows.is_member(deps, incident.channel_id, who.user_id or ""):
        raise InvalidInput(f"Join <#{incident.channel_id}> to invite people into {incident.key}.")
    flows.invite(deps, incident.channel_id, [user_id])
    reply_private(deps, who, f"Invited <@{user_id}> to <#{incident.channel_id}>.")


# --- webhooks ------------------------------------------------------------------------------------


def handle_webhook(deps: Deps, event: WebhookEvent) -> str:
    """What one PagerDuty webhook event does; returns a word for the log. Each event id counts once."""
    ours = paging.our_incident_key(event.incident_key)
    if event.event_type in paging.TIMELINE_EVENTS:
        if ours is None:
            return "not a sitrep incident"
        with deps.tx() as session:
            try:
                incident = store.incident_by_key(session=session, key=ours)
            except NotFound:
                return "unknown incident"
            if not store.claim_event(session=session, event_id=f"pagerduty:{event.id}", now=deps.now()):
                return "duplicate"
            paging.record_on_timeline(session=session, incident=incident, event=event, now=deps.now())
        return "timeline"
    if event.event_type == "incident.triggered" and ours is None:
        channel = deps.config.triage_channel
        if not channel:
            log.info("PagerDuty incident triggered elsewhere, but SITREP_TRIAGE_CHANNEL is unset: dropped")
            return "dropped"
        event_id = f"pagerduty:{event.id}"
        with deps.tx() as session:
            if not store.claim_event(session=session, event_id=event_id, now=deps.now()):
                return "duplicate"
        try:
            deps.client.chat_postMessage(channel=channel, text=blockkit.mrkdwn("pagerduty_triage", event=event))
        except Exception:
            with deps.tx() as session:  # not posted: PagerDuty's retry of this event must be processed
                store.release_event(session=session, event_id=event_id)
            raise
        return "triage"
    return "ignored"


def register(app: App) -> None:
    app.action(re.compile(f"^{INVITE}_\\d+$"))(ack=ack_invite, lazy=[guarded(run_invite)])
