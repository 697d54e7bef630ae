"""The pure parts of the PagerDuty integration: signatures, Retry-After, webhook events, on-call answers."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from bot.pagerduty import signature_valid
from bot.remote import retry_after
from core.errors import InvalidInput
from core.paging import OnCallPerson, WebhookEvent, our_incident_key, people_on_call

NOW = datetime(2026, 1, 15, 14, 0, tzinfo=UTC)


def _sign(body: bytes, secret: str) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_one_valid_v1_signature_among_several_is_enough() -> None:
    body = b'{"event": {}}'
    good, old = _sign(body, "new"), _sign(body, "old")
    assert signature_valid("new", body, good)
    assert signature_valid("new", body, f"{old},{good}") and signature_valid("new", body, f"{good}, {old}")
    assert signature_valid("new", body, good.upper().replace("V1=", "v1="))  # hex case does not matter
    for header in (None, "", old, good[3:], "v2=" + good[3:], f"{old},v1=", "v1=é", good + "0"):
        assert not signature_valid("new", body, header), header
    assert not signature_valid("new", body + b" ", good)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after("120", NOW) == timedelta(seconds=120)
    assert retry_after("Thu, 15 Jan 2026 14:01:30 GMT", NOW) == timedelta(seconds=90)
    assert retry_after("Thu, 15 Jan 2026 13:00:00 GMT", NOW) == timedelta(0)
    assert retry_after(None, NOW) is None and retry_after("soon", NOW) is None


def test_webhook_events_are_read_from_the_v3_shape() -> None:
    incident = {"id": "PINC1", "type": "incident", "number": 3, "title": "Disk full", "incident_key": "sitrep-INC-7",
                "html_url": "https://x.pagerduty.com/incidents/PINC1", "service": {"summary": "DB"}, "urgency": "high"}
    event = WebhookEvent.parse({"event": {"id": "E1", "event_type": "incident.acknowledged",
                                          "occurred_at": "2026-01-15T14:05:00.123Z",
                                          "agent": {"summary": "Oscar"}, "data": incident}})  # fmt: skip
    assert (event.incident_key, event.incident_id, event.number, event.agent, event.service) == (
        "sitrep-INC-7", "PINC1", 3, "Oscar", "DB")  # fmt: skip
    assert event.occurred_at == datetime(2026, 1, 15, 14, 5, 0, 123000, tzinfo=UTC)
    reference = {"id": "PINC1", "type": "incident_reference"}
    note = {"type": "incident_note", "content": "Rolled back", "incident": reference}
    annotated = WebhookEvent.parse({"event": {"id": "E2", "event_type": "incident.annotated", "data": note}})
    assert (annotated.incident_key, annotated.incident_id, annotated.note) == (None, "PINC1", "Rolled back")
    for bad in (None, [], {"event": {"event_type": "x"}}, {"event": {"id": "E3"}}):
        with pytest.raises(InvalidInput):
            WebhookEvent.parse(bad)
    assert our_incident_key("sitrep-INC-7") == "INC-7"
    assert our_incident_key("sitrep-INC-7-x") is None and our_incident_key(None) is None


def test_people_on_call_by_level_once_each() -> None:
    def entry(email: str | None, level: object) -> dict[str, object]:
        return {"user": {"name": email or "?", "email": email}, "schedule": {"summary": "Primary"},
                "escalation_level": level}  # fmt: skip

    oncalls = [entry("b@x", 2), entry("a@x", 1), entry("a@x", 1), entry(None, 1), entry("c@x", "1")]
    assert people_on_call(oncalls) == [
        OnCallPerson("a@x", "a@x", 1, "Primary"), OnCallPerson("b@x", "b@x", 2, "Primary")]  # fmt: skip
