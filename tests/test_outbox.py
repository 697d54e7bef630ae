"""The outbox's table logic (core.outbox) on SQLite and PostgreSQL, in virtual time."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from core import outbox, store
from core.clock import FrozenClock
from core.db import transaction
from core.enums import Severity
from core.models import Incident, OutboxRow

CADENCE = {severity: None for severity in Severity}


def _incident(sessions: sessionmaker[Session], clock: FrozenClock, *, channel: str | None = "C0INC1") -> Incident:
    with transaction(sessions) as session:
        incident = store.declare(session=session, title="Checkout errors", severity=Severity.SEV1,
                                 declared_by="U0ALICE", now=clock.now(), cadence=CADENCE)  # fmt: skip
        incident.channel_id = channel
        session.add(incident)
    return incident


def _enqueue(sessions: sessionmaker[Session], clock: FrozenClock, incident: Incident, key: str, **kw: str) -> bool:
    with transaction(sessions) as session:
        return outbox.enqueue(session=session, integration=kw.get("integration", "pagerduty"),
                              operation=kw.get("operation", "trigger"), payload={"n": key}, idempotency_key=key,
                              incident_id=incident.id, now=clock.now())  # fmt: skip


def _claim(sessions: sessionmaker[Session], clock: FrozenClock) -> list[outbox.Delivery]:
    with transaction(sessions) as session:
        return outbox.claim(session=session, now=clock.now())


def test_the_same_idempotency_key_makes_one_row(sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    incident = _incident(sessions, clock)
    assert _enqueue(sessions, clock, incident, "k1") is True
    assert _enqueue(sessions, clock, incident, "k1") is False
    with transaction(sessions) as session:
        assert len(outbox.rows_of(session=session, incident_id=incident.id or 0)) == 1
        assert outbox.pending_count(session=session) == 1


def test_rows_of_one_incident_and_integration_go_out_in_order(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    incident = _incident(sessions, clock)
    for key in ("first", "second"):
        _enqueue(sessions, clock, incident, key)
    _enqueue(sessions, clock, incident, "jira-1", integration="jira", operation="create")
    claimed = _claim(sessions, clock)
    assert [(d.idempotency_key, d.attempts, d.channel_id, d.incident_key) for d in claimed] == [
        ("first", 1, "C0INC1", incident.key), ("jira-1", 1, "C0INC1", incident.key)]  # fmt: skip
    assert _claim(sessions, clock) == []  # "second" waits for "first", which is leased
    first = claimed[0]
    with transaction(sessions) as session:
        outbox.retry_later(session=session, delivery=first, now=clock.now(), error="500", delay=timedelta(seconds=5))
    clock.advance(seconds=4)
    assert _claim(sessions, clock) == []  # "first" is not due yet, and "second" still waits behind it
    clock.advance(seconds=1)
    again = _claim(sessions, clock)
    assert [(d.idempotency_key, d.attempts) for d in again] == [("first", 2)]
    with transaction(sessions) as session:
        assert outbox.delivered(session=session, delivery=again[0], now=clock.now(), result={"link": "triggered"})
    assert [d.idempotency_key for d in _claim(sessions, clock)] == ["second"]


def test_a_lease_lost_in_a_crash_is_claimed_again_after_it_expires(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    incident = _incident(sessions, clock)
    _enqueue(sessions, clock, incident, "k1")
    [crashed] = _claim(sessions, clock)  # claimed, then the process died before sending
    clock.advance(outbox.LEASE - timedelta(seconds=1))
    assert _claim(sessions, clock) == []
    with transaction(sessions) as session:
        assert not outbox.any_due(session=session, now=clock.now())
    clock.advance(seconds=1)
    with transaction(sessions) as session:
        assert outbox.any_due(session=session, now=clock.now())
    [retried] = _claim(sessions, clock)
    assert retried.id == crashed.id and retried.attempts == 2 and retried.lease_token != crashed.lease_token
    with transaction(sessions) as session:  # the old worker, back from the dead, cannot record over the new lease
        assert not outbox.delivered(session=session, delivery=crashed, now=clock.now(), result={})
        assert outbox.delivered(session=session, delivery=retried, now=clock.now(), result={})


def test_a_row_waits_for_its_incident_channel_but_not_for_ever(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    incident = _incident(sessions, clock, channel=None)
    _enqueue(sessions, clock, incident, "k1")
    assert _claim(sessions, clock) == []
    clock.advance(outbox.CHANNEL_GRACE)
    [claimed] = _claim(sessions, clock)
    assert claimed.channel_id is None


def test_give_up_is_recorded_once(sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    incident = _incident(sessions, clock)
    _enqueue(sessions, clock, incident, "k1")
    [claimed] = _claim(sessions, clock)
    with transaction(sessions) as session:
        assert outbox.give_up(session=session, delivery=claimed, now=clock.now(), error="PagerDuty answered 400")
        assert not outbox.give_up(session=session, delivery=claimed, now=clock.now(), error="again")
        assert outbox.pending_count(session=session) == 0
        [row] = session.exec(select(OutboxRow)).all()
        assert (row.state, row.last_error, row.lease_token) == ("failed", "PagerDuty answered 400", None)


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    assert outbox.backoff(1, jitter=0.0) == timedelta(seconds=2.5)
    assert outbox.backoff(1, jitter=0.999999) < timedelta(seconds=5)
    assert outbox.backoff(3, jitter=0.0) == timedelta(seconds=10)
    assert outbox.backoff(50, jitter=0.0) == outbox.BACKOFF_CAP / 2
    assert outbox.backoff(50, jitter=0.999999) < outbox.BACKOFF_CAP


def test_links_show_what_each_integration_last_did(sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    incident = _incident(sessions, clock)
    assert _links(sessions, incident) == []
    _enqueue(sessions, clock, incident, "t1")
    assert _links(sessions, incident) == [("PagerDuty", "trigger pending")]
    [claimed] = _claim(sessions, clock)
    with transaction(sessions) as session:
        outbox.delivered(session=session, delivery=claimed, now=clock.now(), result={"link": "triggered"})
    _enqueue(sessions, clock, incident, "r1", operation="resolve")
    [claimed] = _claim(sessions, clock)
    with transaction(sessions) as session:
        outbox.retry_later(session=session, delivery=claimed, now=clock.now(), error="PagerDuty answered 503",
                           delay=timedelta(seconds=5))  # fmt: skip
    assert _links(sessions, incident) == [("PagerDuty", "triggered; resolve pending, retrying: PagerDuty answered 503")]


def _links(sessions: sessionmaker[Session], incident: Incident) -> list[tuple[str, str]]:
    with transaction(sessions) as session:
        return [(link.name, link.text) for link in outbox.links(session=session, incident_id=incident.id or 0)]
