"""The one configured WebClient: base URL from settings, retries for 429, 5xx and connection errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

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
    """The one WebClient, telling `on_error(method, error)` about every Web API error (after retries)."""

    on_error: Callable[[str, str], None] | None = None

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


def make_client(settings: Settings) -> ObservedWebClient:
    return ObservedWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=retry_handlers(),
        logger=logging.getLogger("sitrep.slack"),
    )


def make_webhook(url: str) -> WebhookClient:
    """A client for one response_url, with the same retry policy."""
    return WebhookClient(url=url, timeout=15, retry_handlers=retry_handlers())
