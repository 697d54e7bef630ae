"""Engines, sessions and migrations. Nothing is created at import time."""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from importlib import resources
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

T = TypeVar("T")
READ_ONLY = "sitrep_read_only"

# Bounds on waiting for the database (SPEC §15: an ack never waits on it; work fails in time, not never).
SQLITE_BUSY_SECONDS = 10  # another process holding SQLite's write lock (within one process: WriteLock)
PG_CONNECT_SECONDS = 5
PG_STATEMENT_MS = 15_000  # per statement, server-side; migrations lift it (see `upgrade`)
PG_POOL_WAIT_SECONDS = 10  # for a pooled connection, when every one is busy


# The threads of this process that write to one SQLite file take turns on its lock before BEGIN IMMEDIATE: SQLite's
# own busy handler waits by sleeping in steps of up to 100 ms, a waiter here is woken the moment the lock is free.
# One process uses a SQLite file; more capacity is more replicas on PostgreSQL (SPEC §12).
_WRITE_LOCKS: WeakKeyDictionary[Engine, threading.Lock] = WeakKeyDictionary()


def normalise_url(url: str) -> str:
    """Let people write postgres:// or postgresql:// and get the psycopg 3 driver we ship."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _use_wal(cursor: Any, *, patience: float = 30.0) -> None:
    """Put a SQLite file in WAL mode, which the file keeps. Processes opening a new file at the same moment each
    try to convert it, and SQLite refuses all but one at once with "database is locked" (a deadlock, so no busy
    wait): the others try again, and find it converted."""
    deadline = time.monotonic() + patience
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        on_disk = ":memory:" not in url and url not in ("sqlite://", "sqlite:///")
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS}
        engine = sa.create_engine(url, connect_args=connect_args, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            if on_disk:
                _use_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
            cursor.close()
            # Let SQLAlchemy, not pysqlite, open transactions, so that SAVEPOINTs work; see
            # SQLAlchemy's "Serializable isolation / Savepoints / Transactional DDL" for pysqlite.
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            # IMMEDIATE takes the write lock up front: concurrent read-then-write transactions wait for
            # each other (busy_timeout) instead of failing with "database is locked". Reads (see
            # `reading`) begin DEFERRED: in WAL mode they neither wait for writers nor block them.
            deferred = connection.get_execution_options().get(READ_ONLY, False)
            connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

        _WRITE_LOCKS[engine] = threading.Lock()
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("pool_timeout", PG_POOL_WAIT_SECONDS)
    if url.startswith("postgresql"):
        # A dead server's connections are noticed by TCP keepalives; a paused one answers no statement, and the
        # callers that must not wait for it (acks) bound their waits themselves (see Within).
        kwargs["connect_args"] = {
            "connect_timeout": PG_CONNECT_SECONDS, "options": f"-c statement_timeout={PG_STATEMENT_MS}",
            "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
            **kwargs.get("connect_args", {}),
        }  # fmt: skip
    return sa.create_engine(url, **kwargs)


class Within:
    """Look-ups that a caller waits for at most a given time (an ack must not wait on a slow database).

    Each runs on one of a few daemon threads of this object (started when needed, gone after a while idle); the
    caller gets the answer, or None when it takes longer than `within` seconds. The look-up goes on, and calls
    with the same key meanwhile share it. While look-ups are stuck, at most `backlog` keys wait; calls for other
    keys get None at once, so a database that does not answer costs the callers nothing but the bound."""

    IDLE_SECONDS = 30.0

    def __init__(self, *, threads: int = 2, backlog: int = 64) -> None:
        self._threads, self._backlog = threads, backlog
        self._lock = threading.Lock()
        self._pending: dict[Any, Future[Any]] = {}
        self._queue: queue.SimpleQueue[tuple[Any, Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._running = 0

    def call(self, key: Any, look: Callable[[], T], within: float) -> T | None:
        """`look()`'s answer if it comes within `within` seconds, else None; its error is raised."""
        with self._lock:
            future = self._pending.get(key)
            if future is None:
                if len(self._pending) >= self._backlog:
                    return None
                future = self._pending[key] = Future()
                self._queue.put((key, look, future))
                if self._running < min(self._threads, len(self._pending)):
                    self._running += 1
                    threading.Thread(target=self._serve, name="sitrep-within", daemon=True).start()
        try:
            return future.result(timeout=within)  # type: ignore[no-any-return]
        except FutureTimeout:
            return None

    def _serve(self) -> None:
        while True:
            try:
                key, look, future = self._queue.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._running -= 1
                        return
                continue
            try:
                result, error = look(), None
            except BaseException as exc:  # noqa: BLE001 - handed to the callers
                result, error = None, exc
            with self._lock:  # off the list before answering: whoever got an answer finds the key free
                self._pending.pop(key, None)
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)


