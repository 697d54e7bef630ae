"""`sitrep demo`: a scripted incident played through the real bot against local stand-ins for Slack, Alertmanager
and PagerDuty.

No workspace, no tokens, no network beyond this machine: the stand-ins for Slack and PagerDuty run in this process,
the bot serves its real HTTP endpoint on a free local port, every step is a correctly signed Slack request, and the
alert that starts the story is Alertmanager's webhook (version 4) posted to /hooks/alertmanager with the demo's
token. The transcript shows what each person did, what the bot posted and what PagerDuty received (the outbox
worker runs after each step, on the story's clock), and ends with the post-incident review."""

from __future__ import annotations

import html
import os
import re
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
from standin.hooks import HookClient, alert, notification
from standin.local import LocalBot, local_bot
from standin.pagerduty import FakePagerDuty
from standin.pagerduty import running as running_pagerduty

PEOPLE = {"U0JANE": "jane", "U0ALICE": "alice", "U0BOB": "bob", "U0CAROL": "carol", "U0DAN": "dan"}
JANE, ALICE, BOB, CAROL, DAN = PEOPLE
TAGGED = {"reaction", "pin", "shortcut"}  # timeline entries people made by tagging a message
LINK = re.compile(r"<https?://[^|>]+\|([^>]+)>")  # a link as Slack shows it: its words
WEBHOOK_TOKEN = "demo-webhook-token-0123456789"  # the demo's bearer token of /hooks/alertmanager


class Transcript:
    """Prints what people do and, after each step, everything the bot posted since the step before."""

    def __init__(
        self,
        fake: FakeSlack,
        out: TextIO,
        sessions: sessionmaker[Session] | None = None,
        *,
        pagerduty: FakePagerDuty | None = None,
        edits_in: frozenset[str] = frozenset(),
    ) -> None:
        self.fake, self.out, self.sessions, self.pagerduty = fake, out, sessions, pagerduty
        self.edits_in = edits_in  # channels whose messages the bot edits in place (alert triage): edits are shown
        self.entries_seen = 0
        self.pages_seen = 0
        self.seen: dict[tuple[str, str], str] = {}  # the bot's messages shown, with the text shown
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
        return html.unescape(LINK.sub(r"\1", text))

    def _say(self, where: str, message: dict[str, Any], before: str | None = None) -> None:
        """A message as lines; an edited one (`before` is what was shown) by its first line and the lines it
        did not have."""
        lines = self._text(message).splitlines() or [""]
        if before is not None:
            had = set(before.splitlines())
            lines = lines[:1] + [line for line in lines[1:] if line not in had]
        print(f"  sitrep {where}: {lines[0]}", file=self.out)
        for line in lines[1:]:
            print(f"      {line}", file=self.out)

    def bot_posts(self) -> None:
        self.pages()
        for channel_id in list(self.fake.channels):
            channel = self.fake.channel(channel_id)
            for message in self.fake.messages(channel_id):
                key = (channel_id, message["ts"])
                if message.get("user") != self.fake.bot_user_id:
                    continue
                if not message.get("text") and not message.get("blocks"):  # the message that shares a file
                    self.seen[key] = ""
                    continue
                text = self._text(message)
                if key in self.seen and (channel_id not in self.edits_in or self.seen[key] == text):
                    continue
                where = f"to @{PEOPLE.get(channel.im_user or '', '?')} (direct message)" if channel.is_im else (
                    f"in #{channel.name}")  # fmt: skip
                if key in self.seen:
                    self._say(f"edits its message {where}", message, self.seen[key])
                else:
                    self._say(where, message)
                self.seen[key] = text
        private = self.fake.ephemerals()
        for message in private[self.private_seen :]:
            self._say(f"(only to @{PEOPLE.get(message.get('user', ''), '?')})", message)
        self.private_seen = len(private)
        self.timeline_captures()
        for file_id, upload in self.fake.files.items():
            if file_id not in self.files_seen and upload.get("channels"):
                self.files_seen.add(file_id)
                print(f"  sitrep uploaded {upload.get('name') or upload.get('title')}", file=self.out)

    def pages(self) -> None:
        """What the stand-in PagerDuty received since the step before (Events API v2), and how it answered."""
        if self.pagerduty is None:
            return
        requests = [r for r in self.pagerduty.requests if r.path == "/v2/enqueue"]
        for request in requests[self.pages_seen :]:
            body = request.body if isinstance(request.body, dict) else {}
            severity = (body.get("payload") or {}).get("severity")
            what = " ".join(str(part) for part in (body.get("event_action"), body.get("dedup_key")) if part)
            answer = "accepted" if request.status == 202 else f"answered {request.status}"
            print(f"  PagerDuty got: {what}{f' ({severity})' if severity else ''}, {answer}", file=self.out)
        self.pages_seen = len(requests)

    def timeline_captures(self) -> None:
        """Messages that people tagged (reaction, pin, shortcut) and alerts of an incident's group: the bot files
        them in the timeline without a word."""
        if self.sessions is None:
            return
        with self.sessions() as session:
            entries = session.exec(
                select(TimelineEntry).where(col(TimelineEntry.id) > self.entries_seen).order_by(col(TimelineEntry.id))
            ).all()
        lines: list[str] = []
        for entry in entries:
            self.entries_seen = max(self.entries_seen, entry.id or 0)
            kind = entry.kind.value.replace("_", " ")
            if entry.source == "alert":  # one per alert of the group: alike ones are said once
                lines.append(f"files the alert in the timeline as {kind}, at {entry.occurred_at:%H:%M}: {entry.text}")
            elif entry.source in TAGGED:
                lines.append(f"files it in the timeline as {kind}, at {entry.occurred_at:%H:%M}")
        for line in dict.fromkeys(lines):
            print(f"  sitrep {line}", file=self.out)


