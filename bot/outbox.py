"""The outbox's delivery worker (SPEC §13.1): claims due rows (core.outbox), hands each to the sender of its
integration, and records the outcome. `deliver(now)` is the job itself, run by the scheduler on its own short
interval and called directly by tests with a frozen clock. Exactly once across restarts and replicas comes from
the claim (a lease under one atomic statement) and from the remotes' idempotency keys for a resend after a crash."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol

from core import outbox
from core.outbox import Delivery, DeliveryError, Sent
from handlers import blockkit
from handlers.deps import Deps

log = logging.getLogger("sitrep.outbox")
ROUNDS = 20  # claims per run: a row freed by its predecessor's delivery goes out in the same run


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
    ) -> None:
        self.deps = deps
        self.senders = dict(senders)
        self.give_up_after = give_up
        self.rng = rng or random.Random()
        self.batch = batch

    def deliver(self, now: datetime | None = None) -> int:
        """Send every row that is due; returns how many the remotes accepted."""
        now = now or self.deps.now()
        accepted = 0
        for _ in range(ROUNDS):
            with self.deps.tx() as session:
                claimed = outbox.claim(session=session, now=now, limit=self.batch)
            if not claimed:
                break
            accepted += sum(1 for delivery in claimed if self._one(delivery, now))
        return accepted

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
