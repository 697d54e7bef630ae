"""One reminder round in a process of its own, for the kill -9 test (tests/test_reminder_crash.py).

    python -m tests.reminder_round DATABASE_URL SLACK_API_URL ISO_TIME

Builds the real app (no migrations, no HTTP server) with its clock frozen at ISO_TIME, prints `ready`, waits for
a line on standard input, then runs one scheduler tick and prints `done`. The test kills it with SIGKILL at a
seeded random moment after the line it sends."""

from __future__ import annotations

import sys
from datetime import datetime

from bot.app import create_app
from bot.settings import load_settings
from core.clock import FrozenClock

TOKEN = "xoxb-fake-bot-token"
CADENCE = "sev1=15m,sev2=30m,sev3=1h,sev4=off"


def main(database_url: str, api_url: str, at: str) -> None:
    settings = load_settings(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET="unused",
        SLACK_APP_TOKEN="",
        SLACK_API_URL=api_url,
        DATABASE_URL=database_url,
        SITREP_CADENCE=CADENCE,
    )
    sitrep = create_app(settings, clock=FrozenClock(datetime.fromisoformat(at)), migrate=False)
    print("ready", flush=True)
    sys.stdin.readline()
    posted = sitrep.scheduler.tick()
    print(f"done {posted}", flush=True)
    sitrep.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
