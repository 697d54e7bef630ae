"""The real bot, served over HTTP on a free local port, talking to a stand-in Slack (demo and tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bot.app import Sitrep, create_app
from bot.server import Server, WsgiApp
from bot.settings import load_settings
from core.clock import Clock

from .driver import SlackDriver
from .server import FakeSlack


@dataclass
class LocalBot:
    sitrep: Sitrep
    server: Server
    slack: SlackDriver  # signed requests to the bot, as Slack sends them


@contextmanager
def local_bot(
    fake: FakeSlack, database_url: str, *, signing_secret: str, clock: Clock | None = None, **env: str
) -> Iterator[LocalBot]:
    settings = load_settings(
        SLACK_BOT_TOKEN=fake.bot_token,
        SLACK_SIGNING_SECRET=signing_secret,
        SLACK_APP_TOKEN="",  # HTTP mode, whatever the environment says
        SLACK_API_URL=fake.api_url,
        DATABASE_URL=database_url,
        **env,
    )
    sitrep = create_app(settings, clock=clock)
    server = Server(WsgiApp(sitrep), host="127.0.0.1", port=0, threads=8).start()
    driver = SlackDriver(f"http://127.0.0.1:{server.port}/slack/events", signing_secret, fake)
    try:
        yield LocalBot(sitrep, server, driver)
    finally:
        driver.close_connection()
        sitrep.executor.wait_idle(10)
        server.stop()
        sitrep.close()
