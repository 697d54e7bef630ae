"""Tagging Slack messages into an incident's timeline (SPEC §6).

One message is one entry however often and however it is tagged (several reactions, a pin, the shortcut);
the entry lives while it has at least one tag. Functions take the session and leave the commit to the caller,
so that a Slack event id is claimed in the same transaction as its effect."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, delete, select

from core.db import insert_or_ignore, numbered
from core.enums import EntryKind
from core.errors import InvalidInput, NotFound
from core.models import ProcessedEvent, TimelineEntry, TimelineTag

# First match wins; the order puts the more decisive words first.
_KIND_WORDS: tuple[tuple[EntryKind, re.Pattern[str]], ...] = (
    (EntryKind.RESOLUTION, re.compile(r"\b(resolved|all clear|back to normal|fully restored)\b", re.I)),
    (EntryKind.MITIGATION, re.compile(
        r"\b(roll(ed|ing)?[ -]?back|revert(ed|ing)?|mitigat\w*|hotfix|fail(ed)?[ -]?over|restart(ed|ing)?|"
        r"scal(ed|ing) (up|out)|fix (is )?(deployed|applied|out))\b", re.I)),
    (EntryKind.ESCALATION, re.compile(r"\b(escalat\w*|paged|paging|looped in)\b", re.I)),
    (EntryKind.DETECTION, re.compile(r"\b(alert(s|ed)?|detected|fired|pager ?duty|spike)\b", re.I)),
    (EntryKind.COMMUNICATION, re.compile(r"\b(status ?page|customers? (were )?notified|announced|tweet)\b", re.I)),
    (EntryKind.INVESTIGATION, re.compile(
        r"\b(root cause|identified|investigat\w*|looking (at|into)|found|suspect\w*|caused by|logs? show)\b", re.I)),
)  # fmt: skip


def infer_kind(text: str) -> EntryKind:
    """The kind of a tagged message from its words (`rolled back` -> mitigation); a note otherwise."""
    for kind, words in _KIND_WORDS:
        if words.search(text):
            return kind
    return EntryKind.NOTE


def ts_to_datetime(ts: str) -> datetime:
    """A Slack message ts (`1700000000.000100`) as an aware UTC datetime."""
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC)
    except ValueError:
        raise InvalidInput(f"{ts!r} is not a Slack message timestamp") from None


def _entry_id(session: Session, incident_id: int, channel: str, ts: str) -> int | None:
    query = select(TimelineEntry.id).where(
        TimelineEntry.incident_id == incident_id,
        TimelineEntry.message_channel == channel,
        TimelineEntry.message_ts == ts,
    )
    return session.exec(query).first()


@dataclass(frozen=True)
class Tagging:
    """One Slack event that tags a message (a reaction, a pin), as `tag_messages` takes it."""

    event_id: str  # "" when the event has none
    incident_id: int
    channel: str
    ts: str
    text: str
    author: str
    tag: str
    source: str
    at: datetime  # when sitrep took the event: its claim's and its entry's recorded time
    permalink: str | None = None


def tag_message(
    *,
    session: Session,
    incident_id: int,
    channel: str,
    ts: str,
    text: str,
    author: str,
    tag: str,
    source: str,
    now: datetime,
    permalink: str | None = None,
) -> bool:
    """Add `tag` to the entry of this message, creating the entry on the first tag. True when it was created.

    Two statements that cannot conflict (INSERT ... ON CONFLICT DO NOTHING), so concurrent tags of one message
    meet at the unique keys instead of failing. The message shortcut's path; events go through `tag_messages`."""
    tagging = Tagging(event_id="", incident_id=incident_id, channel=channel, ts=ts, text=text, author=author,
                      tag=tag, source=source, at=now, permalink=permalink)  # fmt: skip
    values = _entry_row(tagging)
    created: Any = session.execute(insert_or_ignore(_ENTRIES, _ENTRY_KEYS, tuple(values)), values)
    session.execute(_tags_by_message(1), _tag_params([tagging]))
    return bool(created.rowcount == 1)


def tag_messages(*, session: Session, taggings: Sequence[Tagging]) -> list[bool]:
    """Apply many taggings in four statements, whatever their number: what `claim_event` and `tag_message`
    do for one, for all the events waiting together (each SQLite step releases Python's GIL, and under load
    getting it back is what the write lock was held for). Returns, for each, whether it was applied: False for
    an event id processed before, or earlier in `taggings` (a retried delivery)."""
    ids = sorted({t.event_id for t in taggings})
    seen = set(session.execute(_seen(len(ids)), {f"e{n}": e for n, e in enumerate(ids)}).scalars())
    applied, fresh = [], []
    for tagging in taggings:
        first = not tagging.event_id or tagging.event_id not in seen
        applied.append(first)
        if first:
            fresh.append(tagging)
            seen.add(tagging.event_id)
    if not fresh:
        return applied
    claims = [{"event_id": t.event_id, "received_at": t.at} for t in fresh if t.event_id]
    if claims:
        claim = insert_or_ignore(_EVENTS, ("event_id",), ("event_id", "received_at"), rows=len(claims))
        session.execute(claim, numbered(claims))
    entries = [_entry_row(t) for t in fresh]
    session.execute(insert_or_ignore(_ENTRIES, _ENTRY_KEYS, tuple(entries[0]), rows=len(entries)), numbered(entries))
    session.execute(_tags_by_message(len(fresh)), _tag_params(fresh))
    return applied


