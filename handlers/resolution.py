"""Resolve, reopen and the PIR posted into the incident channel (SPEC §10)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from core import jira, paging, statuspage, store
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


def reopen(deps: Deps, incident: Incident, *, actor_id: str) -> None:
    with deps.tx() as session:
        incident = store.reload(session=session, incident=incident)
        store.reopen(
            session=session, incident=incident, actor_id=actor_id, now=deps.now(), cadence=deps.config.cadence
        )
        paging.on_reopen(session=session, incident=incident, paging=deps.config.paging, now=deps.now())
    flows.post_in_channel(deps, incident, f":leftwards_arrow_with_hook: <@{actor_id}> reopened {incident.key}.")
    flows.refresh_topic(deps, incident)
    flows.refresh_announcement(deps, incident)
