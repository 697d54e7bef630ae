"""End-to-end harness: the real app over HTTP (waitress) against the fake Slack, driven by signed requests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bot.app import Sitrep
from bot.server import Server
from bot.settings import Settings
from core import store
from core.clock import Clock
from core.models import Incident
from standin.local import local_bot
from tests.fakeslack import FakeSlack, SlackDriver

SIGNING_SECRET = "test-signing-secret"
ALICE, BOB, CAROL, DAVE = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"


@dataclass
class Harness:
    fake: FakeSlack
    sitrep: Sitrep
    server: Server
    slack: SlackDriver
    general: str  # a public channel where everyone is (the bot too)
    announce: str

    @property
    def settings(self) -> Settings:
        return self.sitrep.settings

    def idle(self, timeout: float = 15.0) -> None:
        """Wait until the work after every ack is done."""
        assert self.sitrep.executor.wait_idle(timeout), "listener work did not finish"

    def command(self, text: str, *, user: str = ALICE, channel: str | None = None) -> Any:
        response = self.slack.command(text, user=user, channel=channel or self.general)
        assert response.status == 200, response
        self.idle()
        return response

    def replies(self, user: str = ALICE) -> list[str]:
        """Every private reply the user got: ephemerals (chat.postEphemeral and response_url) and DMs."""
        private = self.fake.ephemerals(user=user) + self.fake.dms(user)
        return [message.get("text", "") for message in private]

    def answers(self, response: Any, user: str = ALICE) -> list[str]:
        """The private answers to a command: the text of its ack, then every private reply to the user."""
        try:
            body = response.json()
        except ValueError:  # Bolt answers ack(text=...) of a slash command as text/plain
            body = {"text": response.body}
        in_ack = [body["text"]] if isinstance(body, dict) and body.get("text") else []
        return in_ack + self.replies(user)

    def posted(self) -> list[dict[str, Any]]:
        """Every message the bot posted in any channel (not private replies)."""
        return [
            message
            for channel in list(self.fake.channels)
            if not self.fake.channel(channel).is_im
            for message in self.fake.messages(channel)
            if message.get("bot_id") or message.get("user") == self.fake.bot_user_id
        ]

    def incident(self, key: str | None = None, *, channel: str | None = None) -> Incident:
        with self.sitrep.deps.tx() as session:
            if key:
                return store.incident_by_key(session=session, key=key)
            found = store.incident_by_channel(session=session, channel_id=channel or "")
            assert found is not None
            return found


@contextmanager
def running_bot(
    database_url: str, *, clock: Clock | None = None, fake: FakeSlack | None = None, **env: str
) -> Iterator[Harness]:
    own_fake = fake is None
    fake = fake or FakeSlack().start()
    for user, name in ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"), (DAVE, "dave")):
        if user not in fake.users:
            fake.add_user(user, name, real_name=name.title())
    general = fake.channel_by_name("general")
    general_id = general.id if general else fake.add_channel("general", [ALICE, BOB, CAROL, DAVE], bot_member=True)
    announce = fake.channel_by_name("incidents")
    announce_id = announce.id if announce else fake.add_channel("incidents", [ALICE], bot_member=True)
    try:
        with local_bot(
            fake, database_url, signing_secret=SIGNING_SECRET, clock=clock, SITREP_ANNOUNCE_CHANNEL=announce_id, **env
        ) as bot:
            yield Harness(fake, bot.sitrep, bot.server, bot.slack, general_id, announce_id)
    finally:
        if own_fake:
            fake.stop()