_EVENTS: sa.Table = ProcessedEvent.__table__  # type: ignore[attr-defined]
_ENTRIES: sa.Table = TimelineEntry.__table__  # type: ignore[attr-defined]
_ENTRY_KEYS = ("incident_id", "message_channel", "message_ts")


def _entry_row(t: Tagging) -> dict[str, Any]:
    """The timeline entry a tagged message makes, as a row (its kind inferred from its words)."""
    return {
        "incident_id": t.incident_id, "occurred_at": ts_to_datetime(t.ts), "recorded_at": t.at,
        "kind": infer_kind(t.text), "actor": t.author, "text": t.text, "source": t.source, "permalink": t.permalink,
        "message_channel": t.channel, "message_ts": t.ts, "kind_locked": False, "details": {},
    }  # fmt: skip


@lru_cache(maxsize=128)
def _seen(rows: int) -> sa.TextClause:
    """Which of `rows` event ids were processed before."""
    ids = ", ".join(f":e{n}" for n in range(rows))
    return sa.text(f"SELECT event_id FROM processed_events WHERE event_id IN ({ids})")


@lru_cache(maxsize=128)
def _tags_by_message(rows: int) -> sa.TextClause:
    """INSERT the tags of `rows` messages' entries, each entry found by its message (no round trip for its id)."""
    values = ", ".join(f"(CAST(:i{n} AS INTEGER), :c{n}, :t{n}, :g{n})" for n in range(rows))
    return sa.text(
        f"WITH v(incident_id, channel, ts, tag) AS (VALUES {values}) "
        "INSERT INTO timeline_tags (entry_id, tag) SELECT e.id, v.tag FROM v JOIN timeline_entries e "
        "ON e.incident_id = v.incident_id AND e.message_channel = v.channel AND e.message_ts = v.ts "
        "WHERE true ON CONFLICT (entry_id, tag) DO NOTHING"
    )


def _tag_params(taggings: Sequence[Tagging]) -> dict[str, object]:
    params: dict[str, object] = {}
    for n, t in enumerate(taggings):
        params |= {f"i{n}": t.incident_id, f"c{n}": t.channel, f"t{n}": t.ts, f"g{n}": t.tag}
    return params


def untag_message(*, session: Session, incident_id: int, channel: str, ts: str, tag: str) -> bool:
    """Remove one tag; the entry goes with its last tag. True when the entry was removed."""
    entry_id = _entry_id(session, incident_id, channel, ts)
    if entry_id is None:
        return False
    session.exec(delete(TimelineTag).where(col(TimelineTag.entry_id) == entry_id, col(TimelineTag.tag) == tag))
    left = session.exec(select(TimelineTag.id).where(TimelineTag.entry_id == entry_id)).first()
    if left is None:
        session.exec(delete(TimelineEntry).where(col(TimelineEntry.id) == entry_id))
        return True
    return False


def is_tagged(*, session: Session, channel: str, ts: str) -> bool:
    """Whether any incident's timeline holds this message (one indexed look)."""
    query = select(TimelineEntry.id).where(TimelineEntry.message_channel == channel, TimelineEntry.message_ts == ts)
    return session.exec(query.limit(1)).first() is not None


def edit_message(*, session: Session, channel: str, ts: str, text: str) -> int:
    """The message was edited: update its entries (and their inferred kind). Returns how many changed."""
    entries = session.exec(
        select(TimelineEntry).where(TimelineEntry.message_channel == channel, TimelineEntry.message_ts == ts)
    ).all()
    for entry in entries:
        entry.text = text
        if not entry.kind_locked:
            entry.kind = infer_kind(text)
        session.add(entry)
    return len(entries)


def delete_message(*, session: Session, channel: str, ts: str) -> int:
    """The message was deleted: its entries go too. Returns how many were removed."""
    entries = session.exec(
        select(TimelineEntry).where(TimelineEntry.message_channel == channel, TimelineEntry.message_ts == ts)
    ).all()
    for entry in entries:
        session.delete(entry)
    session.flush()
    return len(entries)


def set_kind(*, session: Session, entry_id: int, kind: EntryKind) -> TimelineEntry:
    """A person chose the kind: it is kept even if the message is edited later."""
    entry = session.get(TimelineEntry, entry_id)
    if entry is None:
        raise NotFound("That timeline entry no longer exists.")
    entry.kind = kind
    entry.kind_locked = True
    session.add(entry)
    return entry
