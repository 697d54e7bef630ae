"""`sitrep demo`: a scripted incident played through the real bot against a local stand-in for Slack.

No workspace, no tokens, no network beyond this machine: the stand-in Slack runs in this process, the bot
serves its real HTTP endpoint on a free local port, and every step is a correctly signed Slack request. The
transcript shows what each person did and what the bot posted, and ends with the post-incident review."""

from __future__ import annotations

import html
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from core.clock import FrozenClock
from core.models import TimelineEntry
from standin import FakeSlack
from standin.local import LocalBot, local_bot

PEOPLE = {"U0JANE": "jane", "U0ALICE": "alice", "U0BOB": "bob", "U0CAROL": "carol", "U0DAN": "dan"}
JANE, ALICE, BOB, CAROL, DAN = PEOPLE
TAGGED = {"reaction", "pin", "shortcut"}  # timeline entries people made by tagging a message


class Transcript:
    """Prints what people do and, after each step, everything the bot posted since the step before."""

    def __init__(self, fake: FakeSlack, out: TextIO, sessions: sessionmaker[Session] | None = None) -> None:
        self.fake, self.out, self.sessions = fake, out, sessions
        self.entries_seen = 0
        self.seen: set[tuple[str, str]] = set()
        self.private_seen = 0
        self.files_seen: set[str] = set()

    def person(self, user: str, did: str) -> None:
        who = "" if did.startswith("(") else f"{PEOPLE.get(user, user)}: "
        print(f"\n{who}{did}", file=self.out)

    def _text(self, message: dict[str, Any]) -> str:
        parts = []
        for block in message.get("blocks") or []:
            text = (block.get("text") or {}).get("text")
            if text:
                parts.append(text)
            parts += [field["text"] for field in block.get("fields") or []]
            parts += [element.get("text", "") for element in block.get("elements") or [] if block["type"] == "context"]
            buttons = [
                e for e in block.get("elements") or [] if block["type"] == "actions" and e.get("type") == "button"
            ]
            if buttons:
                parts.append(" ".join(f"[{button['text']['text']}]" for button in buttons))
        text = "\n".join(parts) or message.get("text", "")
        for user, name in PEOPLE.items():
            text = text.replace(f"<@{user}>", f"@{name}")
        for channel in self.fake.channels.values():
            text = text.replace(f"<#{channel.id}>", f"#{channel.name}")
        return html.unescape(text)

    def _say(self, where: str, message: dict[str, Any]) -> None:
        lines = self._text(message).splitlines() or [""]
        print(f"  sitrep {where}: {lines[0]}", file=self.out)
        for line in lines[1:]:
            print(f"      {line}", file=self.out)

    def bot_posts(self) -> None:
        for channel_id in list(self.fake.channels):
            channel = self.fake.channel(channel_id)
            for message in self.fake.messages(channel_id):
                if (channel_id, message["ts"]) in self.seen or message.get("user") != self.fake.bot_user_id:
                    continue
                if not message.get("text") and not message.get("blocks"):  # the message that shares a file
                    self.seen.add((channel_id, message["ts"]))
                    continue
                self.seen.add((channel_id, message["ts"]))
                where = f"to @{PEOPLE.get(channel.im_user or '', '?')} (direct message)" if channel.is_im else (
                    f"in #{channel.name}")  # fmt: skip
                self._say(where, message)
        private = self.fake.ephemerals()
        for message in private[self.private_seen :]:
            self._say(f"(only to @{PEOPLE.get(message.get('user', ''), '?')})", message)
        self.private_seen = len(private)
        self.timeline_captures()
        for file_id, upload in self.fake.files.items():
            if file_id not in self.files_seen and upload.get("channels"):
                self.files_seen.add(file_id)
                print(f"  sitrep uploaded {upload.get('name') or upload.get('title')}", file=self.out)

    def timeline_captures(self) -> None:
        """Messages that people tagged (reaction, pin, shortcut): the bot files them without a word."""
        if self.sessions is None:
            return
        with self.sessions() as session:
            entries = session.exec(
                select(TimelineEntry).where(col(TimelineEntry.id) > self.entries_seen).order_by(col(TimelineEntry.id))
            ).all()
        for entry in entries:
            self.entries_seen = max(self.entries_seen, entry.id or 0)
            if entry.source in TAGGED:
                kind = entry.kind.value.replace("_", " ")
                print(f"  sitrep files it in the timeline as {kind}, at {entry.occurred_at:%H:%M}", file=self.out)


