"""The outbox's delivery worker (SPEC §13.1): claims due rows (core.outbox), hands each to the sender of its
integration, and records the outcome. `deliver(now)` is the job itself, run by the scheduler on its own short
interval and called directly by tests with a frozen clock. Exactly once across restarts and replicas comes from
the claim (a lease under one atomic statement) and from the remotes' idempotency keys for a resend after a crash."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Protocol

from bot.atlassian import Pace
from core import outbox
from core.outbox import Delivery, DeliveryError, Sent
from handlers import blockkit
from handlers.deps import Deps

log = logging.getLogger("sitrep.outbox")
RUN_BUDGET = 10.0  # seconds a run keeps claiming: a row freed by its predecessor's delivery goes out in the same run
PACED_WAIT = 1.0  # seconds a run waits for a paced integration's next turn rather than ending


class Sender(Protocol):
    def send(self, delivery: Delivery, now: datetime | None = None) -> Sent: ...


class OutboxWorker:
    def __init__(
        self,
        deps: Deps,
        senders: Mapping[str, Sender],
        *,
        give_up: timedelta,
        rng: random.Random | None = None,
        batch: int = 20,
        paces: Mapping[str, Pace] | None = None,
        threads: int = 8,
    ) -> None:
        self.deps = deps
        self.senders = dict(senders)
        self.give_up_after = give_up
        self.rng = rng or random.Random()
        self.batch = batch
        self.paces = dict(paces or {})
        """Integrations with a request rate (Statuspage: one a second): one of their rows at a time, when due."""
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="sitrep-outbox") if threads > 1 else None

    def deliver(self, now: datetime | None = None) -> int:
        """Send every row that is due; returns how many the remotes accepted. The rows claimed together belong
        to different incidents or integrations (core.outbox.claim), so they are sent side by side."""
        now = now or self.deps.now()
        accepted = 0
        ends = time.monotonic() + RUN_BUDGET
        while time.monotonic() < ends:
            claimed = self._claim(now)
            if not claimed:
                wait = min((pace.free_in() for pace in self.paces.values()), default=0.0)
                if 0 < wait <= PACED_WAIT:  # a paced integration's next turn is close: take it in this run
                    time.sleep(wait)
                    continue
                break
            if self._pool is None or len(claimed) == 1:
                accepted += sum(1 for delivery in claimed if self._one(delivery, now))
            else:
                accepted += sum(self._pool.map(lambda delivery: self._one(delivery, now), claimed))
        return accepted

    def _claim(self, now: datetime) -> list[Delivery]:
        with self.deps.tx() as session:
            claimed = outbox.claim(session=session, now=now, limit=self.batch, exclude=tuple(self.paces))
            for name, pace in self.paces.items():
                if pace.free_in() == 0:
                    claimed += outbox.claim(session=session, now=now, limit=1, only=(name,))
        return claimed

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _one(self, delivery: Delivery, now: datetime) -> bool:
        about = {"incident": delivery.incident_key, "integration": delivery.integration,
                 "operation": delivery.operation, "outbox_id": delivery.id, "attempt": delivery.attempts}  # fmt: skip
        sender = self.senders.get(delivery.integration)
        try:
            if sender is None:
                raise DeliveryError(f"{outbox.NAMES.get(delivery.integration, delivery.integration)} is not configured")
            sent = sender.send(delivery, now)
        except DeliveryError as error:
            self._failed(delivery, now, str(error), error, about)
            return False
        except Exception as error:  # noqa: BLE001 - a sender's bug is a failed attempt, retried like any other
            log.exception("outbox sender failed", extra=about)
            self._failed(delivery, now, f"internal error ({type(error).__name__})", DeliveryError(str(error)), about)
            return False
        with self.deps.tx() as session:
            kept = outbox.delivered(session=session, delivery=delivery, now=now, result=sent.result)
        log.info("outbox row delivered", extra=about)
        if kept and sent.notice:
            self._tell(delivery, sent.notice)
        return True

    def _failed(
        self, delivery: Delivery, now: datetime, reason: str, error: DeliveryError, about: dict[str, object]
    ) -> None:
        metrics = self.deps.metrics
        if metrics is not None:
            metrics.outbox_failure(delivery.integration)
        expired = now - delivery.created_at >= self.give_up_after
        if error.permanent or expired:
            with self.deps.tx() as session:
                first = outbox.give_up(session=session, delivery=delivery, now=now, error=reason)
            log.error("outbox row given up: %s", reason, extra=about)
            if first:
                name = outbox.NAMES.get(delivery.integration, delivery.integration)
                self._tell(delivery, blockkit.mrkdwn("outbox_failed", delivery=delivery, name=name, error=reason,
                                                     gave_up=expired))  # fmt: skip
            return
        delay = error.retry_after if error.retry_after is not None else outbox.backoff(
            delivery.attempts, jitter=self.rng.random())  # fmt: skip
        with self.deps.tx() as session:
            outbox.retry_later(session=session, delivery=delivery, now=now, error=reason, delay=delay)
        log.warning("outbox row failed, retried in %ss: %s", round(delay.total_seconds(), 1), reason, extra=about)

    def _tell(self, delivery: Delivery, text: str) -> None:
        if not delivery.channel_id:
            log.info("outbox notice not posted: the incident has no channel", extra={"incident": delivery.incident_key})
            return
        try:
            self.deps.client.chat_postMessage(channel=delivery.channel_id, text=text)
        except Exception:  # noqa: BLE001 - the delivery stands; only the notice is missing
            log.exception("outbox notice could not be posted", extra={"incident": delivery.incident_key})
