"""The outbox's delivery worker (SPEC §13.1): claims due rows (core.outbox), hands each to the sender of its
integration, and records the outcome. `deliver(now)` is the job itself, run by the scheduler on its own short
interval and called directly by tests with a frozen clock. Exactly once across restarts and replicas comes from
the claim (a lease under one atomic statement) and from the remotes' idempotency keys for a resend after a crash."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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
        threads: int = 16,
    ) -> None:
        self.deps = deps
        self.senders = dict(senders)
        self.give_up_after = give_up
        self.rng = rng or random.Random()
        self.batch = batch
        self.paces = dict(paces or {})
        """Integrations with a request rate (Statuspage: one a second): one of their rows at a time, when due."""
        self._threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="sitrep-outbox") if threads > 1 else None

    def deliver(self, now: datetime | None = None) -> int:
        """Send every row that is due; returns how many the remotes accepted.

        With a pool, up to `threads` rows are in flight at once, and free places are claimed again as soon as
        rows come back: rows in flight belong to different incidents or integrations, since a row is not claimed
        while an older row of its incident and integration is pending (core.outbox.claim)."""
        now = now or self.deps.now()
        accepted = 0
        with self.deps.read() as session:  # a read first: an idle worker (every 2 s) takes no write lock
            if not outbox.any_due(session=session, now=now):
                return 0
        ends = time.monotonic() + RUN_BUDGET
        in_flight: dict[Future[bool], str] = {}
        while True:
            room = self.batch if self._pool is None else self._threads - len(in_flight)
            # a claim reads the whole queue's order: made when half the places are free, not for each one
            worth = room > 0 and (not in_flight or room * 2 >= self._threads)
            busy = set(in_flight.values())
            claimed = self._claim(now, room, busy) if worth and time.monotonic() < ends else []
            if self._pool is None:
                accepted += sum(1 for delivery in claimed if self._one(delivery, now))
            else:
                in_flight |= {self._pool.submit(self._one, d, now): d.integration for d in claimed}
            if in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                accepted += sum(1 for future in done if future.result())
                in_flight = {future: name for future, name in in_flight.items() if future not in done}
                continue
            if claimed:
                continue
            turn = min((pace.free_in() for pace in self.paces.values()), default=0.0)
            if 0 < turn <= PACED_WAIT and time.monotonic() < ends:  # a paced integration's turn is close: take it
                time.sleep(turn)
                continue
            return accepted

    def _claim(self, now: datetime, room: int, busy: set[str]) -> list[Delivery]:
        """Up to `room` due rows; of a paced integration one, when its turn has come and none of its rows is
        in flight (`busy`)."""
        with self.deps.tx() as session:
            claimed = outbox.claim(session=session, now=now, limit=room, exclude=tuple(self.paces))
            for name, pace in self.paces.items():
                if name not in busy and pace.free_in() == 0 and len(claimed) < room:
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
