"""Slack rendering: mrkdwn from Jinja2 templates (user text escaped there), Block Kit from slack_sdk models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from core.enums import Role
from core.models import Incident
from core.templating import escape_slack, jinja_env

SECTION_LIMIT = 3000
HEADER_LIMIT = 150


def mrkdwn(template: str, **context: Any) -> str:
    return jinja_env().get_template(f"slack/{template}.j2").render(**context).strip()


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def header(text: str) -> HeaderBlock:
    """A header block from raw (unescaped) text: escaped like all text Slack reads, cut to the limit."""
    return HeaderBlock(text=clip(escape_slack(text), HEADER_LIMIT))


def section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, SECTION_LIMIT)))


def context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(text, SECTION_LIMIT))])


def button(text: str, action_id: str, value: str = "", style: str | None = None) -> ButtonElement:
    return ButtonElement(text=text, action_id=action_id, value=value or None, style=style)


def to_dicts(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]


def role_rows(roles: dict[Role, str]) -> list[tuple[Role, str | None]]:
    return [(role, roles.get(role)) for role in Role]


def incident_actions(incident: Incident) -> ActionsBlock:
    value = str(incident.id)
    return ActionsBlock(
        block_id=f"incident-{incident.id}",
        elements=[
            button("Post update", "sitrep_post_update", value, style="primary"),
            button("Change severity", "sitrep_change_severity", value),
            button("Resolve", "sitrep_resolve", value, style="danger"),
        ],
    )


def intro_blocks(
    incident: Incident,
    *,
    roles: dict[Role, str],
    reasons: Sequence[str],
    emoji: str,
    tz: str,
    bridge: str | None = None,
) -> list[dict[str, Any]]:
    blocks: list[Block] = [
        header(f"{incident.key} {incident.severity.label}: {incident.title}"),
        section(mrkdwn("intro", incident=incident, reasons=reasons, tz=tz, bridge=bridge)),
        section(mrkdwn("roles", roles=role_rows(roles))),
        context(mrkdwn("how_to", emoji=f":{emoji}:", due=incident.next_update_due, tz=tz)),
        incident_actions(incident),
    ]
    return to_dicts(blocks)


def topic(incident: Incident, commander_name: str) -> str:
    """`SEV1 | Investigating | IC: @name` (topics are plain text of at most 250 characters)."""
    state = "Resolved" if incident.status == "resolved" else incident.phase.value.capitalize()
    return clip(f"{incident.severity.label} | {state} | IC: @{commander_name}", 250)


def fallback_text(text: str) -> str:
    """The notification text of a message: escaped, short."""
    return clip(escape_slack(text), 300)
