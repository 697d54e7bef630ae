"""`/incident timeline`: a private, paged view of the timeline where each entry's kind can be changed."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import App
from slack_sdk.models.blocks import ActionsBlock, Block, Option, SectionBlock, StaticSelectElement
from slack_sdk.models.blocks.basic_components import MarkdownTextObject

from core import store
from core.enums import EntryKind
from core.models import Incident, TimelineEntry
from core.templating import escape_slack, escape_text, format_when
from core.timeline_capture import set_kind
from handlers import flows
from handlers.blockkit import button, clip, section, to_dicts
from handlers.deps import Deps
from handlers.reply import Who, after_ack, reply_private

PAGE = 20
KIND_ACTION = "sitrep_entry_kind"
PAGE_ACTION = "sitrep_timeline_page"
_USER = re.compile(r"[UW][A-Z0-9]+")


def who_text(actor: str) -> str:
    return f"<@{actor}>" if _USER.fullmatch(actor) else escape_slack(actor)


def _kind_options(entry_id: int) -> list[Option]:
    return [Option(value=f"{entry_id}:{kind.value}", label=kind.value.replace("_", " ")) for kind in EntryKind]


def _entry_block(entry: TimelineEntry, tz: str) -> SectionBlock:
    options = _kind_options(entry.id or 0)
    current = next(o for o in options if o.value.endswith(f":{entry.kind.value}"))
    link = f" <{entry.permalink}|view>" if entry.permalink else ""
    said = escape_text(entry.text)  # mentions stay mentions (`Scribe: <@U123>`); `<!channel>` never comes alive
    text = f"*{format_when(entry.occurred_at, tz, 'time')}* {who_text(entry.actor)}: {said}"
    return SectionBlock(
        text=MarkdownTextObject(text=clip(text, 2900) + link),
        accessory=StaticSelectElement(action_id=KIND_ACTION, options=options, initial_option=current),
    )


def timeline_blocks(incident: Incident, entries: list[TimelineEntry], *, page: int, tz: str) -> list[dict[str, Any]]:
    pages = max(1, -(-len(entries) // PAGE))
    page = min(max(page, 1), pages)
    shown = entries[(page - 1) * PAGE : page * PAGE]
    first = (page - 1) * PAGE + 1
    title = f"*{incident.key} timeline*: {len(entries)} entries"
    if pages > 1:
        title += f", {first} to {first + len(shown) - 1} shown (page {page} of {pages})"
    blocks: list[Block] = [section(title)]
    blocks += [_entry_block(entry, tz) for entry in shown]
    if not entries:
        blocks.append(section("_Nothing yet. React with the timeline emoji on a message, or use `/incident note`._"))
    navigation = []
    if page > 1:
        navigation.append(button("Previous", PAGE_ACTION, f"{incident.id}:{page - 1}"))
    if page < pages:
        navigation.append(button("Next", PAGE_ACTION, f"{incident.id}:{page + 1}"))
    if navigation:
        blocks.append(ActionsBlock(elements=navigation))
    return to_dicts(blocks)


def _entries(deps: Deps, incident_id: int) -> tuple[Incident, list[TimelineEntry]]:
    with deps.read() as session:
        incident = store.incident_by_id(session=session, incident_id=incident_id)
        return incident, store.entries_of(session=session, incident=incident)


def show(deps: Deps, who: Who, incident: Incident, page: int = 1, *, replace: bool = False) -> None:
    incident, entries = _entries(deps, incident.id or 0)
    blocks = timeline_blocks(incident, entries, page=page, tz=deps.config.timezone)
    text = f"{incident.key} timeline"
    if replace and who.response_url:
        deps.webhook(who.response_url).send(text=text, blocks=blocks, replace_original=True, response_type="ephemeral")
    else:
        reply_private(deps, who, text, blocks)



def on_page(deps: Deps, body: dict[str, Any]) -> None:
    incident_id, _, page = body["actions"][0]["value"].partition(":")
    incident, _ = _entries(deps, int(incident_id))
    show(deps, Who.of(body), incident, int(page), replace=True)


def on_kind(deps: Deps, body: dict[str, Any]) -> None:
    entry_id, _, kind = body["actions"][0]["selected_option"]["value"].partition(":")
    with deps.read() as session:
        incident = store.incident_of_entry(session=session, entry_id=int(entry_id))
    flows.require_member(deps, incident, Who.of(body).user_id)  # a change: it takes membership (SPEC §15)
    with deps.tx() as session:
        set_kind(session=session, entry_id=int(entry_id), kind=EntryKind(kind))


def register(app: App) -> None:
    app.action(PAGE_ACTION)(**after_ack(on_page))
    app.action(KIND_ACTION)(**after_ack(on_kind))
