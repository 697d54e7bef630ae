"""The app factory: one Bolt App, one WebClient, one database, wired to the handlers. Nothing at import."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import Engine

from bot.jira import JiraApi, JiraSender, JiraSync
from bot.observability import Metrics
from bot.outbox import OutboxWorker, Sender
from bot.pagerduty import EventsSender, PagerDutyRest
from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.slack_client import ObservedWebClient, make_client, make_webhook
from bot.statuspage import StatuspageSender
from core import jira, paging, statuspage
from core.clock import Clock, SystemClock
from core.db import make_engine, session_factory, upgrade
from core.jira import JiraRules
from core.paging import Paging
from handlers import actions, alerts, commands, events, home, pagerduty, reminders, shortcuts, timeline_view, views
from handlers.deps import Config, Deps
from handlers.reply import handle_error

log = logging.getLogger("sitrep.app")


class WorkPool(ThreadPoolExecutor):
    """The listeners' thread pool, counting work in flight so that shutdown and tests can wait for idle."""

    def __init__(self, workers: int) -> None:
        super().__init__(max_workers=workers, thread_name_prefix="sitrep-work")
        self._idle = threading.Condition()
        self._in_flight = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._idle:
            self._in_flight += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def submit_later(self, delay: float, fn: Callable[..., Any], /, *args: Any) -> None:
        """Submit `fn(*args)` in `delay` seconds; in flight from now on, so that `wait_idle` waits for it too."""
        with self._idle:
            self._in_flight += 1

        def fire() -> None:
            try:
                self.submit(fn, *args)
            except RuntimeError:  # shut down meanwhile: what was left is caught up by the next process's scheduler
                log.warning("work scheduled for later was dropped at shutdown", extra={"work": fn.__name__})
            finally:
                self._done(None)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        timer.start()

    def _done(self, _future: Future[Any] | None) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no listener work is queued or running (work may submit more work)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)


@dataclass
class Sitrep:
    """Everything the process runs: the Bolt app and what its listeners share."""

    bolt: App
    deps: Deps
    settings: Settings
    engine: Engine
    executor: WorkPool
    scheduler: Scheduler
    outbox: OutboxWorker

    def close(self) -> None:
        self.scheduler.stop()
        self.executor.shutdown(wait=True, cancel_futures=False)
        self.engine.dispose()


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    engine: Engine | None = None,
    client: WebClient | None = None,
    migrate: bool = True,
    workers: int = 16,
    identity: dict[str, Any] | None = None,
) -> Sitrep:
    """`identity`: auth.test's answer when the caller has it already (`sitrep run` waits for Slack to give it)."""
    engine = engine or make_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    client = client or make_client(settings)
    metrics = Metrics()
    if isinstance(client, ObservedWebClient):
        client.on_error = metrics.slack_error
    executor = WorkPool(workers)
    identity = identity if identity is not None else _identity(client)
    authorized = AuthorizeResult(
        enterprise_id=identity.get("enterprise_id"),
        team_id=identity.get("team_id"),
        bot_user_id=identity.get("user_id"),
        bot_id=identity.get("bot_id"),
        bot_token=client.token,
    )
    deps = Deps(
        config=handler_config(settings),
        sessions=session_factory(engine),
        client=client,
        webhook=partial(make_webhook, slack_api_url=settings.slack_api_url),
        clock=clock or SystemClock(),
        bot_user_id=identity.get("user_id"),
        executor=executor,
        metrics=metrics,
        team_url=identity.get("url"),
        oncall=pagerduty_rest(settings),
    )
    bolt_logger = logging.getLogger("sitrep.bolt")
    bolt_logger.addFilter(_NoTokenSkippedWarning())
    bolt = App(
        # Bolt's own client makes no call: listeners use deps.client, and `authorize` hands Bolt the identity that
        # sitrep's one auth.test found (with a client holding a token, Bolt would call auth.test again itself).
        client=WebClient(base_url=client.base_url),
        authorize=lambda **_: authorized,
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None,
        # Ack first, work after: each listener's ack function answers Slack, its lazy function does the work.
        process_before_response=True,
        token_verification_enabled=False,
        # Signatures are checked where HTTP requests enter (bot/server.WsgiApp), before their body is even read;
        # Bolt gets the body parsed. Socket Mode's envelopes come over the app-token connection.
        request_verification_enabled=False,
        listener_executor=executor,
        # Middleware for features sitrep does not use (workflow functions, assistant threads), which would
        # otherwise look at every request.
        attaching_function_token_enabled=False,
        attaching_conversation_kwargs_enabled=False,
        logger=bolt_logger,
    )
    metrics.watch_database(deps.sessions)
    bolt.use(InjectDeps(deps))

    @bolt.error
    def _on_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
        """A listener or middleware failed on a verified request: logged, the person told; Slack gets a 200 (it
        retries a 5xx and may turn the subscription off), also for a payload of a shape nobody expected."""
        try:
            handle_error(deps, error, body)
        except Exception:  # noqa: BLE001 - e.g. a body too malformed to say whom to answer
            log.exception("a request failed, and so did its error handling", extra={"error": type(error).__name__})
        return BoltResponse(status=200, body="")

    # Each surface registers its listeners. Bolt tries them in this order for every request, so the busiest
    # (events: every message and reaction) come first, and the catch-all for other events last.
    for module in (events, home, commands, views, actions, alerts, shortcuts, timeline_view, reminders, pagerduty):
        module.register(bolt)
    bolt.event(re.compile(".*"))(events.ignore)
    senders = outbox_senders(settings, deps)
    sender = senders.get(statuspage.INTEGRATION)
    deps.status_page = sender if isinstance(sender, StatuspageSender) else None
    paces = {name: sender.pace for name, sender in senders.items() if isinstance(sender, StatuspageSender)}
    worker = OutboxWorker(deps, senders, give_up=settings.outbox_give_up, paces=paces)
    jira_sync = JiraSync(jira_api(settings), tx=deps.tx) if settings.jira_on else None
    return Sitrep(
        bolt=bolt,
        deps=deps,
        settings=settings,
        engine=engine,
        executor=executor,
        scheduler=Scheduler(deps, settings, outbox=worker, jira_sync=jira_sync),
        outbox=worker,
    )