def is_outage(error: BaseException) -> bool:
    """Whether an error means the database could not be reached or answered (down, restarting, pool exhausted,
    timed out), as opposed to a bug or a refused statement: such work may succeed if tried again later."""
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError))


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, class_=Session, expire_on_commit=False)


def _engine_of(factory: sessionmaker[Session]) -> Engine | None:
    bind = factory.kw.get("bind")
    return bind if isinstance(bind, Engine) else None


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error.

    On SQLite the writers queue on the engine's write lock first, which wakes the next one at once."""
    engine = _engine_of(factory)
    lock = _WRITE_LOCKS.get(engine) if engine is not None else None
    with lock or nullcontext(), factory() as session, session.begin():
        yield session


@contextmanager
def reading(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A read-only look: on SQLite it neither takes nor waits for the write lock."""
    engine = _engine_of(factory)
    bind = engine.execution_options(**{READ_ONLY: True}) if engine is not None else None
    with factory(bind=bind) if bind is not None else factory() as session:
        yield session  # closing ends the transaction; the objects read stay usable, detached


Many = Callable[[Session, list[Any]], list[Any]]


class _Unit(Generic[T]):
    __slots__ = ("work", "item", "many", "done", "result", "error")

    def __init__(self, work: Callable[[Session], T] | None, item: Any = None, many: Many | None = None) -> None:
        self.work, self.item, self.many = work, item, many
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


def _apply(session: Session, units: list[_Unit[Any]]) -> list[Any]:
    """Run units in their order; neighbours that share a `many` go to one call of it."""
    results: list[Any] = []
    start = 0
    while start < len(units):
        many = units[start].many
        if many is None:
            work = units[start].work
            assert work is not None
            results.append(work(session))
            start += 1
            continue
        end = start
        while end < len(units) and units[end].many is many:
            end += 1
        results.extend(many(session, [unit.item for unit in units[start:end]]))
        start = end
    return results


class GroupCommit:
    """Small units of work from many threads, committed together (group commit).

    A thread hands its unit to `run` and waits. The first waiting thread leads: it runs every unit waiting then
    in one transaction and commits once, while the next units gather for the following transaction. Under load
    this spends one BEGIN/COMMIT (and on PostgreSQL one WAL flush) on many units; alone, a unit runs at once.

    A unit touches the database only through the session it is given, and may run twice: when one unit fails,
    the batch is rolled back and each unit runs again in a transaction of its own, so that a bad unit costs the
    others nothing but time, and `run` raises only that unit's own error."""

    def __init__(self, sessions: sessionmaker[Session], *, max_batch: int = 64) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._changed = threading.Condition()
        self._waiting: list[_Unit[Any]] = []
        self._leading = False

    def run(self, work: Callable[[Session], T]) -> T:
        return self._run(_Unit(work))

    def run_many(self, item: Any, many: Many) -> Any:
        """As `run`, for a unit that is data: neighbouring units with the same `many` are applied by one call,
        `many(session, items) -> results` (one set of statements for all of them)."""
        return self._run(_Unit(None, item, many))

    def _run(self, unit: _Unit[T]) -> T:
        with self._changed:
            self._waiting.append(unit)
            while not unit.done:
                if self._leading:
                    self._changed.wait()
                    continue
                self._leading = True
                batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
                self._changed.release()
                try:
                    self._commit(batch)
                finally:
                    self._changed.acquire()
                    self._leading = False
                    self._changed.notify_all()
        if unit.error is not None:
            raise unit.error
        return unit.result  # type: ignore[return-value]

    def _commit(self, batch: list[_Unit[Any]]) -> None:
        if len(batch) > 1:
            try:
                with transaction(self._sessions) as session:
                    results = _apply(session, batch)
            except Exception:  # noqa: BLE001 - each unit runs again alone, and reports its own error
                pass
            else:
                for unit, result in zip(batch, results, strict=True):
                    unit.result, unit.done = result, True
                return
        for unit in batch:
            try:
                with transaction(self._sessions) as session:
                    [unit.result] = _apply(session, [unit])
            except BaseException as error:  # noqa: BLE001 - handed to the unit's own thread
                unit.error = error
            unit.done = True


def dialect_insert(session: Session, table: sa.Table) -> Any:
    """An INSERT that knows ON CONFLICT, for the session's database (SQLite or PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


@lru_cache(maxsize=64)
def insert_or_ignore(
    table: sa.Table,
    keys: tuple[str, ...],
    columns: tuple[str, ...],
    returning: str | None = None,
    rows: int | None = None,
) -> sa.TextClause | sa.TextualSelect:
    """`INSERT ... ON CONFLICT (keys) DO NOTHING [RETURNING col]` as one cached statement, for hot paths.

    The same text runs on SQLite (3.35+) and PostgreSQL. Unlike the dialects' `insert().on_conflict_do_nothing()`,
    which SQLAlchemy compiles anew on every execution (no cache key), a text statement is compiled once; its
    parameters keep their column types, so values are converted exactly as the ORM converts them. With `rows`
    it inserts that many rows, whose parameters are named `column_n` (see `numbered`)."""
    names = [list(columns)] if rows is None else [[f"{c}_{n}" for c in columns] for n in range(rows)]
    values = ", ".join("(" + ", ".join(":" + name for name in row) + ")" for row in names)
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES {values} ON CONFLICT ({', '.join(keys)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {returning}"
    params = [sa.bindparam(name, type_=table.c[c].type) for row in names for name, c in zip(row, columns, strict=True)]
    statement = sa.text(sql).bindparams(*params)
    return statement.columns(table.c[returning]) if returning else statement


def numbered(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of several rows for one statement of `insert_or_ignore(..., rows=len(rows))`."""
    return {f"{key}_{n}": value for n, row in enumerate(rows) for key, value in row.items()}


def _alembic_config(engine: Engine | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("migrations")))
    config.attributes["engine"] = engine
    return config


