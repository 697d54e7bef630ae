"""POST /api/incidents (SPEC §13.3): declare from scripts, CI and monitors, exactly as `/incident declare` does."""

from __future__ import annotations

import time
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from core import api as core_api
from core import store
from core.api import DeclareRequest
from core.errors import BadPayload
from core.models import Incident
from handlers import flows
from handlers.deps import Deps
from handlers.reply import Who

SETTLE_SECONDS = 10.0


@dataclass(frozen=True)
class Declared:
    incident: Incident
    created: bool  # False: the Idempotency-Key had made it before

    def answer(self, team_url: str | None) -> dict[str, str | None]:
        channel = self.incident.channel_id
        if channel and team_url:
            url: str | None = f"{team_url.rstrip('/')}/archives/{channel}"
        else:
            url = f"https://slack.com/app_redirect?channel={channel}" if channel else None
        return {"key": self.incident.key, "channel_id": channel, "channel_name": self.incident.channel_name, "url": url}


def declare(deps: Deps, request: DeclareRequest, *, key: str | None) -> Declared:
    """Declare through the declare flow of Slack; with an Idempotency-Key, at most one incident per key (24 h)."""
    if key:
        earlier = _by_key(deps, key)
        if earlier is not None:
            return Declared(_settled(deps, earlier), created=False)
    commander = commander_of(deps, request.commander_email)
    who = Who(user_id=commander or deps.bot_user_id or "sitrep", channel_id=None, response_url=None)

    def claim(session: Session) -> None:
        assert key is not None
        core_api.claim_key(session=session, key=key, now=deps.now())

    def made(session: Session, incident: Incident) -> None:
        assert key is not None
        core_api.key_made(session=session, key=key, incident=incident)

    try:
        incident = flows.declare(
            deps,
            who,
            title=request.title,
            severity=request.severity,
            description=request.description,
            private=request.private,
            commander_id=commander,
            before=claim if key else None,
            also=made if key else None,
        )
    except IntegrityError:
        earlier = _by_key(deps, key) if key else None
        if earlier is None:
            raise
        return Declared(_settled(deps, earlier), created=False)  # a concurrent request with the key won
    return Declared(incident, created=True)


def commander_of(deps: Deps, email: str | None) -> str | None:
    """The Slack user with this email (users.lookupByEmail); BadPayload when there is none."""
    if not email:
        return None
    try:
        response = deps.client.users_lookupByEmail(email=email)
    except SlackApiError as exc:
        if flows.slack_error(exc) == "users_not_found":
            raise BadPayload("commander_email", "no one in the Slack workspace has this email") from None
        raise
    return str(response["user"]["id"])


def _by_key(deps: Deps, key: str) -> Incident | None:
    with deps.read() as session:
        return core_api.incident_of_key(session=session, key=key, now=deps.now())


def _settled(deps: Deps, incident: Incident) -> Incident:
    """The incident once the request that declared it has its channel (or stopped), so the answer can name it."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while incident.channel_id is None and incident.declare_error is None and time.monotonic() < deadline:
        time.sleep(0.05)
        with deps.read() as session:
            incident = store.reload(session=session, incident=incident)
    return incident
