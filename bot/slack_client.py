"""The one configured WebClient: base URL from settings, retries for 429, 5xx and connection errors."""

from __future__ import annotations

import email.message
import http.client
import io
import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlsplit
from urllib.request import Request

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.webhook import WebhookClient

from bot.settings import Settings


def retry_handlers() -> list[RetryHandler]:
    return [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=5),
        ServerErrorRetryHandler(max_retry_count=2),
    ]


class ObservedWebClient(WebClient):
    """The one WebClient, telling `on_error(method, error)` about every Web API error (after retries).

    Each thread keeps its connection to Slack open between calls (slack_sdk's urllib opens a new one per call,
    which on the busiest path cost more than the call's own work). Only the transport changes: the retry
    handlers see the same answers and errors as with urllib, and a connection that Slack closed while idle is
    reopened once, at once."""

    on_error: Callable[[str, str], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections = threading.local()

    def api_call(self, api_method: str, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            return super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            if self.on_error is not None:
                self.on_error(api_method, str(exc.response.get("error") or exc.response.status_code))
            raise
        except Exception as exc:
            if self.on_error is not None:
                self.on_error(api_method, type(exc).__name__)
            raise

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        # slack_sdk has no public transport hook: this overrides the internal method that its
        # `_perform_urllib_http_request` calls for each attempt (checked against slack_sdk 3.48.0). If an upgrade
        # renames it, calls silently go back to one connection per call:
        # tests/test_hardening_http.py::test_the_library_internals_we_lean_on_are_where_we_checked_them fails.
        parts = urlsplit(url)
        if self.proxy is not None or parts.scheme not in ("http", "https"):
            return super()._perform_urllib_http_request_internal(url, req)  # type: ignore[no-any-return]
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = dict(req.header_items())
        for attempt in (1, 2):
            connection, reused = self._connection(parts.scheme, parts.netloc)
            try:
                connection.request("POST", target, body=req.data, headers=headers)  # type: ignore[arg-type]
                response = connection.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close_connections()
                if reused and attempt == 1:
                    continue  # closed by Slack while idle: once more on a new connection
                raise
            except BaseException:
                self.close_connections()
                raise
            if response.will_close:
                self.close_connections()
            return self._answer(url, response, body)
        raise AssertionError("unreachable")

    def _connection(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        held: tuple[str, http.client.HTTPConnection] | None = getattr(self._connections, "held", None)
        key = f"{scheme}://{netloc}"
        if held is not None and held[0] == key:
            return held[1], True
        self.close_connections()
        if scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                netloc, timeout=self.timeout, context=self.ssl
            )
        else:
            connection = http.client.HTTPConnection(netloc, timeout=self.timeout)
        self._connections.held = (key, connection)
        return connection, False

    def close_connections(self) -> None:
        """Close this thread's connection (the next call opens a new one)."""
        held = getattr(self._connections, "held", None)
        self._connections.held = None
        if held is not None:
            held[1].close()

    @staticmethod
    def _answer(url: str, response: http.client.HTTPResponse, body: bytes) -> dict[str, Any]:
        """What urllib's urlopen gives for this response: the answer, or HTTPError for 4xx and 5xx."""
        headers: email.message.Message = response.msg
        if response.status >= 400:
            raise HTTPError(url, response.status, response.reason, headers, io.BytesIO(body))
        if headers.get_content_type() == "application/gzip":
            return {"status": response.status, "headers": headers, "body": body}
        charset = headers.get_content_charset() or "utf-8"
        return {"status": response.status, "headers": headers, "body": body.decode(charset)}


def make_client(settings: Settings) -> ObservedWebClient:
    return ObservedWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=retry_handlers(),
        logger=logging.getLogger("sitrep.slack"),
    )


SLACK_HOOKS = ("https", "hooks.slack.com", 443)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:  # a port that is not a number
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def make_webhook(url: str, *, slack_api_url: str | None = None) -> WebhookClient:
    """A client for one response_url, with the same retry policy. Only Slack's hooks host, or the scheme, host
    and port of SLACK_API_URL (`slack_api_url`: proxies and stand-ins serve both), is followed (SPEC §15); any
    other URL raises ValueError before anything is sent."""
    origin = _origin(url)
    if origin != SLACK_HOOKS and (slack_api_url is None or origin != _origin(slack_api_url)):
        raise ValueError(f"not a Slack response_url host: {origin[1]}")
    return WebhookClient(url=url, timeout=15, retry_handlers=retry_handlers())
