"""Drivers that deliver Slack payloads to the bot: signed HTTP requests or Socket Mode envelopes."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlencode, urlsplit

from slack_sdk.signature import SignatureVerifier

from .payloads import Payload, Payloads
from .server import FakeSlack

if TYPE_CHECKING:
    from .socket_mode import FakeSocketMode


class DriverResponse(NamedTuple):
    """What the app answered: HTTP status, headers and body (for Socket Mode: 200, {}, the ack payload)."""

    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _Driver:
    """The scenario methods, common to both transports; subclasses implement :meth:`_deliver`."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake
        self.payloads = Payloads(fake)
        self.last_event_id: str | None = None

    def _deliver(
        self, kind: str, payload: Payload, *, retry_num: int | None = None, retry_reason: str = ""
    ) -> DriverResponse:
        raise NotImplementedError

    def command(self, text: str, *, user: str, channel: str, command: str = "/incident") -> DriverResponse:
        return self._deliver("command", self.payloads.command(text, user=user, channel=channel, command=command))

    def event(
        self,
        event: Payload,
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> DriverResponse:
        """Deliver an event (e.g. ``fake.post_as_user(...)``); reuse ``event_id`` with ``retry_num`` for a retry."""
        payload = self.payloads.event(event, event_id=event_id)
        self.last_event_id = payload["event_id"]
        return self._deliver("event", payload, retry_num=retry_num, retry_reason=retry_reason)

    def block_action(
        self,
        action_id: str,
        value: Any = None,
        *,
        user: str,
        channel: str | None = None,
        message: Payload | str | None = None,
        view: Payload | None = None,
    ) -> DriverResponse:
        return self._deliver(
            "interactive",
            self.payloads.block_action(action_id, value, user=user, channel=channel, message=message, view=view),
        )

    def view_submission(
        self,
        view: Payload,
        state_values: Payload,
        *,
        user: str,
        callback_id: str | None = None,
        private_metadata: str | None = None,
    ) -> DriverResponse:
        return self._deliver(
            "interactive",
            self.payloads.view_submission(
                view, state_values, user=user, callback_id=callback_id, private_metadata=private_metadata
            ),
        )

    def message_shortcut(self, callback_id: str, *, user: str, channel: str, message: Payload | str) -> DriverResponse:
        return self._deliver(
            "interactive", self.payloads.message_shortcut(callback_id, user=user, channel=channel, message=message)
        )


class SlackDriver(_Driver):
    """Signed requests (v0 scheme) to the bot's HTTP endpoint, over one keep-alive connection."""

    def __init__(self, app_url: str, signing_secret: str, fake: FakeSlack, *, timeout: float = 10.0) -> None:
        super().__init__(fake)
        parts = urlsplit(app_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path if parts.path not in ("", "/") else "/slack/events"
        self.verifier = SignatureVerifier(signing_secret)
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def signed_headers(self, body: str, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": self.verifier.generate_signature(timestamp=ts, body=body),
        }

    def raw(
        self, body: str | bytes, headers: dict[str, str], *, method: str = "POST", path: str | None = None
    ) -> DriverResponse:
        """Send exactly this body and these headers (for forged signatures, stale timestamps...)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                try:
                    self._conn.request(method, path or self.path, body=data, headers=headers)
                    resp = self._conn.getresponse()
                    text = resp.read().decode("utf-8", "replace")
                    if resp.will_close:
                        self.close_connection()
                    return DriverResponse(resp.status, dict(resp.getheaders()), text)
                except (ConnectionError, http.client.HTTPException):
                    self.close_connection()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def url_verification(self, challenge: str) -> DriverResponse:
        return self._deliver("event", self.payloads.url_verification(challenge))

    def _deliver(
        self, kind: str, payload: Payload, *, retry_num: int | None = None, retry_reason: str = ""
    ) -> DriverResponse:
        if kind == "event":
            body, content_type = json.dumps(payload), "application/json"
        elif kind == "command":
            body, content_type = urlencode(payload), "application/x-www-form-urlencoded"
        else:
            body, content_type = urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
        headers = {"Content-Type": content_type, **self.signed_headers(body)}
        if retry_num is not None:
            headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason})
        return self.raw(body, headers)


class SocketModeDriver(_Driver):
    """The same scenarios delivered as Socket Mode envelopes; each call waits for the app's ack."""

    ENVELOPE_TYPES = {"command": "slash_commands", "event": "events_api", "interactive": "interactive"}

    def __init__(self, socket_mode: FakeSocketMode, fake: FakeSlack, *, ack_timeout: float = 5.0) -> None:
        super().__init__(fake)
        self.socket_mode = socket_mode
        self.ack_timeout = ack_timeout

    def _deliver(
        self, kind: str, payload: Payload, *, retry_num: int | None = None, retry_reason: str = ""
    ) -> DriverResponse:
        envelope_id = self.socket_mode.send_envelope(
            self.ENVELOPE_TYPES[kind],
            payload,  # type: ignore[arg-type]
            retry_attempt=retry_num or 0,
            retry_reason=retry_reason if retry_num else "",
        )
        ack = self.socket_mode.wait_for_ack(envelope_id, self.ack_timeout)
        return DriverResponse(200, {}, json.dumps(ack["payload"]) if ack.get("payload") else "")
