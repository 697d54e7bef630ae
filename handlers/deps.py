"""What every listener needs, handed to it through Bolt's context (`context["deps"]`)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
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
from core.db import GroupCommit, Within, reading, transaction
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
    bridge_url: str | None = None
    """A meeting link template with {key} and {slug} (SPEC §14), bookmarked in each new incident channel."""
    triage_channel: str | None = None
    alert_severity: Mapping[str, Severity] = field(default_factory=dict)
    paging: Paging = Paging()
    escalation_policy: str | None = None
    jira: JiraRules = JiraRules()
    statuspage: bool = False  # STATUSPAGE_API_KEY and STATUSPAGE_PAGE_ID set

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Deferred:
    """Event work that failed because the database could not be reached, kept to run again when it is back
    (SPEC §15): a reaction that tags a message is not lost to an outage. Events claim their id with their
    effect, so running one again is safe. At most LIMIT are kept; beyond, the oldest are dropped and counted."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[tuple[Callable[..., None], dict[str, Any]]] = deque(maxlen=self.LIMIT)
        self.dropped = 0

    def add(self, work: Callable[..., None], body: dict[str, Any]) -> None:
        with self._lock:
            if len(self._items) == self.LIMIT:
                self.dropped += 1
            self._items.append((work, body))

    def take(self) -> list[tuple[Callable[..., None], dict[str, Any]]]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            return items

    def put_back(self, items: list[tuple[Callable[..., None], dict[str, Any]]]) -> None:
        """Items taken but not done go back in front, in their order."""
        with self._lock:
            self._items.extendleft(reversed(items))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


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
    deferred: Deferred = field(default_factory=Deferred)
    group_commit: GroupCommit = field(init=False, repr=False)
    messages: MessageReader = field(init=False, repr=False)
    within: Within = field(default_factory=Within, repr=False)  # look-ups that acks wait for, briefly

    def __post_init__(self) -> None:
        self.group_commit = GroupCommit(self.sessions)
        self.messages = MessageReader(self.client)

    def __deepcopy__(self, memo: dict[int, Any]) -> Deps:
        """Shared services are not copied (Bolt deep-copies the context for lazy listeners)."""
        return self

    def incident_id_of_channel(self, channel: str | None, *, within: float | None = None) -> int | None:
        """The incident of a channel, cached: a channel never changes incident, and a channel found to have
        none is asked again after a few seconds (another replica may just have declared in it).

        `within`: wait at most that many seconds for the database (acks), None if it has not answered by then."""
        if not channel:
            return None
        cache: dict[str, tuple[int | None, float]] = self.extra.setdefault("incident_of_channel", {})
        hit = cache.get(channel)
        if hit is not None and (hit[0] is not None or hit[1] > time.monotonic()):
            return hit[0]
        if within is not None:
            return self.within.call(("incident_of_channel", channel), lambda: self.incident_id_of_channel(channel),
                                    within)  # fmt: skip
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