def outbox_senders(settings: Settings, deps: Deps) -> dict[str, Sender]:
    """One sender per configured integration (SPEC §13): rows of others wait, and give up in time."""
    senders: dict[str, Sender] = {}
    if settings.pagerduty_routing_key is not None:
        senders[paging.INTEGRATION] = EventsSender(
            routing_key=settings.pagerduty_routing_key, url=settings.pagerduty_events_url, team_url=deps.team_url
        )
    if settings.jira_on:
        senders[jira.INTEGRATION] = JiraSender(
            jira_api(settings), project=settings.jira_project or "", issue_type=settings.jira_issue_type,
            action_issue_type=settings.jira_action_issue_type, tx=deps.tx, slack=deps.client, team_url=deps.team_url,
        )  # fmt: skip
    if settings.statuspage_on and settings.statuspage_api_key is not None:
        senders[statuspage.INTEGRATION] = StatuspageSender(
            api_key=settings.statuspage_api_key, page_id=settings.statuspage_page_id or "",
            url=settings.statuspage_api_url, tx=deps.tx,
        )  # fmt: skip
    return senders


def jira_api(settings: Settings) -> JiraApi:
    return JiraApi(url=settings.jira_url or "", email=settings.jira_email, token=settings.jira_api_token,
                   pat=settings.jira_pat)  # fmt: skip


def pagerduty_rest(settings: Settings) -> PagerDutyRest | None:
    if settings.pagerduty_api_token is None:
        return None
    return PagerDutyRest(token=settings.pagerduty_api_token, url=settings.pagerduty_api_url,
                         escalation_policy=settings.pagerduty_escalation_policy)  # fmt: skip


def handler_config(settings: Settings) -> Config:
    """What the listeners read of the settings."""
    return Config(
        cadence=settings.cadence,
        default_severity=settings.default_severity,
        channel_prefix=settings.channel_prefix,
        timeline_emoji=tuple(settings.timeline_emoji),
        announce_channel=settings.announce_channel,
        timezone=settings.timezone,
        bridge_url=settings.bridge_url,
        triage_channel=settings.triage_channel,
        alert_severity=settings.alert_severity,
        paging=Paging(enabled=settings.pagerduty_routing_key is not None, severities=settings.page_severities),
        escalation_policy=settings.pagerduty_escalation_policy,
        jira=JiraRules(enabled=settings.jira_on, severities=settings.jira_severities,
                       priorities=settings.jira_priorities, done_transition=settings.jira_done_transition),
        statuspage=settings.statuspage_on,
    )


class InjectDeps(Middleware):
    """Puts the shared services into every listener's context (`context["deps"]`). A Middleware subclass, not a
    function, so that Bolt calls it directly instead of building its keyword arguments on every request."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def process(self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]) -> BoltResponse:  # noqa: A002
        req.context["deps"] = self.deps
        return next()


class _NoTokenSkippedWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment by itself and, given a client too, warns at every start
    that the token will be unused. sitrep means it: the token is used by its own client (deps.client)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def _identity(client: WebClient) -> dict[str, Any]:
    """Who the bot is (auth.test): its user id, and the workspace URL that permalinks start with."""
    try:
        return dict(client.auth_test().data)  # type: ignore[arg-type]
    except SlackApiError as exc:
        log.error("auth.test failed: %s", exc.response.get("error"))
        raise
