"""Posts that a retry or a restart never makes twice (SPEC §15).

A Slack call that timed out may have happened. Each post that sitrep may try again (a reminder, an incident's
intro) carries a key in its message metadata (chat.postMessage `metadata`: `event_type` and `event_payload`); a
later attempt first looks for a message with that key among the channel's latest messages
(conversations.history with include_all_metadata) and posts only when there is none. The first attempt does not
look: the look costs one Slack call, and only a retry needs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from handlers.deps import Deps

# How far back a retry looks: the first attempt is minutes old at most, so its message is among the latest.
LOOK_BACK = 100


@dataclass(frozen=True)
class PostKey:
    kind: str  # what is posted: "reminder", "intro"
    key: str  # which one: e.g. the incident and the period of a reminder

    @property
    def event_type(self) -> str:
        return f"sitrep_{self.kind}"

    def metadata(self) -> dict[str, Any]:
        return {"event_type": self.event_type, "event_payload": {"key": self.key}}

    def marks(self, message: dict[str, Any]) -> bool:
        meta = message.get("metadata") or {}
        payload = meta.get("event_payload") or {}
        return bool(meta.get("event_type") == self.event_type and payload.get("key") == self.key)


def find_posted(deps: Deps, channel: str, key: PostKey) -> str | None:
    """The ts of the bot's message carrying `key` among the channel's latest, or None."""
    history = deps.client.conversations_history(channel=channel, limit=LOOK_BACK, include_all_metadata=True)
    return next((str(m["ts"]) for m in history.get("messages") or [] if key.marks(m)), None)


def post_once(
    deps: Deps,
    channel: str,
    key: PostKey,
    *,
    retry: bool,
    text: str,
    blocks: list[dict[str, Any]] | None = None,
) -> tuple[str, bool]:
    """Post a message carrying `key`, unless (on a `retry`) an earlier attempt posted it: (its ts, whether this
    call posted it)."""
    if retry:
        found = find_posted(deps, channel, key)
        if found is not None:
            return found, False
    response = deps.client.chat_postMessage(channel=channel, text=text, blocks=blocks, metadata=key.metadata())
    return str(response["ts"]), True
