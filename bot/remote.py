"""Reading the answers of outside systems (PagerDuty, Jira, Statuspage): how long they ask us to wait, and
their own words for a refusal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A Retry-After header (seconds, or an HTTP date) as a wait; None when absent or unreadable."""
    if not value:
        return None
    try:
        return timedelta(seconds=max(0.0, float(value)))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(timedelta(0), moment.astimezone(UTC) - now) if moment.tzinfo else None


def refusal_words(response: httpx2.Response, words: Callable[[dict[str, Any]], list[str]]) -> str:
    """The remote's own words for a refusal, short (`words` picks them from its JSON object), as ": …"; "" when
    the answer is not a JSON object or says nothing."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    text = "; ".join(word for word in words(body) if word)
    return f": {text[:300]}" if text else ""