def play(bot: LocalBot, fake: FakeSlack, clock: FrozenClock, say: Transcript) -> str:
    def step(user: str, did: str, action: Callable[[], object], *, minutes: float = 0) -> None:
        clock.advance(minutes=minutes)
        say.person(user, did)
        action()
        assert bot.sitrep.executor.wait_idle(30), "the bot did not finish in time"
        say.bot_posts()

    def command(user: str, text: str, channel: str, *, minutes: float = 0) -> None:
        step(user, f"/incident {text}", lambda: bot.slack.command(text, user=user, channel=channel), minutes=minutes)

    def talk(user: str, channel: str, text: str, *, minutes: float = 0) -> dict[str, Any]:
        message: dict[str, Any] = {}

        def send() -> None:
            message.update(fake.post_as_user(channel, user, text))
            bot.slack.event(dict(message))

        step(user, f'says "{text}"', send, minutes=minutes)
        return message

    general = fake.channel_by_name("general")
    assert general is not None
    command(JANE, "declare sev2 Payment service degradation", general.id)
    incident_channel = next(c for c in fake.channels.values() if c.name.startswith("inc-"))
    for person in (ALICE, BOB, CAROL):
        fake.join_as_user(incident_channel.id, person)
    where = incident_channel.id
    command(JANE, f"role comms <@{BOB}|bob>", where, minutes=1)
    command(JANE, f"role ops <@{ALICE}|alice>", where)
    pool = talk(ALICE, where, "Confirmed: database connection pool at 100%, new connections rejected", minutes=2)
    step(
        ALICE, "reacts with :pushpin:", lambda: bot.slack.event(fake.react_as_user(where, pool["ts"], ALICE, "pushpin"))
    )
    deploy = talk(CAROL, where, "Identified the deploy of user-api v2.4.1: ORM 3.2.0 changed connection handling",
                  minutes=3)  # fmt: skip
    step(JANE, "pins Carol's message", lambda: bot.slack.event(fake.pin_as_user(where, deploy["ts"], JANE)))
    command(BOB, "update identified Database configuration problem after a deploy; a fix is under way", where,
            minutes=2)  # fmt: skip
    command(JANE, "severity sev1 12,500 users affected and payments failing", where, minutes=5)
    rollback = talk(ALICE, where, "Rolled back user-api to v2.3.9", minutes=20)
    step(ALICE, 'uses the shortcut "Add to incident timeline"',
         lambda: bot.slack.message_shortcut("sitrep_add_to_timeline", user=ALICE, channel=where,
                                            message=rollback["ts"]))  # fmt: skip
    step(DAN, "joins the channel", lambda: bot.slack.event(fake.join_as_user(where, DAN)), minutes=1)
    command(BOB, "update monitoring Fix deployed; error rate back to baseline", where, minutes=4)
    due = (clock.now() + timedelta(days=7)).date().isoformat()
    command(JANE, f"action Alert on connection pool use at 70% <@{ALICE}> P1 due:{due}", where, minutes=1)
    step(JANE, "(15 minutes pass without a status update: SEV1 asks for one every 15 minutes)",
         lambda: bot.sitrep.scheduler.tick(clock.now()), minutes=15)  # fmt: skip
    command(BOB, "update monitoring Error rate at baseline for 15 minutes; watching for another 15", where, minutes=2)
    command(JANE, "resolve ORM 3.2.0 opens 3x more connections per request than 3.1.2, exhausting the pool of 20",
            where, minutes=15)  # fmt: skip
    command(JANE, "stats 30d", general.id, minutes=5)
    pir = next(
        upload for upload in fake.files.values() if str(upload.get("name") or upload.get("title", "")).endswith(".md")
    )
    content = pir["content"]
    return content.decode("utf-8") if isinstance(content, bytes) else str(content)


def run_demo(out: TextIO | None = None, *, keep: str | None = None) -> int:
    """Play the demo; `keep`: a path where its SQLite database stays afterwards (else it goes with a temporary
    folder)."""
    out = out or sys.stdout
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    clock = FrozenClock(start)
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as fake:
        fake.clock = lambda: clock.now().timestamp()  # message times follow the story's clock
        for user, name in PEOPLE.items():
            fake.add_user(user, name, real_name=name.title())
        fake.add_channel("general", list(PEOPLE), bot_member=True)
        announce = fake.add_channel("incidents", list(PEOPLE), bot_member=True)
        print("sitrep demo: a scripted incident, played through the real bot against a local stand-in for Slack.",
              file=out)  # fmt: skip
        database = os.path.abspath(keep) if keep else f"{tmp}/demo.db"
        with local_bot(fake, f"sqlite:///{database}", signing_secret="demo-signing-secret", clock=clock,
                       SITREP_ANNOUNCE_CHANNEL=announce) as bot:  # fmt: skip
            markdown = play(bot, fake, clock, Transcript(fake, out, bot.sitrep.deps.sessions))
    print("\n" + "=" * 100 + "\nThe post-incident review sitrep posted (Markdown):\n" + "=" * 100, file=out)
    print(html.unescape(markdown), file=out)
    if keep:
        print(f"\nThe demo's database is in {keep}: try `DATABASE_URL=sqlite:///{keep} sitrep export INC-1 -o "
              "inc-1.json`, then `sitrep pir inc-1.json`.", file=out)  # fmt: skip
    return 0
