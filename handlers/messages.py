"""Reading the Slack messages that events point at (a reaction names a message; the bot reads its text).

Under load many reactions wait in the queue at once, often several in one channel. `expect` notes, when an
event is acknowledged, a message its work will read; the first read in a channel then brings every message
expected there with one conversations.history call over their span, and the others wait in a short-lived
store for their own work. Alone, an event costs one call as before. Thread replies (not in the channel's
history) and messages beyond one page of the span are read one by one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

Message = dict[str, Any]

SPAN_LIMIT = 200  # messages per span read (one page of conversations.history)
KEEP_SECONDS = 60.0  # how long a message read ahead, or an expectation, waits for its event's work


def read_one(client: WebClient, channel: str, ts: str) -> Message | None:
    """Read one message, also a thread reply (conversations.history holds only top-level messages)."""
    history = client.conversations_history(channel=channel, latest=ts, inclusive=True, limit=1)
    for message in history.get("messages") or []:
        if message.get("ts") == ts:
            return dict(message)
    try:
        # For the ts of a reply Slack returns its thread, parent first: the window [ts, ts] keeps the reply, and
        # limit=2 leaves room for the parent where Slack adds it anyway.
        replies = client.conversations_replies(channel=channel, ts=ts, oldest=ts, latest=ts, inclusive=True, limit=2)
    except SlackApiError as exc:
        if exc.response.get("error") in ("thread_not_found", "message_not_found"):
            return None
        raise
    return next((dict(m) for m in replies.get("messages") or [] if m.get("ts") == ts), None)


class MessageReader:
    """One per process (Deps.messages): `expect` at the ack, `read` in the work after it."""

    def __init__(self, client: WebClient, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._expected: dict[str, dict[str, float]] = {}  # channel -> ts -> until
        self._ahead: dict[tuple[str, str], tuple[Message, float]] = {}  # (channel, ts) -> message, until
        self._next_sweep = 0.0
        self.calls = 0  # Slack reads made, for tests and benchmarks

    def expect(self, channel: str, ts: str) -> None:
        """An acknowledged event will read this message."""
        with self._lock:
            self._expected.setdefault(channel, {})[ts] = self._clock() + KEEP_SECONDS

    def forget(self, channel: str, ts: str) -> None:
        """The message was edited or deleted: a copy read ahead is stale, and its work reads it afresh."""
        with self._lock:
            self._ahead.pop((channel, ts), None)

    def read(self, channel: str, ts: str) -> Message | None:
        """The message, or None when Slack no longer has it."""
        now = self._clock()
        with self._lock:
            if now >= self._next_sweep:
                self._forget_older_than(now)
                self._next_sweep = now + 1.0
            ahead = self._ahead.pop((channel, ts), None)
            if ahead is not None:
                self._unexpect(channel, ts)
                return ahead[0]
            wanted = set(self._expected.pop(channel, {})) | {ts}
        if len(wanted) > 1:
            found = self._read_span(channel, wanted)
            with self._lock:
                until = now + KEEP_SECONDS
                self._ahead.update({(channel, t): (m, until) for t, m in found.items() if t != ts})
            if ts in found:
                return found[ts]
        with self._lock:
            self.calls += 1
        return read_one(self._client, channel, ts)

    def _read_span(self, channel: str, wanted: set[str]) -> dict[str, Message]:
        """The wanted messages found in one page of the channel's history between the first and the last."""
        with self._lock:
            self.calls += 1
        oldest, latest = min(wanted, key=float), max(wanted, key=float)
        history = self._client.conversations_history(
            channel=channel, oldest=oldest, latest=latest, inclusive=True, limit=SPAN_LIMIT
        )
        return {str(m["ts"]): dict(m) for m in history.get("messages") or [] if m.get("ts") in wanted}

    def _unexpect(self, channel: str, ts: str) -> None:
        times = self._expected.get(channel)
        if times is not None:
            times.pop(ts, None)
            if not times:
                del self._expected[channel]

    def _forget_older_than(self, now: float) -> None:
        """Expectations no work came for (a retry already done, a failed event) and messages never claimed."""
        for key in [key for key, (_m, until) in self._ahead.items() if until < now]:
            del self._ahead[key]
        for channel, times in list(self._expected.items()):
            for ts in [ts for ts, until in times.items() if until < now]:
                self._unexpect(channel, ts)
