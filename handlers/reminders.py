"""The reminder's Snooze buttons (15m, 30m, 1h): the next reminder comes that much later."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from slack_bolt import Ack, App

from core import store
from core.errors import InvalidInput, NotFound
from core.models import Incident
from core.templating import format_when
from handlers.deps import Deps
from handlers.reply import Who, guarded, reply_private


def _ack(ack: Ack) -> None:
    ack()


SNOOZE_MINUTES = frozenset({15, 30, 60})


def snooze(deps: Deps, body: dict[str, Any]) -> None:
    incident_id, _, minutes = str(body["actions"][0].get("value") or "").partition(":")
    if not (incident_id.isdigit() and minutes.isdigit() and int(minutes) in SNOOZE_MINUTES):
        raise InvalidInput("That snooze button is not one of sitrep's (15m, 30m or 1h).")
    until = deps.now() + timedelta(minutes=int(minutes))
    with deps.tx() as session:
        incident = session.get(Incident, int(incident_id))
        if incident is None:
            raise NotFound("That incident no longer exists.")
        store.snooze(session=session, incident=incident, until=until)
        key = incident.key
    reply_private(deps, Who.of(body), f":zzz: Next reminder for {key} at {format_when(until, deps.config.timezone)}.")


def register(app: App) -> None:
    app.action(re.compile(r"^sitrep_snooze_"))(ack=_ack, lazy=[guarded(snooze)])
