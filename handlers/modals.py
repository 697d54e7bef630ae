"""Modal views (Block Kit through slack_sdk.models) and reading their submitted state back."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import (
    CheckboxesElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    StaticMultiSelectElement,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from core.enums import Phase, Severity
from core.models import Incident
from core.severity import ImpactFacts
from core.statuspage import IMPACTS, STATUSES
from core.templating import escape_slack

DECLARE = "sitrep_declare"
UPDATE = "sitrep_update"
SEVERITY = "sitrep_severity"
IMPACT_ACTION = "sitrep_impact_changed"

SHARES = {
    "lt5": ("Under 5%", 2.0),
    "5to25": ("5% to 25%", 15.0),
    "25to75": ("25% to 75%", 50.0),
    "gt75": ("Over 75%", 90.0),
}
REVENUE = {"none": "None", "low": "Low", "medium": "Medium", "high": "High"}
FLAGS = {
    "customer_facing": "Customer-facing service affected",
    "revenue_systems_down": "Revenue systems (checkout, billing) fully down",
    "data_loss": "Data lost",
    "security_breach": "Customer data exposed (security)",
    "workaround_available": "A workaround is available",
    "sla_or_regulatory": "SLA or regulatory exposure",
}


def _options(pairs: dict[str, str]) -> list[Option]:
    return [Option(value=value, label=label) for value, label in pairs.items()]


def _severity_select(initial: Severity | None = None, *, optional: bool) -> InputBlock:
    options = _options({s.value: s.label for s in Severity})
    chosen = next((o for o in options if initial and o.value == initial.value), None)
    return InputBlock(
        block_id="severity",
        label="Severity",
        optional=optional,
        hint="Leave empty to use the suggestion from the impact answers." if optional else None,
        element=StaticSelectElement(action_id="severity", options=options, initial_option=chosen),
    )


def declare_view(
    *,
    channel_id: str | None,
    suggestion: str | None = None,
    title: str | None = None,
    severity: Severity | None = None,
    description: str | None = None,
    alert_group: int | None = None,
) -> dict[str, Any]:
    """The declare form; prefilled (title, severity, description) when declaring from an alert group."""
    blocks: list[Any] = [
        InputBlock(
            block_id="title",
            label="Title",
            element=PlainTextInputElement(
                action_id="title",
                max_length=150,
                placeholder="Checkout errors in EU",
                initial_value=title[:150] if title else None,
            ),
        ),
        _severity_select(severity, optional=True),
        InputBlock(
            block_id="description",
            label="What is happening?",
            optional=True,
            element=PlainTextInputElement(
                action_id="description",
                multiline=True,
                max_length=2500,
                initial_value=description[:2500] if description else None,
            ),
        ),
        InputBlock(
            block_id="services",
            label="Affected services (comma separated)",
            optional=True,
            element=PlainTextInputElement(action_id="services", max_length=500),
        ),
        InputBlock(
            block_id="private",
            label="Visibility",
            optional=True,
            element=CheckboxesElement(action_id="private", options=[Option(value="private", label="Private channel")]),
        ),
        InputBlock(
            block_id="share",
            label="Share of users affected",
            optional=True,
            dispatch_action=True,
            element=StaticSelectElement(
                action_id=IMPACT_ACTION, options=_options({k: v[0] for k, v in SHARES.items()})
            ),
        ),
        InputBlock(
            block_id="revenue",
            label="Revenue impact",
            optional=True,
            dispatch_action=True,
            element=StaticSelectElement(action_id=IMPACT_ACTION, options=_options(REVENUE)),
        ),
        InputBlock(
            block_id="flags",
            label="Impact",
            optional=True,
            dispatch_action=True,
            element=CheckboxesElement(action_id=IMPACT_ACTION, options=_options(FLAGS)),
        ),
    ]
    if suggestion:
        blocks.append(ContextBlock(block_id="suggestion", elements=[MarkdownTextObject(text=suggestion[:3000])]))
    view = View(
        type="modal",
        callback_id=DECLARE,
        title="Declare an incident",
        submit="Declare",
        close="Cancel",
        private_metadata=json.dumps({"channel_id": channel_id} | ({"alert_group": alert_group} if alert_group else {})),
        blocks=blocks,
    )
    return view.to_dict()


def _value(values: dict[str, Any], block: str) -> Any:
    element = next(iter((values.get(block) or {}).values()), None) or {}
    kind = element.get("type")
    if kind == "plain_text_input":
        return (element.get("value") or "").strip()
    if kind in ("static_select", "radio_buttons"):
        return (element.get("selected_option") or {}).get("value")
    if kind == "multi_static_select":
        return [option["value"] for option in element.get("selected_options") or []]
    if kind == "checkboxes":
        return [option["value"] for option in element.get("selected_options") or []]
    if kind == "users_select":
        return element.get("selected_user")
    return None


def impact_from_state(values: dict[str, Any]) -> ImpactFacts:
    share = _value(values, "share")
    flags = set(_value(values, "flags") or [])
    return ImpactFacts(
        users_affected_pct=SHARES[share][1] if share in SHARES else None,
        revenue_impact=_value(values, "revenue"),
        customer_facing=("customer_facing" in flags) if flags or share else None,
        revenue_systems_down="revenue_systems_down" in flags,
        data_loss="data_loss" in flags,
        security_breach="security_breach" in flags,
        workaround_available=("workaround_available" in flags) if flags else None,
        sla_or_regulatory="sla_or_regulatory" in flags,
    )


def declare_from_state(values: dict[str, Any]) -> dict[str, Any]:
    severity = _value(values, "severity")
    return {
        "title": _value(values, "title") or "",
        "severity": Severity(severity) if severity else None,
        "description": _value(values, "description") or "",
        "services": [s.strip() for s in (_value(values, "services") or "").split(",") if s.strip()],
        "private": "private" in (_value(values, "private") or []),
        "impact": impact_from_state(values),
    }


def suggestion_text(severity: Severity, reasons: list[str]) -> str:
    lines = [f"*Suggested severity: {severity.label}*"] + [f"• {escape_slack(reason)}" for reason in reasons]
    return "\n".join(lines)


def _incident_modal(
    incident: Incident, *, callback_id: str, title: str, submit: str, blocks: list[Any]
) -> dict[str, Any]:
    """A modal about one incident: its id travels in private_metadata to the submission."""
    return View(
        type="modal",
        callback_id=callback_id,
        title=title,
        submit=submit,
        close="Cancel",
        private_metadata=json.dumps({"incident_id": incident.id}),
        blocks=blocks,
    ).to_dict()


PUBLISH = "publish"
STATUSPAGE = "sitrep_statuspage"


def _publish_box(label: str, *, checked: bool) -> InputBlock:
    option = Option(value=PUBLISH, label=label)
    return InputBlock(
        block_id=PUBLISH,
        label="Status page",
        optional=True,
        element=CheckboxesElement(action_id=PUBLISH, options=[option], initial_options=[option] if checked else None),
    )


def published(view: dict[str, Any]) -> bool | None:
    """The publish checkbox: True or False, or None when the form had none."""
    if PUBLISH not in ((view.get("state") or {}).get("values") or {}):
        return None
    return PUBLISH in (state_value(view, PUBLISH) or [])


def update_view(incident: Incident, *, public: bool = False) -> dict[str, Any]:
    """The update form; `public`: the incident is on the status page, so the update may be published too."""
    phases = {p.value: p.value.capitalize() for p in Phase if p != Phase.RESOLVED}
    current = (
        next(o for o in _options(phases) if o.value == incident.phase.value) if incident.phase.value in phases else None
    )
    return _incident_modal(
        incident,
        callback_id=UPDATE,
        title="Post a status update",
        submit="Post",
        blocks=[
            InputBlock(
                block_id="phase",
                label="Phase",
                element=StaticSelectElement(action_id="phase", options=_options(phases), initial_option=current),
            ),
            InputBlock(
                block_id="text",
                label="What changed?",
                element=PlainTextInputElement(action_id="text", multiline=True, max_length=2900),
            ),
            *([_publish_box("Publish this update on the status page", checked=False)] if public else []),
        ],
    )


def severity_view(incident: Incident) -> dict[str, Any]:
    return _incident_modal(
        incident,
        callback_id=SEVERITY,
        title="Change severity",
        submit="Change",
        blocks=[
            _severity_select(incident.severity, optional=False),
            InputBlock(
                block_id="reason",
                label="Why?",
                optional=True,
                element=PlainTextInputElement(action_id="reason", max_length=500),
            ),
        ],
    )


def metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(json.loads(view.get("private_metadata") or "{}"))
    except ValueError:
        return {}


def state_value(view: dict[str, Any], block: str) -> Any:
    return _value(view.get("state", {}).get("values", {}), block)


RESOLVE = "sitrep_resolve"
PICK_INCIDENT = "sitrep_pick_incident"


def _text_input(block_id: str, label: str, *, multiline: bool = False, optional: bool = True,
                hint: str | None = None, initial: str | None = None) -> InputBlock:  # fmt: skip
    return InputBlock(
        block_id=block_id,
        label=label,
        optional=optional,
        hint=hint,
        element=PlainTextInputElement(action_id=block_id, multiline=multiline, max_length=3000, initial_value=initial),
    )


def resolve_view(incident: Incident, *, public: bool = False) -> dict[str, Any]:
    """The resolve form; `public`: resolving resolves the public incident too (checked, unless private)."""
    return _incident_modal(
        incident,
        callback_id=RESOLVE,
        title="Resolve incident",
        submit="Resolve",
        blocks=[
            _text_input("root_cause", "Root cause", multiline=True, initial=incident.root_cause,
                        hint="Leave empty if not known yet: the review will say it is to be completed."),
            _text_input("factors", "Contributing factors", multiline=True, hint="One per line."),
            _text_input("customer_impact", "Customer impact", multiline=True, initial=incident.customer_impact),
            _text_input("lessons", "Lessons", multiline=True, hint="One per line."),
            _text_input("whys", "Five whys (optional)", multiline=True,
                        hint="One per line, as: Why did X happen? Because Y."),
            *([_publish_box("Resolve it on the status page, components operational", checked=not incident.private)]
              if public else []),
        ],
    )  # fmt: skip


def statuspage_view(incident: Incident, components: list[tuple[str, str]]) -> dict[str, Any]:
    """Make the incident public: title and message, the affected components by impact, the status."""
    choices = [Option(value=component_id, label=name[:75]) for component_id, name in components[:100]]
    statuses = _options({status: status.capitalize() for status in STATUSES})
    current = next((o for o in statuses if o.value == incident.phase.value), statuses[0])
    impacts = [
        InputBlock(block_id=f"impact_{impact}", label=label, optional=True,
                   element=StaticMultiSelectElement(action_id=f"impact_{impact}", options=choices,
                                                    placeholder="Components"))
        for impact, label in IMPACTS.items()
    ] if choices else []  # fmt: skip
    return _incident_modal(
        incident,
        callback_id=STATUSPAGE,
        title="Publish on status page",
        submit="Publish",
        blocks=[
            _text_input("name", "Public title", optional=False, hint="Customers see this: no internal names."),
            _text_input("body", "Public message", multiline=True, optional=False),
            *impacts,
            InputBlock(block_id="status", label="Status",
                       element=StaticSelectElement(action_id="status", options=statuses, initial_option=current)),
        ],
    )  # fmt: skip


def statuspage_from_state(view: dict[str, Any]) -> dict[str, Any]:
    components: dict[str, str] = {}
    for impact in IMPACTS:  # the worst impact named for a component wins (IMPACTS goes from mild to severe)
        for component in state_value(view, f"impact_{impact}") or []:
            components[component] = impact
    return {
        "name": state_value(view, "name") or "",
        "body": state_value(view, "body") or "",
        "status": state_value(view, "status") or "investigating",
        "components": components,
    }


def lines(text: str | None) -> list[str]:
    return [line.strip(" -•\t") for line in (text or "").splitlines() if line.strip(" -•\t")]


def whys(text: str | None) -> list[dict[str, str]]:
    """`Why did X happen? Because Y.` per line -> [{why, answer}]; a line with no `?` is a why alone."""
    result = []
    for line in lines(text):
        why, mark, answer = line.partition("?")
        result.append({"why": why.strip() + mark, "answer": answer.strip()})
    return result


def resolution_from_state(view: dict[str, Any]) -> dict[str, Any]:
    return {
        "root_cause": state_value(view, "root_cause") or None,
        "contributing_factors": lines(state_value(view, "factors")),
        "customer_impact": state_value(view, "customer_impact") or None,
        "lessons": lines(state_value(view, "lessons")),
        "five_whys": whys(state_value(view, "whys")),
    }


METADATA_LIMIT = 3000  # Slack's limit on a view's private_metadata, in characters


def _slack_length(text: str) -> int:
    """Length as Slack counts it (UTF-16 code units, as JavaScript does: an emoji may count twice)."""
    return len(text.encode("utf-16-le")) // 2


def fitted_metadata(meta: dict[str, Any], *, shorten: str) -> str:
    """`meta` as private_metadata within Slack's limit. When it does not fit, the text of field `shorten` is cut
    to what fits and `"cut": true` says so (the submission then reads the whole text where it can)."""
    whole = json.dumps(meta, ensure_ascii=False)
    if _slack_length(whole) <= METADATA_LIMIT:
        return whole
    text = str(meta[shorten])

    def cut_to(length: int) -> str:
        return json.dumps({**meta, shorten: text[:length], "cut": True}, ensure_ascii=False)

    fits, too_long = 0, len(text)  # the longest start that fits, by bisection
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        fits, too_long = (middle, too_long) if _slack_length(cut_to(middle)) <= METADATA_LIMIT else (fits, middle)
    return cut_to(fits)


def pick_incident_view(incidents: list[Incident], *, message: dict[str, str | None]) -> dict[str, Any]:
    """Which open incident a message shortcut used outside any incident channel adds to. `message`: its channel,
    ts, thread_ts, text and author, carried to the submission in private_metadata."""
    options = [Option(value=str(i.id), label=f"{i.key} {i.severity.label} {i.title}"[:75]) for i in incidents[:100]]
    return View(
        type="modal",
        callback_id=PICK_INCIDENT,
        title="Add to timeline",
        submit="Add",
        close="Cancel",
        private_metadata=fitted_metadata(message, shorten="text"),
        blocks=[
            InputBlock(
                block_id="incident",
                label="Which incident?",
                element=StaticSelectElement(action_id="incident", options=options),
            )
        ],
    ).to_dict()