def alertmanager_notification(status: str, started: datetime, ended: datetime | None = None) -> dict[str, Any]:
    """Alertmanager's webhook (version 4) for the group PaymentErrors, firing on two instances, as its
    webhook receiver posts it (common labels and annotations are those all its alerts share)."""
    alerts = [alert("PaymentErrors", status=status, summary="Payment service degradation", instance=instance,
                    starts_at=f"{started:%Y-%m-%dT%H:%M:%SZ}", ends_at=f"{ended or started:%Y-%m-%dT%H:%M:%SZ}",
                    generator="http://prometheus.example:9090")
              for instance in ("payments-api-1", "payments-api-2")]  # fmt: skip
    payload = notification("PaymentErrors", alerts)
    payload["commonLabels"] = dict(set.intersection(*(set(a["labels"].items()) for a in alerts)))
    payload["commonAnnotations"] = dict(set.intersection(*(set(a["annotations"].items()) for a in alerts)))
    return payload


def play(bot: LocalBot, fake: FakeSlack, clock: FrozenClock, say: Transcript) -> str:
    hooks = HookClient(f"http://127.0.0.1:{bot.server.port}")

    def step(user: str, did: str, action: Callable[[], object], *, minutes: float = 0) -> None:
        clock.advance(minutes=minutes)
        say.person(user, did)
        action()
        assert bot.sitrep.executor.wait_idle(30), "the bot did not finish in time"
        say.bot_posts()
        # The outbox worker (every 2 s in a running bot) delivers what the step queued, on the story's clock; what
        # PagerDuty got, and what the bot said about it, follow.
        bot.sitrep.outbox.deliver(clock.now())
        say.bot_posts()

    def alertmanager(payload: dict[str, Any]) -> None:
        answer = hooks.alertmanager(payload, token=WEBHOOK_TOKEN)
        assert answer.status == 200, f"/hooks/alertmanager answered {answer.status}: {answer.body}"

    def press_declare(message: dict[str, Any]) -> None:
        bot.slack.block_action("sitrep_alert_declare", user=JANE, channel=triage.id, message=message["ts"])
        assert bot.sitrep.executor.wait_idle(30), "the bot did not finish in time"
        form = fake.last_view("sitrep_declare")
        assert form is not None, "no declare form opened"
        fields = {block["block_id"]: block["element"] for block in form["blocks"] if block.get("element")}
        title = fields["title"].get("initial_value", "")
        severity = fields["severity"].get("initial_option", {}).get("value", "")
        print(f'  sitrep opens the declare form for @jane, prefilled from the alert: {severity.upper()} "{title}"',
              file=say.out)  # fmt: skip
        prefilled.update(title=title, severity=severity, view=form)

    def submit_declare() -> None:
        answer = bot.slack.view_submission(prefilled["view"], {"title": {"title": prefilled["title"]},
                                           "severity": {"severity": prefilled["severity"]}}, user=JANE)  # fmt: skip
        assert answer.status == 200, answer

    def command(user: str, text: str, channel: str, *, minutes: float = 0) -> None:
        step(user, f"/incident {text}", lambda: bot.slack.command(text, user=user, channel=channel), minutes=minutes)

    def talk(user: str, channel: str, text: str, *, minutes: float = 0) -> dict[str, Any]:
        message: dict[str, Any] = {}

        def send() -> None:
            message.update(fake.post_as_user(channel, user, text))
            bot.slack.event(dict(message))

        step(user, f'says "{text}"', send, minutes=minutes)
        return message

    general, triage = fake.channel_by_name("general"), fake.channel_by_name("alerts")
    assert general is not None and triage is not None
    started = clock.now() - timedelta(minutes=3)
    step(JANE, "(Alertmanager posts to /hooks/alertmanager: PaymentErrors is firing on payments-api-1 and -2)",
         lambda: alertmanager(alertmanager_notification("firing", started)))  # fmt: skip
    prefilled: dict[str, Any] = {}
    step(JANE, "presses [Declare] on the alert", lambda: press_declare(fake.messages(triage.id)[-1]), minutes=2)
    step(JANE, "submits the declare form as prefilled", submit_declare)
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
    step(JANE, "(Alertmanager posts to /hooks/alertmanager: PaymentErrors is resolved)",
         lambda: alertmanager(alertmanager_notification("resolved", started, clock.now())), minutes=1)  # fmt: skip
    due = (clock.now() + timedelta(days=7)).date().isoformat()
    command(JANE, f"action Alert on connection pool use at 70% <@{ALICE}> P1 due:{due}", where)
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
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as fake, running_pagerduty() as pagerduty:
        fake.clock = lambda: clock.now().timestamp()  # message times follow the story's clock
        for user, name in PEOPLE.items():
            fake.add_user(user, name, real_name=name.title())
        fake.add_channel("general", list(PEOPLE), bot_member=True)
        announce = fake.add_channel("incidents", list(PEOPLE), bot_member=True)
        triage = fake.add_channel("alerts", list(PEOPLE), bot_member=True)
        print("sitrep demo: a scripted incident, played through the real bot against local stand-ins for Slack, "
              "Alertmanager and PagerDuty.", file=out)  # fmt: skip
        database = os.path.abspath(keep) if keep else f"{tmp}/demo.db"
        with local_bot(fake, f"sqlite:///{database}", signing_secret="demo-signing-secret", clock=clock,
                       SITREP_ANNOUNCE_CHANNEL=announce, SITREP_WEBHOOK_TOKEN=WEBHOOK_TOKEN,
                       SITREP_TRIAGE_CHANNEL=triage, PAGERDUTY_ROUTING_KEY=pagerduty.routing_key,
                       PAGERDUTY_EVENTS_URL=pagerduty.events_url) as bot:  # fmt: skip
            say = Transcript(fake, out, bot.sitrep.deps.sessions, pagerduty=pagerduty, edits_in=frozenset({triage}))
            markdown = play(bot, fake, clock, say)
    print("\n" + "=" * 100 + "\nThe post-incident review sitrep posted (Markdown):\n" + "=" * 100, file=out)
    print(html.unescape(markdown), file=out)
    if keep:
        print(f"\nThe demo's database is in {keep}: try `DATABASE_URL=sqlite:///{keep} sitrep export INC-1 -o "
              "inc-1.json`, then `sitrep pir inc-1.json`.", file=out)  # fmt: skip
    return 0
