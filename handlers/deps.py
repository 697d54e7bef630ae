"""What every listener needs, handed to it through Bolt's context (`context["deps"]`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_bolt import BoltContext
from slack_sdk import WebClient
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from bot.settings import Settings
from core.clock import Clock
from core.db import reading, transaction


@dataclass
class Deps:
    settings: Settings
    sessions: sessionmaker[Session]
    client: WebClient
    clock: Clock
    bot_user_id: str | None = None
    team_url: str | None = None
    metrics: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __deepcopy__(self, memo: dict[int, Any]) -> Deps:
        """Shared services are not copied (Bolt deep-copies the context for lazy listeners)."""
        return self

    def now(self) -> datetime:
        return self.clock.now()

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """A unit of work that writes (committed at the end)."""
        with transaction(self.sessions) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only look (on SQLite it does not wait for writers)."""
        with reading(self.sessions) as session:
            yield session


def deps_of(context: BoltContext | dict[str, Any]) -> Deps:
    deps = context["deps"]
    assert isinstance(deps, Deps)
    return deps
