"""Group commit (core.db.GroupCommit) and the SQLite write lock of one process's threads, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from core import store
from core.db import GroupCommit, make_engine, session_factory, upgrade
from core.models import ProcessedEvent

NOW = datetime(2026, 1, 15, 14, 0, tzinfo=UTC)


def _claim(event_id: str) -> Callable[[Session], bool]:
    return lambda session: store.claim_event(session=session, event_id=event_id, now=NOW)


def _stored(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as session:
        return set(session.exec(select(ProcessedEvent.event_id)).all())


def _count_commits(engine: Engine) -> list[int]:
    commits = [0]

    @sa.event.listens_for(engine, "commit")
    def _on_commit(_connection: object) -> None:
        commits[0] += 1

    return commits


def test_a_unit_alone_runs_at_once_and_returns_its_result(sessions: sessionmaker[Session]) -> None:
    group = GroupCommit(sessions)
    assert group.run(_claim("Ev1")) is True
    assert group.run(_claim("Ev1")) is False  # a retried delivery
    assert _stored(sessions) == {"Ev1"}


def test_units_waiting_together_share_a_transaction(engine: Engine, sessions: sessionmaker[Session]) -> None:
    group = GroupCommit(sessions)
    commits = _count_commits(engine)
    gate = threading.Event()
    results: dict[str, bool] = {}

    def first(session: Session) -> bool:
        gate.wait(5)  # hold the first transaction open while the others queue up behind it
        return store.claim_event(session=session, event_id="Ev0", now=NOW)

    leader = threading.Thread(target=lambda: results.update(Ev0=group.run(first)))
    leader.start()
    time.sleep(0.1)
    waiting = [
        threading.Thread(target=lambda n=n: results.update({f"Ev{n}": group.run(_claim(f"Ev{n}"))}))
        for n in range(1, 11)
    ]
    for thread in waiting:
        thread.start()
    deadline = time.monotonic() + 5
    while len(group._waiting) < 10 and time.monotonic() < deadline:  # noqa: SLF001 - the queue is what is tested
        time.sleep(0.01)
    gate.set()
    for thread in [leader, *waiting]:
        thread.join(10)

    assert results == {f"Ev{n}": True for n in range(11)}
    assert _stored(sessions) == {f"Ev{n}" for n in range(11)}
    assert commits[0] == 2  # the first unit alone, then the ten that waited, together


def test_a_failing_unit_costs_the_others_nothing(engine: Engine, sessions: sessionmaker[Session]) -> None:
    group = GroupCommit(sessions)
    gate = threading.Event()
    outcomes: dict[str, object] = {}

    def hold(session: Session) -> bool:
        gate.wait(5)
        return store.claim_event(session=session, event_id="Ev-first", now=NOW)

    def broken(session: Session) -> bool:
        store.claim_event(session=session, event_id="Ev-broken", now=NOW)
        raise ValueError("a bug in one event's effect")

    def run(name: str, work: Callable[[Session], bool]) -> None:
        try:
            outcomes[name] = group.run(work)
        except ValueError as error:
            outcomes[name] = error

    leader = threading.Thread(target=run, args=("first", hold))
    leader.start()
    time.sleep(0.1)
    others = [threading.Thread(target=run, args=(name, work)) for name, work in
              [("a", _claim("Ev-a")), ("broken", broken), ("b", _claim("Ev-b"))]]  # fmt: skip
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 5
    while len(group._waiting) < 3 and time.monotonic() < deadline:  # noqa: SLF001
        time.sleep(0.01)
    gate.set()
    for thread in [leader, *others]:
        thread.join(10)

    assert outcomes["first"] is True and outcomes["a"] is True and outcomes["b"] is True
    assert isinstance(outcomes["broken"], ValueError)  # raised in its own thread only
    assert _stored(sessions) == {"Ev-first", "Ev-a", "Ev-b"}  # the broken unit's claim was rolled back


def test_units_of_one_kind_are_applied_together_and_in_their_order(sessions: sessionmaker[Session]) -> None:
    """A reaction then its removal, waiting together: the removal must still come after the reaction."""
    group = GroupCommit(sessions)
    gate = threading.Event()
    applied: list[object] = []

    def many(session: Session, items: list[str]) -> list[str]:
        applied.append(list(items))
        return [item.upper() for item in items]

    def plain(name: str) -> Callable[[Session], str]:
        def work(session: Session) -> str:
            if name == "first":
                gate.wait(5)
            applied.append(name)
            return name

        return work

    results: dict[str, object] = {}
    leader = threading.Thread(target=lambda: results.update(first=group.run(plain("first"))))
    leader.start()
    time.sleep(0.1)
    queued = []
    for name, start in [("a", lambda: group.run_many("a", many)), ("b", lambda: group.run_many("b", many)),
                        ("untag", lambda: group.run(plain("untag"))), ("c", lambda: group.run_many("c", many))]:
        queued.append(threading.Thread(target=lambda n=name, f=start: results.update({n: f()})))
        queued[-1].start()
        deadline = time.monotonic() + 5  # queue them in this order
        while len(group._waiting) < len(queued) and time.monotonic() < deadline:  # noqa: SLF001
            time.sleep(0.01)
    gate.set()
    for thread in [leader, *queued]:
        thread.join(10)

    assert applied == ["first", ["a", "b"], "untag", ["c"]]
    assert results == {"first": "first", "a": "A", "b": "B", "untag": "untag", "c": "C"}


def test_many_threads_each_event_stored_once(sessions: sessionmaker[Session]) -> None:
    group = GroupCommit(sessions)
    results: list[bool] = []
    lock = threading.Lock()

    def deliver(n: int) -> None:
        claimed = group.run(_claim(f"Ev{n % 50}"))  # every event delivered four times
        with lock:
            results.append(claimed)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sum(results) == 50 and len(results) == 200
    assert len(_stored(sessions)) == 50


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_a_database_in_memory_leaves_no_file(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine(url)
    upgrade(engine)
    assert GroupCommit(session_factory(engine)).run(_claim("Ev-mem")) is True
    assert list(tmp_path.iterdir()) == []
    engine.dispose()
