"""Small shared vocabularies of the domain. Pure Python, no I/O."""

from __future__ import annotations

import re
from enum import StrEnum


class Severity(StrEnum):
    SEV1 = "sev1"
    SEV2 = "sev2"
    SEV3 = "sev3"
    SEV4 = "sev4"

    @property
    def level(self) -> int:
        return int(self.value[-1])

    @property
    def label(self) -> str:
        return self.value.upper()

    @classmethod
    def parse(cls, token: str) -> Severity:
        """Accept `sev1`, `SEV1`, `sev-1`, `Sev 1`, `1`; raise ValueError otherwise."""
        match = re.fullmatch(r"\s*(?:sev[\s_-]?)?([1-4])\s*", token, flags=re.IGNORECASE)
        if not match:
            raise ValueError(f"unknown severity {token!r}: use sev1..sev4")
        return cls(f"sev{match.group(1)}")

    @classmethod
    def from_level(cls, level: int) -> Severity:
        return cls(f"sev{min(4, max(1, level))}")


class IncidentStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class Phase(StrEnum):
    """The phase a status update announces (the word on the status page)."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class EntryKind(StrEnum):
    TRIGGER = "trigger"
    DETECTION = "detection"
    DECLARATION = "declaration"
    INVESTIGATION = "investigation"
    COMMUNICATION = "communication"
    ESCALATION = "escalation"
    MITIGATION = "mitigation"
    RESOLUTION = "resolution"
    NOTE = "note"
    STATUS_UPDATE = "status_update"
    SEVERITY_CHANGE = "severity_change"
    ROLE_CHANGE = "role_change"
    ACTION_ITEM = "action_item"


class Role(StrEnum):
    COMMANDER = "commander"
    COMMS = "comms"
    SCRIBE = "scribe"
    OPS = "ops"

    @property
    def title(self) -> str:  # type: ignore[override]
        return {
            Role.COMMANDER: "Incident Commander",
            Role.COMMS: "Communications Lead",
            Role.SCRIBE: "Scribe",
            Role.OPS: "Operations Lead",
        }[self]


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
