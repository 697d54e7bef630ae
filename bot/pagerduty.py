"""PagerDuty over HTTP (SPEC §13.2): the outbox's Events v2 sender, the on-call look-up (REST API, through
PagerDuty's own client `pagerduty`), the incident look-up for webhooks, and the v3 webhook signature check.

Events v2 calls go out with one plain POST each, not through `pagerduty.EventsApiV2Client`: that client retries in
the calling thread (429 without limit and without reading Retry-After, 5xx several times, with sleeps), while
here the outbox owns retries, backoff, Retry-After and giving up, and must never block its worker for minutes."""

from __future__ import annotations

import copy
import hashlib
import hmac
import logging
from datetime import UTC, datetime
from typing import Any

import httpx2
from pagerduty import Error as PagerDutyError
from pagerduty import RestApiV2Client
from pydantic import SecretStr

from bot.remote import refusal_words, retry_after
from core.outbox import Delivery, DeliveryError, Sent
from core.paging import RESOLVE, TRIGGER, OnCallPerson, people_on_call

log = logging.getLogger("sitrep.pagerduty")
TIMEOUT = 10.0


def channel_url(team_url: str | None, channel_id: str) -> str:
    base = (team_url or "https://slack.com/").rstrip("/")
    return f"{base}/archives/{channel_id}"


class EventsSender:
    """Sends the outbox's `pagerduty` rows to the Events API v2. The routing key is added here, at send time:
    it is never stored in the outbox, nor logged (the process's log scrubber knows it too)."""

    def __init__(
        self,
        *,
        routing_key: SecretStr,
        url: str,
        team_url: str | None = None,
        timeout: float = TIMEOUT,
        http: httpx2.Client | None = None,
    ) -> None:
        self._routing_key = routing_key
        self.url = url
        self.team_url = team_url
        self.http = http or httpx2.Client(timeout=timeout, follow_redirects=False)

    def event(self, delivery: Delivery) -> dict[str, Any]:
        event: dict[str, Any] = copy.deepcopy(delivery.payload)
        if delivery.operation == TRIGGER and delivery.channel_id:
            name = f"#{delivery.channel_name}" if delivery.channel_name else delivery.channel_id
            event["links"] = [{"href": channel_url(self.team_url, delivery.channel_id), "text": f"Slack {name}"}]
            event.setdefault("payload", {}).setdefault("custom_details", {})["channel"] = name
        elif delivery.operation == TRIGGER:
            event.get("payload", {}).get("custom_details", {}).pop("channel", None)
        event["routing_key"] = self._routing_key.get_secret_value()
        return event

    def send(self, delivery: Delivery, now: datetime | None = None) -> Sent:
        if delivery.operation not in (TRIGGER, RESOLVE):
            raise DeliveryError(f"unknown PagerDuty operation {delivery.operation}", permanent=True)
        try:
            response = self.http.post(self.url, json=self.event(delivery))
        except httpx2.HTTPError as error:
            raise DeliveryError(f"PagerDuty unreachable ({type(error).__name__})") from None
        status = response.status_code
        if status == 202:
            if delivery.operation == RESOLVE:
                return Sent(result={"link": "resolved"})
            return Sent(
                result={"link": "triggered"},
                notice=f":pager: PagerDuty accepted the page for *{delivery.incident_key}* "
                f"(dedup key `{delivery.payload.get('dedup_key')}`).",
            )
        reason = f"PagerDuty answered {status}{_why(response)}"
        if status == 429:
            raise DeliveryError(reason, retry_after=retry_after(response.headers.get("Retry-After"),
                                                                now or datetime.now(UTC)))  # fmt: skip
        raise DeliveryError(reason, permanent=400 <= status < 500 and status not in (408, 409))


def _why(response: httpx2.Response) -> str:
    """PagerDuty's own words for a refusal (its `message` and `errors`), short."""
    return refusal_words(response, _pagerduty_words)


def _pagerduty_words(body: dict[str, Any]) -> list[str]:
    return [str(body.get("message") or "")] + [str(e) for e in body.get("errors") or [] if isinstance(e, str)]


LOOPBACK = ("http://127.0.0.1:", "http://localhost:", "http://[::1]:")


class _RestClient(RestApiV2Client):
    """PagerDuty's REST client, which takes only https:// base URLs; plain http is let through for loopback
    addresses alone (tests and local stand-ins), so that a token never crosses a network in the clear."""

    @property
    def url(self) -> str:
        return str(self._url)

    @url.setter
    def url(self, new_base_url: str) -> None:
        if new_base_url.startswith(LOOPBACK):
            self._url = new_base_url
        else:
            RestApiV2Client.url.fset(self, new_base_url)  # type: ignore[attr-defined]


class PagerDutyRest:
    """The REST API v2 reads sitrep makes: who is on call for the escalation policy, and an incident's key (for
    webhook events that only reference their incident). Through PagerDuty's client, which pages and unwraps."""

    def __init__(self, *, token: SecretStr, url: str, escalation_policy: str | None, timeout: float = TIMEOUT) -> None:
        self._token = token
        self.url = url
        self.escalation_policy = escalation_policy
        self.timeout = timeout

    def _client(self) -> RestApiV2Client:
        client = _RestClient(self._token.get_secret_value(), base_url=self.url)
        client.timeout = self.timeout
        client.max_network_attempts = 1
        return client

    def on_call(self) -> list[OnCallPerson]:
        if not self.escalation_policy:
            return []
        params = {"escalation_policy_ids": [self.escalation_policy], "include": ["users"]}
        with self._client() as api:
            return people_on_call(list(api.iter_all("oncalls", params=params)))

    def incident_key(self, incident_id: str) -> str | None:
        try:
            with self._client() as api:
                incident = api.rget(f"incidents/{incident_id}")
        except PagerDutyError as error:
            log.warning("PagerDuty incident %s could not be read: %s", incident_id, type(error).__name__)
            return None
        key = incident.get("incident_key") if isinstance(incident, dict) else None
        return key if isinstance(key, str) else None


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """A v3 webhook signature check: `X-PagerDuty-Signature` holds `v1=<hex HMAC-SHA256 of the raw body>`, several
    separated by commas while a secret is rotated; one must match (compared in constant time)."""
    if not header or not secret:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    matched = False
    for part in header.split(","):
        version, _, value = part.strip().partition("=")
        if version == "v1" and value:
            matched |= hmac.compare_digest(value.strip().lower().encode("utf-8", "replace"), expected)
    return matched
