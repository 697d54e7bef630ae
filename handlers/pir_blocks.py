"""The PIR summary message in Block Kit, always within Slack's limits (50 blocks, 3000-char sections)."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block, DividerBlock, MarkdownTextObject, SectionBlock

from core.cadence import format_duration
from core.pir import Pir
from core.templating import escape_slack, format_span
from handlers.blockkit import context, header, section, to_dicts

MAX_LIST = 8


def _bullets(items: list[str], *, limit: int = MAX_LIST) -> str:
    lines = [f"• {escape_slack(item)}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"_…and {len(items) - limit} more in the full review_")
    return "\n".join(lines)


def _fields(pairs: list[tuple[str, str]]) -> SectionBlock:
    return SectionBlock(fields=[MarkdownTextObject(text=f"*{name}*\n{value}"[:2000]) for name, value in pairs[:10]])


def summary_blocks(pir: Pir, *, filename: str | None = None) -> list[dict[str, Any]]:
    tz = pir.timezone
    impact = list(pir.impact_headline)
    money = ("Estimated revenue impact", "Business impact:")
    if pir.business_impact and not any(line.startswith(money) for line in impact):
        impact.append(pir.business_impact[0])  # the export's own words on the business, when it gives no amount
    overview = [("Severity", pir.severity), ("Status", pir.status)]
    if pir.duration is not None:
        overview.append(("Duration", format_duration(pir.duration)))
    overview.append(("Commander", escape_slack(pir.commander or "not recorded")))
    if pir.services:
        overview.append(("Services", escape_slack(", ".join(pir.services))))
    blocks: list[Block] = [
        header(f"Post-incident review: {pir.key} {pir.title}".replace(":  ", ": ")),
        _fields(overview),
        # The impact has a block of its own, so the summary here leaves out the lines that say it.
        section("*Summary*\n" + "\n".join(escape_slack(line) for line in pir.summary if line not in impact)),
    ]
    if impact:
        blocks.append(section("*Impact*\n" + _bullets(impact)))
    if pir.metrics:
        blocks.append(
            _fields(
                [
                    (
                        m.name.capitalize(),
                        f"{format_duration(m.duration)} ({format_span(m.start.at, m.end.at, tz, joiner=' → ')})",
                    )
                    for m in pir.metrics
                ]
            )
        )
    root = (
        escape_slack(pir.root_cause) if pir.root_cause else f"_To be completed by {escape_slack(pir.root_cause_owner)}_"
    )
    blocks.append(section(f"*Root cause*\n{root}"))
    if pir.contributing_factors:
        blocks.append(section("*Contributing factors*\n" + _bullets(pir.contributing_factors)))
    if pir.went_well:
        blocks.append(section("*What went well*\n" + _bullets(pir.went_well)))
    if pir.went_badly:
        blocks.append(section("*What did not go well*\n" + _bullets(pir.went_badly)))
    if pir.action_items:
        items = [
            f"{item.title} ({item.priority.value if item.priority else 'no priority'}, "
            f"{item.owner or 'unassigned'}{', due ' + item.deadline.isoformat() if item.deadline else ''})"
            for item in pir.action_items
        ]
        blocks.append(section("*Action items*\n" + _bullets(items)))
    blocks.append(DividerBlock())
    where = f" in `{filename}`" if filename else " in the attached file"
    blocks.append(
        context(f"{pir.events_total:,} timeline events across {len(pir.phases)} phases; the full review is{where}.")
    )
    return to_dicts(blocks)
