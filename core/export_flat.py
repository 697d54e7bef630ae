"""The flat export shape of `sample_incident_pir_data.json`, mapped onto the canonical one (core.export).

Nothing is invented: data absent from the flat file stays absent, and `where` names each canonical field by
the flat field it came from, so that a validation error names what the person wrote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_RESPONDER = re.compile(r"^\s*(?P<name>.+?)\s+[-–—]\s+(?P<role>.+?)\s*$")


def from_flat(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[tuple[int | str, ...], str]]:
    """Map the flat shape of `sample_incident_pir_data.json` onto the canonical one.

    Mapping (nothing is invented; absent data stays absent):
    incident_id -> incident.id; title, description, severity, status, affected_services as they are;
    start_time -> incident.started_at (impact start); end_time -> incident.resolved_at;
    incident_commander -> incident.commander and a participant; responders `Name - Role` -> participants;
    customer_impact / business_impact text -> impact.customer_impact / impact.business_impact;
    technical_details.root_cause -> resolution.root_cause; technical_details.affected_regions ->
    impact.affected_regions; lessons_learned_preview -> resolution.lessons; preliminary_action_items ->
    action items with no owner, priority or due date; communication_log -> communications and
    communication events; detection_details -> a detection event (its time_to_detection -> response.time_to_detect);
    response_details.war_room_established -> a note event; response_details time_to_response, time_to_escalation,
    time_to_resolution, executives_notified, status_page_updated -> response; technical_details.error_metrics ->
    impact.error_metrics; five_whys (when present) -> resolution.five_whys. Sub-objects that are only partly
    mapped (response_details, technical_details) are also kept whole under context.
    """
    flat = dict(data)
    # canonical location prefix -> the flat field it came from, so errors name the field the user wrote
    where: dict[tuple[int | str, ...], str] = {
        ("incident", "id"): "incident_id",
        ("incident", "title"): "title",
        ("incident", "description"): "description",
        ("incident", "severity"): "severity",
        ("incident", "status"): "status",
        ("incident", "started_at"): "start_time",
        ("incident", "resolved_at"): "end_time",
        ("incident", "commander"): "incident_commander",
        ("incident", "affected_services"): "affected_services",
        ("impact", "customer_impact"): "customer_impact",
        ("impact", "business_impact"): "business_impact",
        ("impact", "affected_regions"): "technical_details.affected_regions",
        ("resolution", "root_cause"): "technical_details.root_cause",
        ("resolution", "lessons"): "lessons_learned_preview",
        ("resolution", "five_whys"): "five_whys",
        ("action_items",): "preliminary_action_items",
        ("participants",): "responders",
        ("communications",): "communication_log",
    }
    incident: dict[str, Any] = {
        "id": flat.get("incident_id"),
        "title": flat.get("title"),
        "description": flat.get("description"),
        "severity": flat.get("severity"),
        "status": flat.get("status"),
        "started_at": flat.get("start_time"),
        "resolved_at": flat.get("end_time"),
        "commander": flat.get("incident_commander"),
        "affected_services": flat.get("affected_services") or [],
    }
    incident = {k: v for k, v in incident.items() if v is not None}

    participants: list[Any] = []
    responders = flat.get("responders") or []
    if not isinstance(responders, list):
        responders = [responders]  # let validation name the wrong type
    for responder in responders:
        if isinstance(responder, str):
            match = _RESPONDER.match(responder)
            if match:
                participants.append({"name": match["name"], "role": match["role"]})
            else:
                participants.append({"name": responder.strip()})
        else:
            participants.append(responder)
    commander = flat.get("incident_commander")
    if (
        isinstance(commander, str)
        and commander
        and all(not (isinstance(p, dict) and p.get("name") == commander) for p in participants)
    ):
        where[("participants", len(participants))] = "incident_commander"
        participants.append({"name": commander, "role": "Incident Commander"})

    events: list[Any] = []
    detection = flat.get("detection_details")
    if isinstance(detection, Mapping) and detection.get("detection_time"):
        method = str(detection.get("detection_method") or "").replace("_", " ").strip()
        alert = str(detection.get("alert_source") or "").strip()
        text = "Detected"
        if method:
            text += f" by {method}"
        if alert:
            text += f": {alert}"
        where[("events", len(events))] = "detection_details"
        where[("events", len(events), "timestamp")] = "detection_details.detection_time"
        events.append(
            {
                "timestamp": detection["detection_time"],
                "type": "detection",
                "actor": "monitoring" if "monitor" in method else None,
                "description": text,
                "source": "import",
            }
        )
    response = flat.get("response_details")
    if isinstance(response, Mapping) and response.get("war_room_established"):
        where[("events", len(events))] = "response_details"
        where[("events", len(events), "timestamp")] = "response_details.war_room_established"
        events.append(
            {
                "timestamp": response["war_room_established"],
                "type": "note",
                "description": "War room established",
                "source": "import",
            }
        )

    communications: list[Any] = []
    log = flat.get("communication_log") or []
    for index, entry in enumerate(log if isinstance(log, list) else [log]):
        if not isinstance(entry, Mapping):
            communications.append(entry)
            continue
        communications.append(
            {
                "timestamp": entry.get("timestamp"),
                "message": entry.get("message"),
                "channel": entry.get("type") or entry.get("channel"),
                "audience": entry.get("audience"),
            }
        )
        if entry.get("timestamp") and entry.get("message"):
            where[("events", len(events))] = f"communication_log[{index}]"
            events.append(
                {
                    "timestamp": entry["timestamp"],
                    "type": "communication",
                    "description": f"{(entry.get('type') or 'message').replace('_', ' ')}: {entry['message']}",
                    "source": "import",
                    "metadata": {"channel": entry.get("type") or entry.get("channel")},
                }
            )

    impact: dict[str, Any] = {}
    for key in ("customer_impact", "business_impact"):
        if flat.get(key) is not None:
            impact[key] = flat[key]
    technical = flat.get("technical_details") if isinstance(flat.get("technical_details"), Mapping) else {}
    if technical.get("affected_regions"):
        impact["affected_regions"] = technical["affected_regions"]
    if technical.get("error_metrics") is not None:
        where[("impact", "error_metrics")] = "technical_details.error_metrics"
        impact["error_metrics"] = technical["error_metrics"]

    reported: dict[str, Any] = {}
    sources = (
        (detection, "time_to_detection", "time_to_detect", "detection_details"),
        (response, "time_to_response", "time_to_respond", "response_details"),
        (response, "time_to_escalation", "time_to_escalate", "response_details"),
        (response, "time_to_resolution", "time_to_resolve", "response_details"),
        (response, "executives_notified", "executives_notified", "response_details"),
        (response, "status_page_updated", "status_page_updated", "response_details"),
    )
    for source, flat_key, key, parent in sources:
        if isinstance(source, Mapping) and source.get(flat_key) is not None:
            where[("response", key)] = f"{parent}.{flat_key}"
            reported[key] = source[flat_key]

    resolution: dict[str, Any] = {}
    if technical.get("root_cause"):
        resolution["root_cause"] = technical["root_cause"]
    if flat.get("lessons_learned_preview") is not None:
        resolution["lessons"] = flat["lessons_learned_preview"]
    if flat.get("five_whys") is not None:
        resolution["five_whys"] = flat["five_whys"]

    method = technical.get("resolution_method")
    if isinstance(method, str) and method:
        step = method.replace("_", " ").capitalize()
        if technical.get("rollback_target"):
            step += f" to {technical['rollback_target']}"
        if technical.get("rollback_duration"):
            step += f" (took {technical['rollback_duration']})"
        resolution["mitigation_steps"] = [step]

    # What has no place in the canonical shape is kept, untouched, under context.
    mapped = {
        "incident_id",
        "title",
        "description",
        "severity",
        "status",
        "start_time",
        "end_time",
        "incident_commander",
        "affected_services",
        "responders",
        "detection_details",
        "communication_log",
        "customer_impact",
        "business_impact",
        "lessons_learned_preview",
        "preliminary_action_items",
        "five_whys",
    }
    context = {key: value for key, value in flat.items() if key not in mapped}

    action_items: list[Any] = []
    preliminary = flat.get("preliminary_action_items") or []
    for item in preliminary if isinstance(preliminary, list) else [preliminary]:
        action_items.append({"title": item} if isinstance(item, str) else item)

    canonical = {
        "incident": incident,
        "events": events,
        "communications": communications,
        "impact": impact,
        "resolution": resolution,
        "action_items": action_items,
        "participants": participants,
        "response": reported,
        "context": context,
    }
    return canonical, where
