"""POST /hooks/pagerduty (SPEC §13.2): PagerDuty's v3 webhooks. The signature is checked on the raw body before
anything else; a request without one valid signature is refused with 401 and does nothing. Each event id is
processed once (handlers.pagerduty.handle_webhook claims it in the transaction of its effect)."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from bot.app import Sitrep, pagerduty_rest
from bot.pagerduty import signature_valid
from core.errors import InvalidInput
from core.paging import TIMELINE_EVENTS, WebhookEvent
from handlers.pagerduty import handle_webhook

log = logging.getLogger("sitrep.hooks.pagerduty")
MAX_BODY = 1024 * 1024
StartResponse = Callable[..., Any]


def _answer(start_response: StartResponse, status: str, text: str) -> Iterable[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [text.encode() + b"\n"]


class PagerDutyHook:
    """The WSGI endpoint; off (404) while PAGERDUTY_WEBHOOK_SECRET is unset."""

    def __init__(self, sitrep: Sitrep) -> None:
        self.sitrep = sitrep
        secret = sitrep.settings.pagerduty_webhook_secret
        self._secret = secret.get_secret_value() if secret is not None else None
        self.rest = pagerduty_rest(sitrep.settings)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self._secret is None:
            return _answer(start_response, "404 Not Found", "PagerDuty webhooks are off (PAGERDUTY_WEBHOOK_SECRET)")
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = -1
        if size < 0 or size > MAX_BODY:
            return _answer(start_response, "413 Content Too Large", "body too large")
        body = environ["wsgi.input"].read(size) if size else b""
        if not signature_valid(self._secret, body, environ.get("HTTP_X_PAGERDUTY_SIGNATURE")):
            log.warning("PagerDuty webhook refused: no valid signature")
            return _answer(start_response, "401 Unauthorized", "invalid signature")
        try:
            event = WebhookEvent.parse(json.loads(body or b"null"))
        except (ValueError, InvalidInput) as error:
            # Signed but not understood: answered 2xx so that PagerDuty does not retry (or disable) the subscription.
            log.warning("PagerDuty webhook of an unexpected shape ignored: %s", error)
            return _answer(start_response, "202 Accepted", "ignored")
        about = {"event_id": event.id, "event_type": event.event_type, "pagerduty_incident": event.incident_id}
        try:
            needs_key = event.event_type in TIMELINE_EVENTS and event.incident_key is None and event.incident_id
            if needs_key and self.rest is not None and event.incident_id:
                event = dataclasses.replace(event, incident_key=self.rest.incident_key(event.incident_id))
            outcome = handle_webhook(self.sitrep.deps, event)
        except Exception:  # noqa: BLE001 - logged; PagerDuty retries a 5xx, and the event id makes that safe
            log.exception("PagerDuty webhook failed", extra=about)
            return _answer(start_response, "500 Internal Server Error", "sorry, this failed on our side")
        log.info("PagerDuty webhook: %s", outcome, extra=about)
        return _answer(start_response, "202 Accepted", outcome)
