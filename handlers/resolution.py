"""Resolve, reopen and the PIR posted into the incident channel (SPEC §10)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from slack_sdk.errors import SlackApiError

from core import jira, paging, statuspage, store
from core.errors import InvalidState, NotFound
from core.incident_export import export_incident
from core.models import Incident
from core.pir import build_pir, render_markdown
from handlers import blockkit, flows
from handlers.deps import Deps
from handlers.pir_blocks import summary_blocks

log = logging.getLogger("sitrep.resolution")


def remember_names(deps: Deps, incident: Incident) -> dict[str, str]:
    """Look up the display names of everyone in the incident and keep them with it (exports need no Slack)."""
    with deps.read() as session:
        incident = store.reload(session=session, incident=incident)
        users = {
            incident.commander_id,
            incident.declared_by,
            *store.roles_of(session=session, incident=incident).values(),
        }
        users |= {e.actor for e in store.entries_of(session=session, incident=incident)}
        users |= {p.user_id for p in store.participants_of(session=session, incident=incident)}
        users |= {a.owner_id for a in store.action_items_of(session=session, incident=incident) if a.owner_id}
        users |= {s.actor_id for s in store.severity_changes_of(session=session, incident=incident)}
    known = dict(incident.people or {})
    wanted = sorted(u for u in users if u and u.startswith(("U", "W")) and u not in known)
    for user in wanted:
        known[user] = flows.user_name(deps, user)
    with deps.tx() as session:
        store.record_slack_fields(session=session, incident_id=incident.id or 0, people=known)
    return known


def post_pir(deps: Deps, incident: Incident) -> str:
    """Post the PIR: a summary message within Slack's limits, then the full Markdown as a file."""
    names = remember_names(deps, incident)
    with deps.read() as session:
        incident = store.reload(session=session, incident=incident)
        export = export_incident(session=session, incident=incident, names=names)
    pir = build_pir(export, cadence=deps.config.cadence, timezone=deps.config.timezone, now=deps.now())
    filename = f"{incident.key}-pir.md"
    text = blockkit.fallback_text(f"Post-incident review of {incident.key}: {incident.title}")
    assert incident.channel_id
    response = deps.client.chat_postMessage(
        channel=incident.channel_id, text=text, blocks=summary_blocks(pir, filename=filename)
    )
    deps.client.files_upload_v2(
        channel=incident.channel_id,
        content=render_markdown(pir),
        filename=filename,
        title=f"Post-incident review: {incident.key}",
    )
    with deps.tx() as session:
        store.record_slack_fields(session=session, incident_id=incident.id or 0, pir_ts=str(response["ts"]))
    return str(response["ts"])


def resolve(
    deps: Deps,
    incident: Incident,
    *,
    actor_id: str,
    root_cause: str | None = None,
    contributing_factors: Iterable[str] = (),
    customer_impact: str | None = None,
    lessons: Iterable[str] = (),
    five_whys: Iterable[Mapping[str, str]] = (),
    publish: bool | None = None,
) -> None:
    """Resolve; `publish` resolves the public incident on the status page (unsaid: unless the incident is private)."""
    with deps.tx() as session:
        incident = store.reload(session=session, incident=incident)
        store.resolve(
            session=session,
            incident=incident,
            actor_id=actor_id,
            now=deps.now(),
            root_cause=root_cause,
            contributing_factors=contributing_factors,
            customer_impact=customer_impact,
            lessons=lessons,
            five_whys=five_whys,
        )
        paging.on_resolve(session=session, incident=incident, paging=deps.config.paging, now=deps.now())
        if deps.config.jira.enabled and jira.has_issue(session=session, incident=incident):
            export = export_incident(session=session, incident=incident, names=incident.people or {})
            pir = build_pir(export, cadence=deps.config.cadence, timezone=deps.config.timezone, now=deps.now())
            jira.on_resolve(session=session, incident=incident, rules=deps.config.jira, now=deps.now(),
                            summary=pir.summary)  # fmt: skip
        statuspage.on_resolve(session=session, incident=incident, now=deps.now(), publish=publish)
    flows.post_in_channel(deps, incident, f":white_check_mark: <@{actor_id}> resolved {incident.key}.")
    flows.refresh_topic(deps, incident)
    flows.refresh_announcement(deps, incident)
    post_pir(deps, incident)


def incident_to_reopen(deps: Deps, *, key: str, user_id: str) -> Incident:
    """The incident `/incident reopen INC-7` names, used from any channel: reopening takes membership of its
    channel, and a private incident shows nothing of itself (not even that it exists) to others."""
    with deps.read() as session:
        incident = store.incident_by_key(session=session, key=key)
    member = bool(incident.channel_id) and flows.is_member(deps, incident.channel_id or "", user_id)
    if not member and incident.private:
        raise NotFound(f"There is no incident {key}.")
    if not member:
        raise InvalidState(f"Only members of <#{incident.channel_id}> can reopen {incident.key}.")
    return incident


def unarchive(deps: Deps, incident: Incident) -> None:
    """Unarchive the incident's channel if it is archived (by sitrep after resolve, or by someone)."""
    if not incident.channel_id:
        return
    if deps.client.conversations_info(channel=incident.channel_id)["channel"].get("is_archived"):
        try:
            deps.client.conversations_unarchive(channel=incident.channel_id)
        except SlackApiError as exc:
            if exc.response.get("error") != "not_archived":
                raise


def reopen(deps: Deps, incident: Incident, *, actor_id: str) -> None:
    unarchive(deps, incident)  # first: what follows posts in the channel
    with deps.tx() as session:
        incident = store.reload(session=session, incident=incident)
        store.reopen(
            session=session, incident=incident, actor_id=actor_id, now=deps.now(), cadence=deps.config.cadence
        )
        paging.on_reopen(session=session, incident=incident, paging=deps.config.paging, now=deps.now())
    flows.post_in_channel(deps, incident, f":leftwards_arrow_with_hook: <@{actor_id}> reopened {incident.key}.")
    flows.refresh_topic(deps, incident)
    flows.refresh_announcement(deps, incident)
