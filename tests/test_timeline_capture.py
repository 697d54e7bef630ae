"""Tagging messages into the timeline (SPEC §6), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from core import store
from core.cadence import DEFAULT_CADENCE_TEXT, parse_cadence
from core.clock import FrozenClock
from core.db import transaction
from core.enums import EntryKind, Severity
from core.models import ProcessedEvent
from core.timeline_capture import (
    Tagging,
    delete_message,
    edit_message,
    infer_kind,
    set_kind,
    tag_message,
    tag_messages,
    untag_message,
)

TS = "1768485300.000100"  # 2026-01-15 13:55:00 UTC


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("We rolled back to v2.3.9", EntryKind.MITIGATION),
        ("Failover to the replica done", EntryKind.MITIGATION),
        ("Root cause: the ORM opens 3x connections", EntryKind.INVESTIGATION),
        ("PagerDuty alert fired for checkout", EntryKind.DETECTION),
        ("Escalated to the DB team", EntryKind.ESCALATION),
        ("Status page updated", EntryKind.COMMUNICATION),
        ("Everything is resolved now", EntryKind.RESOLUTION),
        ("coffee?", EntryKind.NOTE),
    ],
)
def test_kind_is_inferred_from_the_words(text: str, kind: EntryKind) -> None:
    assert infer_kind(text) == kind


def _incident(sessions: sessionmaker[Session], clock: FrozenClock) -> int:
    with transaction(sessions) as session:
        incident = store.declare(
            session=session,
            title="x",
            severity=Severity.SEV2,
            declared_by="U1",
            now=clock.now(),
            cadence=parse_cadence(DEFAULT_CADENCE_TEXT),
        )
        return incident.id or 0


def _entries(sessions: sessionmaker[Session], incident_id: int) -> list[tuple[str, EntryKind, str]]:
    with sessions() as session:
        incident = store.incident_by_key(session=session, key=str(incident_id))
        return [
            (e.text, e.kind, e.source)
            for e in store.entries_of(session=session, incident=incident)
            if e.message_ts is not None
        ]


def test_one_message_is_one_entry_however_it_is_tagged(sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    incident_id = _incident(sessions, clock)
    for tag, source in (("reaction:U2:pushpin", "reaction"), ("reaction:U3:pushpin", "reaction"), ("pin", "pin")):
        with transaction(sessions) as session:
            incident = store.incident_by_key(session=session, key=str(incident_id))
            tag_message(
                session=session, incident_id=incident.id or 0, channel="C1", ts=TS, text="we rolled back",
                author="U2", tag=tag, source=source, now=clock.now(),
            )  # fmt: skip
        with sessions() as session:
            incident = store.incident_by_key(session=session, key=str(incident_id))
            tagged = [e for e in store.entries_of(session=session, incident=incident) if e.message_ts]
            assert [e.occurred_at for e in tagged] == [datetime(2026, 1, 15, 13, 55, 0, 100, tzinfo=UTC)]
    assert _entries(sessions, incident_id) == [("we rolled back", EntryKind.MITIGATION, "reaction")]
    with transaction(sessions) as session:
        incident = store.incident_by_key(session=session, key=str(incident_id))
        assert not untag_message(session=session, incident_id=incident.id or 0, channel="C1", ts=TS, tag="pin")
        assert not untag_message(
            session=session, incident_id=incident.id or 0, channel="C1", ts=TS, tag="reaction:U2:pushpin"
        )
    assert len(_entries(sessions, incident_id)) == 1
    with transaction(sessions) as session:
        incident = store.incident_by_key(session=session, key=str(incident_id))
        assert untag_message(
            session=session, incident_id=incident.id or 0, channel="C1", ts=TS, tag="reaction:U3:pushpin"
        )
    assert _entries(sessions, incident_id) == []


def test_edits_update_and_deletes_remove_and_a_chosen_kind_sticks(
    sessions: sessionmaker[Session], clock: FrozenClock
) -> None:
    incident_id = _incident(sessions, clock)
    with transaction(sessions) as session:
        incident = store.incident_by_key(session=session, key=str(incident_id))
        created = tag_message(
            session=session, incident_id=incident.id or 0, channel="C1", ts=TS, text="looking into logs",
            author="U2", tag="pin", source="pin", now=clock.now(),
        )  # fmt: skip
        assert created
        [entry_id] = [e.id for e in store.entries_of(session=session, incident=incident) if e.message_ts == TS]
    with transaction(sessions) as session:
        assert edit_message(session=session, channel="C1", ts=TS, text="rolled back the deploy") == 1
    assert _entries(sessions, incident_id) == [("rolled back the deploy", EntryKind.MITIGATION, "pin")]
    with transaction(sessions) as session:
        set_kind(session=session, entry_id=entry_id, kind=EntryKind.ESCALATION)
    with transaction(sessions) as session:
        edit_message(session=session, channel="C1", ts=TS, text="now resolved")
    assert _entries(sessions, incident_id) == [("now resolved", EntryKind.ESCALATION, "pin")]
    with transaction(sessions) as session:
        assert delete_message(session=session, channel="C1", ts=TS) == 1
    assert _entries(sessions, incident_id) == []


def test_many_taggings_at_once_are_each_applied_once(sessions: sessionmaker[Session], clock: FrozenClock) -> None:
    first, second = _incident(sessions, clock), _incident(sessions, clock)
    later = "1768485360.000200"

    def tagging(event_id: str, incident: int, ts: str, tag: str, text: str = "we rolled back") -> Tagging:
        return Tagging(event_id=event_id, incident_id=incident, channel="C1", ts=ts, text=text, author="U2",
                       tag=tag, source="reaction", at=clock.now())  # fmt: skip

    with transaction(sessions) as session:
        store.claim_event(session=session, event_id="Ev-old", now=clock.now())
    with transaction(sessions) as session:
        applied = tag_messages(session=session, taggings=[
            tagging("Ev1", first, TS, "reaction:U2:pushpin"),
            tagging("Ev1", first, TS, "reaction:U2:pushpin"),  # the same delivery twice in one batch
            tagging("Ev2", first, TS, "reaction:U3:pushpin"),  # a second tag of the same message
            tagging("Ev-old", first, later, "pin"),  # processed before
            tagging("Ev3", second, TS, "pin", text="alerts fired"),  # the same message, another incident
            tagging("", first, later, "pin", text="paged the DB team"),  # no event id
        ])  # fmt: skip
    assert applied == [True, False, True, False, True, True]
    assert _entries(sessions, first) == [("we rolled back", EntryKind.MITIGATION, "reaction"),
                                         ("paged the DB team", EntryKind.ESCALATION, "reaction")]  # fmt: skip
    assert _entries(sessions, second) == [("alerts fired", EntryKind.DETECTION, "reaction")]
    with transaction(sessions) as session:  # two tags on the first message: removing one keeps the entry
        assert not untag_message(session=session, incident_id=first, channel="C1", ts=TS, tag="reaction:U2:pushpin")
        assert untag_message(session=session, incident_id=first, channel="C1", ts=TS, tag="reaction:U3:pushpin")
    with sessions() as session:
        assert set(session.exec(select(ProcessedEvent.event_id)).all()) == {"Ev-old", "Ev1", "Ev2", "Ev3"}
