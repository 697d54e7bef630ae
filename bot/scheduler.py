"""APScheduler jobs: the reminder tick (SPEC §7), the morning digest and action items due tomorrow.

No job is kept per incident: the tick reads `next_update_due` from the database and claims what is due with
one atomic statement, so that several replicas, or a restart, never send a reminder twice."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from slack_sdk.errors import SlackApiError

from bot.jira import JiraSync
from bot.outbox import OutboxWorker
from bot.settings import Settings
from core import channel_life, reminders, store
from core.channel_life import ArchiveClaim
from core.outbox import DeliveryError
from core.reminders import Claim
from handlers import alerts, blockkit, flows
from handlers.deps import Deps
from handlers.posting import PostKey, post_once
from handlers.reminders import escalation_mention, reminder_message
from handlers.reply import retry_deferred

log = logging.getLogger("sitrep.scheduler")

# A bot that was down at digest time posts the day's digest on start within this long after it.
DIGEST_CATCH_UP = timedelta(hours=2)
DIGEST_LIMIT = 50  # incidents listed in the digest; the rest are counted
JIRA_SYNC_INTERVAL = 600  # seconds between reads of the action items' Jira issues (SPEC §13.4)
OUTBOX_INTERVAL = 2.0  # seconds between outbox delivery runs (SPEC §13.1): pages should leave at once
RESUME_EVERY = timedelta(minutes=1)  # how often declarations stopped part-way are taken up again
STALLED_AFTER = timedelta(minutes=5)  # a declaration silent this long lost its process (one in flight is left)


class Scheduler:
    """The bot's APScheduler jobs. Nothing is stored per incident: `tick` finds what is due in the database.

    `tick(now)`, `archive(now)`, `digest(now)`, `remind_action_items(now)` and `catch_up(now)` are the jobs
    themselves, for tests to call with a frozen clock; `start()` runs them on APScheduler, `stop()` ends them
    (waiting for a running tick). Several replicas may run the same jobs: each claim is atomic, so each thing is
    sent once."""

    def __init__(
        self,
        deps: Deps,
        settings: Settings,
        *,
        posters: int = 16,
        outbox: OutboxWorker | None = None,
        jira_sync: JiraSync | None = None,
    ) -> None:
        self.deps = deps
        self.settings = settings
        self.outbox = outbox
        self.jira_sync = jira_sync
        self._size = posters
        self._posters = ThreadPoolExecutor(max_workers=posters, thread_name_prefix="sitrep-remind")
        self._stopped = False
        self._aps: BackgroundScheduler | None = None

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._aps is not None:
            return
        if self._stopped:
            self._posters = ThreadPoolExecutor(max_workers=self._size, thread_name_prefix="sitrep-remind")
            self._stopped = False
        settings = self.settings
        hour, minute = (int(part) for part in settings.digest_time.split(":"))
        aps = BackgroundScheduler(timezone=UTC)
        every = IntervalTrigger(seconds=settings.tick.total_seconds())
        aps.add_job(self._first_tick(), every, id="tick", name="tick", max_instances=1, coalesce=True,
                    next_run_time=datetime.now(UTC))  # fmt: skip
        if settings.archive_after is not None:
            aps.add_job(self._safe(self.archive), every, id="archive", name="archive", max_instances=1, coalesce=True)
        aps.add_job(self._safe(self.alert_messages), every, id="alerts", name="alerts", max_instances=1, coalesce=True)
        aps.add_job(self._safe(self.retry_deferred), every, id="retry", name="retry", max_instances=1, coalesce=True)
        aps.add_job(self._safe(self.resume_declarations), IntervalTrigger(seconds=RESUME_EVERY.total_seconds()),
                    id="resume", name="resume", max_instances=1, coalesce=True)  # fmt: skip
        daily = CronTrigger(hour=hour, minute=minute, timezone=settings.zone)
        for job, job_id in ((self.digest, "digest"), (self.remind_action_items, "items")):
            aps.add_job(self._safe(job), daily, id=job_id, name=job_id, max_instances=1, coalesce=True,
                        misfire_grace_time=int(DIGEST_CATCH_UP.total_seconds()))  # fmt: skip
        if self.outbox is not None:
            aps.add_job(self._safe(self.outbox.deliver), IntervalTrigger(seconds=OUTBOX_INTERVAL), id="outbox",
                        name="outbox", max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))  # fmt: skip
        if self.jira_sync is not None:
            aps.add_job(self._safe(self.sync_jira), IntervalTrigger(seconds=JIRA_SYNC_INTERVAL), id="jira_sync",
                        name="jira_sync", max_instances=1, coalesce=True)  # fmt: skip
        aps.start()
        self._aps = aps

    def stop(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=True)
            self._aps = None
        if not self._stopped:
            self._posters.shutdown(wait=True)
            if self.outbox is not None:
                self.outbox.close()
            self._stopped = True

    def _first_tick(self) -> object:
        """The tick job; its first run catches up on the day's cron runs first."""
        tick, catch_up, pending = self._safe(self.tick), self._safe(self.catch_up), [True]

        def run() -> None:
            if pending:
                pending.clear()
                catch_up()  # type: ignore[operator]
            tick()  # type: ignore[operator]

        run.__name__ = "tick"
        return run

    def _safe(self, job: object) -> object:
        def run() -> None:
            try:
                job()  # type: ignore[operator]
            except Exception:  # noqa: BLE001 - a failed run is logged; the next one tries again
                log.exception("scheduled job %s failed", getattr(job, "__name__", job))

        run.__name__ = getattr(job, "__name__", "job")
        return run

    # --- jobs ---------------------------------------------------------------------------------------

    def alert_messages(self) -> int:
        """Triage messages that fell behind their alert group (Slack failed) are brought up to date."""
        return alerts.catch_up(self.deps)

    def tick(self, now: datetime | None = None) -> int:
        """Post every reminder that is due; returns how many were posted (or found posted by an earlier attempt).

        Each reminder is a lease (core.reminders): claimed, posted, then confirmed, so a crash between claim and
        post leaves it due for the next tick once the lease ends, and a retry finds a post that did happen."""
        now = now or self.deps.now()
        settings = self.settings
        with self.deps.tx() as session:
            claims = reminders.claim_due(session=session, now=now, cadence=settings.cadence)
            comms = reminders.comms_leads(session=session, incident_ids=[c.incident_id for c in claims])
        posted = list(self._posters.map(lambda claim: self._post(claim, comms.get(claim.incident_id), now), claims))
        done = [claim for claim, ok in zip(claims, posted, strict=True) if ok]
        with self.deps.tx() as session:
            reminders.confirm(session=session, claims=done, now=now, cadence=settings.cadence)
        return len(done)

    def _post(self, claim: Claim, comms: str | None, now: datetime) -> bool:
        settings = self.settings
        target = settings.escalation_targets.get(claim.severity)
        escalation = escalation_mention(target) if target and claim.escalate(settings.escalate_after) else None
        try:
            text, blocks = reminder_message(claim, comms=comms, escalation=escalation)
            key = PostKey("reminder", claim.period)
            _ts, new = post_once(
                self.deps, claim.channel_id or "", key, retry=claim.attempt > 1, text=text, blocks=blocks
            )
        except Exception:  # noqa: BLE001 - the lease ends, the next tick tries again
            log.exception(
                "reminder for %s could not be posted in %s; it stays due",
                claim.key,
                claim.channel_id,
                extra={"incident": claim.key, "channel": claim.channel_id},
            )
            self._release(claim, now)
            if self.deps.metrics is not None:
                self.deps.metrics.reminder_missed(claim.severity.value)
            return False
        if new and self.deps.metrics is not None:
            self.deps.metrics.reminder_sent(claim.severity.value, escalated=escalation is not None)
        return True

    def retry_deferred(self) -> int:
        """Event work held up by a database outage runs again once the database is back (SPEC §15)."""
        return retry_deferred(self.deps)

    def resume_declarations(self) -> list[str]:
        """Finish the declarations that stopped part-way, a failed step (e.g. an invite) or a process that died,
        without waiting for a restart (SPEC §5, §15). Returns their keys."""
        return flows.resume_declarations(self.deps, stale=STALLED_AFTER)

    def _release(self, claim: Claim, now: datetime) -> None:
        try:
            with self.deps.tx() as session:
                if not reminders.release(session=session, claim=claim, now=now):
                    log.info("reminder for %s not put back: the incident moved meanwhile", claim.key)
        except Exception:  # noqa: BLE001 - nothing more to do than say so; the lease runs out by itself
            log.exception(
                "claim of the reminder for %s could not be put back", claim.key, extra={"incident": claim.key}
            )

    def archive(self, now: datetime | None = None) -> int:
        """Archive the channels of incidents resolved SITREP_ARCHIVE_AFTER ago or more (SPEC §14), each once, with
        a last message saying so; those whose time came while the bot was down go on the first run after start.
        Returns how many were archived."""
        after = self.settings.archive_after
        if after is None:
            return 0
        now = now or self.deps.now()
        with self.deps.tx() as session:
            claims = channel_life.claim_archives(session=session, now=now, after=after)
        return sum(1 for claim in claims if self._archive(claim, after))

    def _archive(self, claim: ArchiveClaim, after: timedelta) -> bool:
        client = self.deps.client
        extra = {"incident": claim.key, "channel": claim.channel_id}
        try:
            if claim.notice_ts is None:  # an earlier attempt that posted it and then failed to archive did not
                text = blockkit.mrkdwn("archived", key=claim.key, resolved_at=claim.resolved_at, after=after,
                                       tz=self.settings.timezone)  # fmt: skip
                ts = client.chat_postMessage(channel=claim.channel_id, text=text)["ts"]
                with self.deps.tx() as session:
                    channel_life.archive_notice_posted(session=session, claim=claim, ts=str(ts))
            client.conversations_archive(channel=claim.channel_id)
        except Exception as exc:  # noqa: BLE001 - unless Slack says it cannot be, the next run tries again
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else None
            if error in ("is_archived", "already_archived"):  # someone archived it already
                return True
            if error in ("channel_not_found", "not_in_channel"):  # the bot was removed: nothing it can do
                log.warning("channel of %s not archived: %s", claim.key, error, extra=extra)
                return False
            log.exception("channel of %s could not be archived; tried again on the next run", claim.key, extra=extra)
            self._release_archive(claim)
            return False
        return True

    def _release_archive(self, claim: ArchiveClaim) -> None:
        try:
            with self.deps.tx() as session:
                channel_life.release_archive(session=session, claim=claim)
        except Exception:  # noqa: BLE001 - logged; the channel then stays unarchived
            log.exception("claim of the archive of %s could not be put back", claim.key, extra={"incident": claim.key})

    def digest(self, now: datetime | None = None) -> bool:
        """The morning digest of open, non-private incidents to the announce channel (once a day)."""
        now = now or self.deps.now()
        channel = self.settings.announce_channel
        if not channel:
            return False
        day = now.astimezone(self.settings.zone).date().isoformat()
        with self.deps.tx() as session:
            if not store.claim_job_run(session=session, name="digest", run_key=day, now=now):
                return False
            incidents = [i for i in store.open_incidents(session=session) if not i.private]
        if not incidents:
            return True
        incidents.sort(key=lambda incident: (incident.severity.level, incident.declared_at))  # most severe first
        shown, more = incidents[:DIGEST_LIMIT], len(incidents) - DIGEST_LIMIT
        try:
            text = blockkit.mrkdwn("digest", incidents=shown, more=more, now=now)
            self.deps.client.chat_postMessage(channel=channel, text=text)
        except Exception:  # noqa: BLE001 - logged; the day's claim goes back so that a later run may post it
            log.exception("the digest of %s could not be posted in %s", day, channel, extra={"channel": channel})
            with self.deps.tx() as session:
                reminders.release_job_run(session=session, name="digest", run_key=day)
            return False
        return True

    def catch_up(self, now: datetime | None = None) -> None:
        """On start: the day's cron runs that a bot down at their time missed. Owners of items due tomorrow
        are told whenever the bot starts after the digest time; the digest is posted only if not more than
        DIGEST_CATCH_UP late (a morning digest in the evening helps nobody). Both claim their runs, so what a
        replica sent already is not sent again."""
        now = now or self.deps.now()
        settings = self.settings
        hour, minute = (int(part) for part in settings.digest_time.split(":"))
        local = now.astimezone(settings.zone)
        digest_at = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if local < digest_at:
            return
        self.remind_action_items(now)
        if local - digest_at <= DIGEST_CATCH_UP:
            self.digest(now)

    def sync_jira(self) -> list[str]:
        """Action items done in Jira become done here (SPEC §13.4); a failed read is tried at the next run."""
        if self.jira_sync is None:
            return []
        try:
            done = self.jira_sync.run()
        except DeliveryError as error:
            log.warning("Jira sync failed, tried again in %s minutes: %s", JIRA_SYNC_INTERVAL // 60, error)
            return []
        if done:
            log.info("Jira sync: %s action items done", len(done))
        return done

    def remind_action_items(self, now: datetime | None = None) -> int:
        """A direct message to the owner of each open action item due tomorrow, once per item per day."""
        now = now or self.deps.now()
        today = now.astimezone(self.settings.zone).date()
        with self.deps.tx() as session:
            items = reminders.claim_items_due(session=session, on=today + timedelta(days=1), today=today)
        told = 0
        for item in items:  # one owner who cannot be told does not keep the others from being told
            try:
                hidden = item.private and not (item.channel_id and flows.is_member(self.deps, item.channel_id,
                                                                                    item.owner_id))  # fmt: skip
                text = blockkit.mrkdwn("item_due", item=item, hidden=hidden)
                self.deps.client.chat_postMessage(channel=item.owner_id, text=text)
                told += 1
            except Exception:  # noqa: BLE001 - logged; the item's claim goes back for a later run
                log.exception(
                    "owner %s of action item %s of %s could not be told",
                    item.owner_id,
                    item.item_id,
                    item.key,
                    extra={"incident": item.key},
                )
                with self.deps.tx() as session:
                    reminders.release_item(session=session, item_id=item.item_id, today=today)
        return told
