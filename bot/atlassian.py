"""What the Jira and Statuspage senders share: one HTTP call whose failure becomes the outbox's DeliveryError
(retried with backoff; a 429's or 503's Retry-After honoured; a refusal that retrying cannot fix given up at once),
and a request pace (Statuspage allows one request a second).

Plain HTTP (httpx2, as the PagerDuty sender), not the `jira` or `atlassian-python-api` clients: both retry inside the
call with sleeps of their own (the `jira` client up to minutes on 429 and 5xx), while here the outbox owns retries,
Retry-After and giving up, must never hold its worker, and must pace every request to Statuspage; the few endpoints
used are small JSON calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx2

from bot.remote import refusal_words, retry_after
from core.outbox import DeliveryError

TIMEOUT = 10.0


class Pace:
    """At most `rate` requests a second, for every thread of the process: `wait()` before each request sleeps
    until its turn (the worker hands a paced integration one row at a time, so it seldom sleeps)."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        self.interval = 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            turn = max(now, self._next)
            self._next = turn + self.interval
        if turn > now:
            self._sleep(turn - now)

    def free_in(self) -> float:
        """Seconds until a request may go out."""
        with self._lock:
            return max(0.0, self._next - self._clock())


class Api:
    """One remote's JSON API: base URL, fixed headers (credentials), optional pace."""

    def __init__(self, *, name: str, base: str, headers: Mapping[str, str], pace: Pace | None = None,
                 http: httpx2.Client | None = None, timeout: float = TIMEOUT) -> None:  # fmt: skip
        self.name = name
        self.base = base.rstrip("/")
        self._headers = {"Accept": "application/json", **headers}
        self.pace = pace
        self.http = http or httpx2.Client(timeout=timeout, follow_redirects=False)

    def call(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
             missing_ok: bool = False) -> Any:  # fmt: skip
        """The answer's JSON (None for an empty answer, or a 404 when `missing_ok`); else DeliveryError."""
        if self.pace is not None:
            self.pace.wait()
        try:
            response = self.http.request(method, f"{self.base}{path}", json=json, params=params, headers=self._headers)
        except httpx2.HTTPError as error:
            raise DeliveryError(f"{self.name} unreachable ({type(error).__name__})") from None
        status = response.status_code
        if 200 <= status < 300:
            return response.json() if response.content else None
        if status == 404 and missing_ok:
            return None
        reason = f"{self.name} answered {status} to {method} {path.split('?')[0]}{_why(response)}"
        if status in (429, 503):
            wait = retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
            raise DeliveryError(reason, retry_after=wait)
        raise DeliveryError(reason, permanent=400 <= status < 500 and status not in (401, 408, 409, 423))


def _why(response: httpx2.Response) -> str:
    """The remote's own words for a refusal, short (Jira: errorMessages and errors; Statuspage: error)."""
    return refusal_words(response, _atlassian_words)


def _atlassian_words(body: dict[str, Any]) -> list[str]:
    words = [str(m) for m in body.get("errorMessages") or [] if isinstance(m, str)]
    errors = body.get("errors")
    if isinstance(errors, dict):
        words += [f"{field}: {message}" for field, message in errors.items()]
    elif isinstance(errors, list):
        words += [str(e) for e in errors if isinstance(e, str)]
    if isinstance(body.get("error"), str):
        words.append(body["error"])
    return words
