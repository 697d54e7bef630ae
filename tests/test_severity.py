"""Severity suggestion (SPEC §8): base by share, one level up or down, floors, reasons in words."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from core.cadence import parse_cadence
from core.enums import Role, Severity
from core.export import load_export
from core.severity import ImpactFacts, classify

FULL = Path(__file__).parent / "fixtures" / "incident-commander" / "sample_incident_data.json"


def test_the_sample_is_sev1_with_its_rules_in_words() -> None:
    facts = ImpactFacts.from_export(load_export(FULL))
    assert facts == ImpactFacts(
        users_affected_pct=45,
        customer_facing=True,
        revenue_impact="high",
        workaround_available=False,
        revenue_loss_usd=28500,
    )
    result = classify(facts)
    assert result.severity is Severity.SEV1
    assert result.reasons == [
        "45% of users affected (25% to 75%) gives SEV2.",
        "High revenue impact raises it one level, to SEV1.",
        "No workaround on a customer-facing service: one level more severe too (the raise counts once).",
    ]
    assert result.cadence == "every 15 min"
    assert result.roles_to_fill == [Role.COMMANDER, Role.COMMS, Role.OPS, Role.SCRIBE]
    assert result.escalation_path[0] == "on-call engineer"


@pytest.mark.parametrize(
    ("pct", "expected"),
    [(100, Severity.SEV1), (75.1, Severity.SEV1), (75, Severity.SEV2), (25, Severity.SEV2),
     (24.9, Severity.SEV3), (5, Severity.SEV3), (4.9, Severity.SEV4), (0, Severity.SEV4)],
)  # fmt: skip
def test_base_by_share_of_users(pct: float, expected: Severity) -> None:
    assert classify(ImpactFacts(users_affected_pct=pct)).severity is expected


def test_an_unknown_share_is_said_and_the_default_used() -> None:
    result = classify(ImpactFacts())
    assert result.severity is Severity.SEV3
    assert result.reasons == ["Share of users affected is not known, so the default SEV3 is the base."]
    assert classify(ImpactFacts(), default=Severity.SEV2).severity is Severity.SEV2


def test_the_raise_counts_once_however_many_rules_fire() -> None:
    facts = ImpactFacts(
        users_affected_pct=10,
        revenue_impact="high",
        sla_or_regulatory=True,
        customer_facing=True,
        workaround_available=False,
    )
    result = classify(facts)
    assert result.severity is Severity.SEV2
    assert len(result.reasons) == 4


def test_no_workaround_raises_only_on_a_customer_facing_service() -> None:
    assert classify(ImpactFacts(users_affected_pct=10, workaround_available=False)).severity is Severity.SEV3
    facts = ImpactFacts(users_affected_pct=10, customer_facing=True, workaround_available=False)
    assert classify(facts).severity is Severity.SEV2


def test_internal_only_with_a_workaround_is_one_level_less_and_clamped() -> None:
    facts = ImpactFacts(users_affected_pct=30, internal_only=True, workaround_available=True)
    result = classify(facts)
    assert result.severity is Severity.SEV3
    assert result.reasons[-1] == "Internal-only impact with a workaround lowers it one level, to SEV3."
    low = classify(ImpactFacts(users_affected_pct=1, internal_only=True, workaround_available=True))
    assert low.severity is Severity.SEV4 and "already the lowest" in low.reasons[-1]
    high = classify(ImpactFacts(users_affected_pct=90, revenue_impact="high"))
    assert high.severity is Severity.SEV1 and "already the highest" in high.reasons[-1]


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        (ImpactFacts(users_affected_pct=1, security_breach=True), "Security breach exposing customer data"),
        (ImpactFacts(users_affected_pct=1, data_loss=True), "Data loss"),
        (
            ImpactFacts(users_affected_pct=1, revenue_systems_down=True, customer_facing=True),
            "Customer-facing revenue systems fully down",
        ),
    ],
)
def test_floors_make_it_sev1(facts: ImpactFacts, words: str) -> None:
    result = classify(facts)
    assert result.severity is Severity.SEV1
    assert result.reasons[-1] == f"{words} makes it SEV1 at least (floor), up from SEV4."


def test_internal_revenue_systems_down_is_no_floor() -> None:
    facts = ImpactFacts(users_affected_pct=1, revenue_systems_down=True, customer_facing=False)
    assert classify(facts).severity is Severity.SEV4


def test_cadence_comes_from_the_map_given() -> None:
    cadence = parse_cadence("sev1=5m,sev4=off")
    assert classify(ImpactFacts(users_affected_pct=90), cadence=cadence).cadence == "every 5 min"
    result = classify(ImpactFacts(users_affected_pct=1), cadence=cadence)
    assert result.cadence == "no scheduled updates" and result.cadence_interval is None
    assert classify(ImpactFacts(users_affected_pct=30)).cadence_interval == timedelta(minutes=30)


def test_to_dict_is_plain_json() -> None:
    data = classify(ImpactFacts(users_affected_pct=45)).to_dict()
    assert data["severity"] == "SEV2" and data["roles_to_fill"] == ["commander", "comms", "ops"]
    assert data["cadence_seconds"] == 1800
