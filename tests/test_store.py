"""Storage and the state changes of core.store, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from core import store
from core.cadence import DEFAULT_CADENCE_TEXT, parse_cadence
from core.clock import FrozenClock
from core.db import is_up_to_date, make_engine, transaction, upgrade
from core.enums import EntryKind, IncidentStatus, Phase, Priority, Role, Severity
from core.errors import InvalidInput, InvalidState, NotAnIncidentChannel, NotFound

CADENCE = parse_cadence(DEFAULT_CADENCE_TEXT)


def test_migrations_upgrade_an_empty_database_and_a_second_run_changes_nothing(database_url: str) -> None:
    engine = make_engine(database_url)
    assert not is_up_to_date(engine)
    upgrade(engine)
    tables = set(sa.inspect(engine).get_table_names())
    assert {"incidents", "timeline_entries", "status_updates", "role_assignments", "action_items"} <= tables
    assert {"processed_events", "participants", "severity_changes", "alembic_version"} <= tables
    columns_before = {t: [c["name"] for c in sa.inspect(engine).get_columns(t)] for t in tables}
    upgrade(engine)
    assert is_up_to_date(engine)
    inspector = sa.inspect(engine)
    assert {t: [c["name"] for c in inspector.get_columns(t)] for t in tables} == columns_before
    engine.dispose()


def _declare(session: Session, clock: FrozenClock, **kwargs: object) -> store.Incident:
    defaults: dict[str, object] = {"title": "Checkout errors", "severity": Severity.SEV2, "declared_by": "U1"}
    defaults.update(kwargs)
    return store.declare(session=session, now=clock.now(), cadence=CADENCE, **defaults)  # type: ignore[arg-type]


def test_declare_writes_the_row_key_commander_and_first_entry(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    with transaction(sessions) as session:
        first = _declare(session, clock)
        second = _declare(session, clock, title="  Another   one ", commander_id="U9")
    with sessions() as session:
        one = store.incident_by_key(session=session, key=first.key or "")
        assert one.key == f"INC-{one.id}"
        assert one.declared_at == clock.now() and one.declared_at.tzinfo is not None
        assert one.next_update_due == clock.now() + timedelta(minutes=30)
        assert store.roles_of(session=session, incident=one) == {Role.COMMANDER: "U1"}
        assert [e.kind for e in store.entries_of(session=session, incident=one)] == [EntryKind.DECLARATION]
        two = store.incident_by_key(session=session, key=str(second.id))
        assert two.title == "Another one"
        assert store.roles_of(session=session, incident=two) == {Role.COMMANDER: "U9"}
        with pytest.raises(NotFound):
            store.incident_by_key(session=session, key="INC-999")


@pytest.mark.parametrize("title", ["", "   ", "\n\t"])
def test_declare_refuses_an_empty_title(sessions: sessionmaker[Session], clock: FrozenClock, title: str) -> None:
    with pytest.raises(InvalidInput), transaction(sessions) as session:
        _declare(session, clock, title=title)
    with sessions() as session:
        assert store.open_incidents(session=session) == []


def test_status_update_severity_and_role_changes_move_the_cadence(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    with transaction(sessions) as session:
        incident = _declare(session, clock)
        incident.channel_id = "C1"
    clock.advance(minutes=10)
    with transaction(sessions) as session:
        incident = store.require_incident_channel(session=session, channel_id="C1")
        incident.missed_reminders = 2
        store.post_status_update(
            session=session,
            incident=incident,
            phase=Phase.IDENTIFIED,
            text="Bad deploy",
            author_id="U2",
            now=clock.now(),
            cadence=CADENCE,
        )
        assert incident.next_update_due == clock.now() + timedelta(minutes=30)
        assert incident.missed_reminders == 0 and incident.phase == Phase.IDENTIFIED
    clock.advance(minutes=5)
    with transaction(sessions) as session:
        incident = store.require_incident_channel(session=session, channel_id="C1")
        store.change_severity(
            session=session,
            incident=incident,
            severity=Severity.SEV1,
            reason="revenue",
            actor_id="U2",
            now=clock.now(),
            cadence=CADENCE,
        )
        assert incident.next_update_due == clock.now() + timedelta(minutes=15)
        with pytest.raises(InvalidInput):
            store.change_severity(
                session=session,
                incident=incident,
                severity=Severity.SEV1,
                reason="",
                actor_id="U2",
                now=clock.now(),
                cadence=CADENCE,
            )
        store.assign_role(
            session=session, incident=incident, role=Role.COMMS, user_id="U3", actor_id="U1", now=clock.now()
        )
        store.assign_role(
            session=session, incident=incident, role=Role.COMMS, user_id="U4", actor_id="U1", now=clock.now()
        )
        store.assign_role(
            session=session, incident=incident, role=Role.COMMANDER, user_id="U5", actor_id="U1", now=clock.now()
        )
    with sessions() as session:
        incident = store.require_incident_channel(session=session, channel_id="C1")
        assert incident.severity == Severity.SEV1 and incident.commander_id == "U5"
        assert store.roles_of(session=session, incident=incident) == {Role.COMMANDER: "U5", Role.COMMS: "U4"}
        changes = store.severity_changes_of(session=session, incident=incident)
        assert [(c.from_severity, c.to_severity) for c in changes] == [
            (None, Severity.SEV2),
            (Severity.SEV2, Severity.SEV1),
        ]
        kinds = [e.kind for e in store.entries_of(session=session, incident=incident)]
        assert kinds == [
            EntryKind.DECLARATION,
            EntryKind.STATUS_UPDATE,
            EntryKind.SEVERITY_CHANGE,
            EntryKind.ROLE_CHANGE,
            EntryKind.ROLE_CHANGE,
            EntryKind.ROLE_CHANGE,
        ]
        with pytest.raises(NotAnIncidentChannel):
            store.require_incident_channel(session=session, channel_id="C-other")


def test_resolve_stops_the_cadence_and_reopen_starts_it(sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    with transaction(sessions) as session:
        incident = _declare(session, clock, severity=Severity.SEV1)
        store.add_action_item(
            session=session,
            incident=incident,
            title="Add alerts",
            owner_id="U7",
            priority=Priority.P1,
            due=date(2026, 1, 20),
            actor_id="U1",
            now=clock.now(),
        )
        clock.advance(hours=1)
        store.resolve(session=session, incident=incident, actor_id="U1", now=clock.now(), root_cause="Pool too small")
        assert incident.status == IncidentStatus.RESOLVED and incident.next_update_due is None
        with pytest.raises(InvalidState):
            store.resolve(session=session, incident=incident, actor_id="U1", now=clock.now())
        with pytest.raises(InvalidState):
            store.post_status_update(
                session=session,
                incident=incident,
                phase=Phase.MONITORING,
                text="x",
                author_id="U1",
                now=clock.now(),
                cadence=CADENCE,
            )
        clock.advance(minutes=1)
        store.reopen(session=session, incident=incident, actor_id="U1", now=clock.now(), cadence=CADENCE)
        assert incident.next_update_due == clock.now() + timedelta(minutes=15)
        assert incident.root_cause == "Pool too small"
        items = store.action_items_of(session=session, incident=incident)
        assert [(i.title, i.owner_id, i.priority, i.due) for i in items] == [
            ("Add alerts", "U7", Priority.P1, date(2026, 1, 20))
        ]


def test_a_slack_event_id_is_claimed_once_and_a_rollback_forgets_it(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        assert store.claim_event(session=session, event_id="Ev1", now=clock.now())
        raise RuntimeError("the effect failed")
    with transaction(sessions) as session:
        assert store.claim_event(session=session, event_id="Ev1", now=clock.now())
        assert not store.claim_event(session=session, event_id="Ev1", now=clock.now())
    with transaction(sessions) as session:
        assert not store.claim_event(session=session, event_id="Ev1", now=clock.now())
        assert store.claim_job_run(session=session, name="digest", run_key="2026-01-15", now=clock.now())
        assert not store.claim_job_run(session=session, name="digest", run_key="2026-01-15", now=clock.now())


def test_participants_are_counted_with_first_and_last_time(sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    with transaction(sessions) as session:
        incident = _declare(session, clock)
        incident_id = incident.id or 0
    start = clock.now()
    with transaction(sessions) as session:
        store.record_participant(
            session=session, incident_id=incident_id, user_id="U2", at=start + timedelta(minutes=5)
        )
        store.record_participant(
            session=session, incident_id=incident_id, user_id="U2", at=start + timedelta(minutes=1)
        )
        store.record_participant(
            session=session, incident_id=incident_id, user_id="U3", at=start + timedelta(minutes=9)
        )
    with sessions() as session:
        incident = store.incident_by_key(session=session, key=str(incident_id))
        rows = [
            (p.user_id, p.first_seen_at, p.last_seen_at, p.messages)
            for p in store.participants_of(session=session, incident=incident)
        ]
    assert rows == [
        ("U2", start + timedelta(minutes=1), start + timedelta(minutes=5), 2),
        ("U3", start + timedelta(minutes=9), start + timedelta(minutes=9), 1),
    ]


def test_sqlite_runs_with_wal_and_foreign_keys(tmp_path: object) -> None:
    engine: Engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
