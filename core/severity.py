"""Severity suggestion from impact facts (SPEC §8).

Rules, applied in this order and reported in this order:

1. Base by share of users affected: over 75% SEV1, 25% to 75% SEV2, 5% to under 25% SEV3, under 5% SEV4.
   When the share is not known the default base (SEV3 unless told otherwise) is used and the reasons say so.
2. One level more severe for high revenue impact, an SLA or regulatory exposure, or no workaround on a
   customer-facing service. The raise is applied once, however many of these fire (the matrix says "one
   level more ... for A, B or C"); every one that fired is still listed.
3. One level less severe for an internal-only impact with a workaround.
4. The result is clamped to SEV1..SEV4.
5. Floors: a security breach exposing customer data, data loss, or customer-facing revenue systems fully
   down make it SEV1 whatever the other rules say.

Figures an export states only in its words (core.impact: "80% of users unable to pay", "revenue loss of $45,000",
"orders were lost") count as the fields would, and the reason quotes the words. A revenue loss stated as an amount
of at least HIGH_REVENUE_LOSS_USD counts as high revenue impact when the export rates no level itself.

Pure functions; the same facts always give the same output.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.cadence import DEFAULT_CADENCE_TEXT, format_duration, parse_cadence
from core.enums import Role, Severity
from core.export import IncidentExport
from core.impact import money, reported_impact

RevenueImpact = Literal["none", "low", "medium", "high"]
HIGH_REVENUE_LOSS_USD = 10_000

ROLES_BY_SEVERITY: dict[Severity, tuple[Role, ...]] = {
    Severity.SEV1: (Role.COMMANDER, Role.COMMS, Role.OPS, Role.SCRIBE),
    Severity.SEV2: (Role.COMMANDER, Role.COMMS, Role.OPS),
    Severity.SEV3: (Role.COMMANDER, Role.OPS),
    Severity.SEV4: (Role.COMMANDER,),
}

ESCALATION_BY_SEVERITY: dict[Severity, tuple[str, ...]] = {
    Severity.SEV1: (
        "on-call engineer",
        "incident commander",
        "engineering manager",
        "executive on call (immediately)",
    ),
    Severity.SEV2: ("on-call engineer", "incident commander", "engineering manager"),
    Severity.SEV3: ("on-call engineer", "owning team lead"),
    Severity.SEV4: ("owning team, next business day",),
}


class ImpactFacts(BaseModel):
    """What is known about the impact. None means "not known", which is never guessed."""

    model_config = ConfigDict(frozen=True)

    users_affected_pct: float | None = Field(default=None, ge=0, le=100)
    customer_facing: bool | None = None
    revenue_impact: RevenueImpact | None = None
    revenue_systems_down: bool = False
    data_loss: bool = False
    security_breach: bool = False  # customer data exposed
    workaround_available: bool | None = None
    sla_or_regulatory: bool = False
    internal_only: bool = False
    revenue_loss_usd: float | None = Field(default=None, ge=0)
    # The export's own words a figure was read from (quoted in the reasons), when no field gave it.
    users_affected_said: str | None = None
    revenue_loss_said: str | None = None
    data_loss_said: str | None = None

    @classmethod
    def from_export(cls, export: IncidentExport) -> ImpactFacts:
        impact = export.impact
        reported = reported_impact(export)
        internal_only = impact.internal_only
        if internal_only is None:
            internal_only = impact.customer_facing is False
        said = reported.users_pct_stated, reported.revenue_stated, reported.data_loss_stated
        return cls(
            users_affected_pct=reported.users_pct,
            customer_facing=impact.customer_facing,
            revenue_impact=reported.revenue_level,  # type: ignore[arg-type]
            revenue_systems_down=bool(impact.revenue_systems_down),
            data_loss=bool(reported.data_loss),
            revenue_loss_usd=reported.revenue_usd,
            users_affected_said=said[0].quoted if said[0] else None,
            revenue_loss_said=said[1].quoted if said[1] else None,
            data_loss_said=said[2].quoted if said[2] else None,
            security_breach=bool(impact.security_breach),
            workaround_available=impact.workaround_available,
            sla_or_regulatory=bool(impact.sla_or_regulatory),
            internal_only=bool(internal_only),
        )


class Classification(BaseModel):
    model_config = ConfigDict(frozen=True)

    severity: Severity
    reasons: list[str]
    cadence: str
    cadence_interval: timedelta | None
    roles_to_fill: list[Role]
    escalation_path: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.label,
            "reasons": list(self.reasons),
            "cadence": self.cadence,
            "cadence_seconds": (None if self.cadence_interval is None else int(self.cadence_interval.total_seconds())),
            "roles_to_fill": [role.value for role in self.roles_to_fill],
            "escalation_path": list(self.escalation_path),
        }


def cadence_text(interval: timedelta | None) -> str:
    return "no scheduled updates" if interval is None else f"every {format_duration(interval)}"


def _pct(value: float) -> str:
    return f"{value:g}%"


def base_severity(pct: float) -> tuple[Severity, str]:
    if pct > 75:
        return Severity.SEV1, "over 75%"
    if pct >= 25:
        return Severity.SEV2, "25% to 75%"
    if pct >= 5:
        return Severity.SEV3, "5% to under 25%"
    return Severity.SEV4, "under 5%"


def classify(
    facts: ImpactFacts,
    *,
    cadence: dict[Severity, timedelta | None] | None = None,
    default: Severity = Severity.SEV3,
) -> Classification:
    """Suggest a severity from impact facts, with every rule that fired in plain words."""
    cadence_map = cadence if cadence is not None else parse_cadence(DEFAULT_CADENCE_TEXT)
    reasons: list[str] = []

    # 1. base
    if facts.users_affected_pct is None:
        level = default.level
        reasons.append(f"Share of users affected is not known, so the default {default.label} is the base.")
    else:
        base, band = base_severity(facts.users_affected_pct)
        level = base.level
        said = f" (the export's words: {facts.users_affected_said})" if facts.users_affected_said else ""
        reasons.append(f"{_pct(facts.users_affected_pct)} of users affected ({band}) gives {base.label}{said}.")

    # 2. one level more (once)
    raises: list[str] = []
    if facts.revenue_impact == "high":
        raises.append("High revenue impact")
    elif facts.revenue_impact is None and (facts.revenue_loss_usd or 0) >= HIGH_REVENUE_LOSS_USD:
        amount = money(facts.revenue_loss_usd or 0)
        said = f": {facts.revenue_loss_said}" if facts.revenue_loss_said else ""
        raises.append(
            f"High revenue impact (a loss of {amount}{said}; {money(HIGH_REVENUE_LOSS_USD)} or more counts as high)"
        )
    if facts.sla_or_regulatory:
        raises.append("SLA or regulatory exposure")
    if facts.customer_facing and facts.workaround_available is False:
        raises.append("No workaround on a customer-facing service")
    if raises:
        before = Severity.from_level(level)
        level -= 1
        after = Severity.from_level(level)
        for index, text in enumerate(raises):
            if index == 0:
                if level < 1:
                    reasons.append(f"{text}: one level more severe, but {before.label} is already the highest.")
                else:
                    reasons.append(f"{text} raises it one level, to {after.label}.")
            else:
                reasons.append(f"{text}: one level more severe too (the raise counts once).")

    # 3. one level less
    if facts.internal_only and facts.workaround_available:
        level += 1
        lowered = Severity.from_level(level)
        if level > 4:
            reasons.append("Internal-only impact with a workaround: one level less, but SEV4 is already the lowest.")
        else:
            reasons.append(f"Internal-only impact with a workaround lowers it one level, to {lowered.label}.")

    # 4. clamp
    severity = Severity.from_level(level)

    # 5. floors
    floors: list[str] = []
    if facts.security_breach:
        floors.append("Security breach exposing customer data")
    if facts.data_loss:
        floors.append(f"Data loss ({facts.data_loss_said})" if facts.data_loss_said else "Data loss")
    if facts.revenue_systems_down and facts.customer_facing is not False:
        floors.append("Customer-facing revenue systems fully down")
    for text in floors:
        if severity is not Severity.SEV1:
            reasons.append(f"{text} makes it SEV1 at least (floor), up from {severity.label}.")
            severity = Severity.SEV1
        else:
            reasons.append(f"{text}: SEV1 at least (floor).")

    interval = cadence_map.get(severity)
    return Classification(
        severity=severity,
        reasons=reasons,
        cadence=cadence_text(interval),
        cadence_interval=interval,
        roles_to_fill=list(ROLES_BY_SEVERITY[severity]),
        escalation_path=list(ESCALATION_BY_SEVERITY[severity]),
    )
