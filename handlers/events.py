"""Events API listeners. Every delivery gets a 2xx, also the ones sitrep ignores."""

from __future__ import annotations

import re

from slack_bolt import App


def _ignore() -> None:
    """Events nobody listens to are acknowledged (Bolt would answer 404 and Slack would retry)."""


def register(app: App) -> None:
    # Registered last by the app factory, so that specific listeners match first.
    app.event(re.compile(".*"))(_ignore)