# Any constant shared by every sitrep process: the key of the PostgreSQL advisory lock around migrations.
MIGRATION_LOCK = 0x5179_7265


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """One process migrates at a time: replicas that start together on an empty database would otherwise all
    create the same tables, and all but one fail. On PostgreSQL an advisory lock; on SQLite (one process) the
    engine's write lock, as alembic reads the version before it takes SQLite's write lock."""
    if engine.dialect.name != "postgresql":
        with _WRITE_LOCKS.get(engine) or nullcontext():
            yield
        return
    with engine.connect() as connection:
        connection.execute(sa.text("SET statement_timeout = 0"))  # waiting for another replica's migrations
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.execute(sa.text("RESET statement_timeout"))
            connection.commit()


def upgrade(engine: Engine) -> None:
    """Apply every migration not yet applied (a second run changes nothing; concurrent runs wait their turn)."""
    with _migration_lock(engine):
        command.upgrade(_alembic_config(engine), "head")


@lru_cache(maxsize=1)
def _newest_migrations() -> frozenset[str]:
    """The heads of the migrations shipped (read once: reading every script took /healthz most of its time)."""
    return frozenset(ScriptDirectory.from_config(_alembic_config(None)).get_heads())


def is_up_to_date(engine: Engine) -> bool:
    """True when the database is reachable and at the newest migration."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    return set(current) == _newest_migrations()
