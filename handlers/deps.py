"""What every listener needs, handed to it through Bolt's context (`context["deps"]`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from slack_bolt import BoltContext
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from core import store
from core.cadence import Cadence
from core.clock import Clock
from core.db import GroupCommit, reading, transaction
from core.enums import Severity
from core.jira import JiraRules
from core.paging import OnCallSource, Paging
from core.statuspage import ComponentSource
from core.timeline_capture import Tagging, tag_messages
from handlers.messages import MessageReader

NEGATIVE_CACHE_SECONDS = 2.0
T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    """The settings that listeners read, taken from the process's settings by the app factory."""

    cadence: Cadence
    default_severity: Severity
    channel_prefix: str
    timeline_emoji: tuple[str, ...]
    announce_channel: str | None
    timezone: str
    paging: Paging = Paging()
    escalation_policy: str | None = None
    triage_channel: str | None = None
    jira: JiraRules = JiraRules()
    statuspage: bool = False  # STATUSPAGE_API_KEY and STATUSPAGE_PAGE_ID set

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass
class Deps:
    config: Config
    sessions: sessionmaker[Session]
    client: WebClient
    clock: Clock
    webhook: Callable[[str], WebhookClient]
    """A client for one response_url (the process's retry policy and allowed hosts)."""
    bot_user_id: str | None = None
    team_url: str | None = None
    metrics: Any = None
    executor: Executor | None = None
    oncall: OnCallSource | None = None
    """Who is on call in PagerDuty (None when PAGERDUTY_API_TOKEN or PAGERDUTY_ESCALATION_POLICY is unset)."""
    status_page: ComponentSource | None = None
    """The status page's components (None when Statuspage is not configured)."""
    extra: dict[str, Any] = field(default_factory=dict)
    group_commit: GroupCommit = field(init=False, repr=False)
    messages: MessageReader = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.group_commit = GroupCommit(self.sessions)
        self.messages = MessageReader(self.client)

    def __deepcopy__(self, memo: dict[int, Any]) -> Deps:
        """Shared services are not copied (Bolt deep-copies the context for lazy listeners)."""
        return self

    def incident_id_of_channel(self, channel: str | None) -> int | None:
        """The incident of a channel, cached: a channel never changes incident, and a channel found to have
        none is asked again after a few seconds (another replica may just have declared in it)."""
        if not channel:
            return None
        cache: dict[str, tuple[int | None, float]] = self.extra.setdefault("incident_of_channel", {})
        hit = cache.get(channel)
        if hit is not None and (hit[0] is not None or hit[1] > time.monotonic()):
            return hit[0]
        with self.read() as session:
            found = store.incident_id_of_channel(session=session, channel_id=channel)
        cache[channel] = (found, time.monotonic() + NEGATIVE_CACHE_SECONDS)
        return found

    def now(self) -> datetime:
        return self.clock.now()

    @contextmanager
    def tx(self) -> Iterator[Session]:
        """A unit of work that writes (committed at the end)."""
        with transaction(self.sessions) as session:
            yield session

    def together(self, work: Callable[[Session], T]) -> T:
        """A small unit of work that writes, committed together with the others waiting (see GroupCommit):
        the busiest path, Slack events, spends one transaction on many events."""
        return self.group_commit.run(work)

    def tag_together(self, tagging: Tagging) -> bool:
        """A tagging event applied with the others waiting, in one set of statements for all (tag_messages)."""
        return bool(self.group_commit.run_many(tagging, _tag_messages))

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only look (on SQLite it does not wait for writers)."""
        with reading(self.sessions) as session:
            yield session


def _tag_messages(session: Session, taggings: list[Tagging]) -> list[bool]:
    return tag_messages(session=session, taggings=taggings)


def deps_of(context: BoltContext | dict[str, Any]) -> Deps:
    deps = context["deps"]
    assert isinstance(deps, Deps)
    return deps
