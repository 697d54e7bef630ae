"""POST /api/incidents (SPEC §13.3): the request body, and Idempotency-Keys. Pure domain: the session comes in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from core.enums import Severity
from core.errors import BadPayload
from core.models import ApiDeclaration, Incident

KEY_LIFETIME = timedelta(hours=24)
TITLE_LIMIT = 500
KEY_LIMIT = 255


@dataclass(frozen=True)
class DeclareRequest:
    title: str
    severity: Severity | None = None
    description: str = ""
    commander_email: str | None = None
    private: bool = False


def parse_declare_request(body: Any) -> DeclareRequest:
    """The JSON body of POST /api/incidents; BadPayload names the first wrong field."""
    if not isinstance(body, dict):
        raise BadPayload("body", "must be a JSON object")
    title = body.get("title")
    if not isinstance(title, str) or not " ".join(title.split()):
        raise BadPayload("title", "required: a non-empty string")
    if len(title) > TITLE_LIMIT:
        raise BadPayload("title", f"at most {TITLE_LIMIT} characters")
    severity = body.get("severity")
    if severity is not None:
        if not isinstance(severity, str):
            raise BadPayload("severity", "one of sev1, sev2, sev3, sev4")
        try:
            severity = Severity.parse(severity)
        except ValueError:
            raise BadPayload("severity", "one of sev1, sev2, sev3, sev4") from None
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise BadPayload("description", "must be a string")
    email = body.get("commander_email")
    if email is not None and (not isinstance(email, str) or "@" not in email or len(email) > 254):
        raise BadPayload("commander_email", "must be an email address")
    private = body.get("private", False)
    if not isinstance(private, bool):
        raise BadPayload("private", "must be true or false")
    return DeclareRequest(
        title=title, severity=severity, description=description or "", commander_email=email or None, private=private
    )


def check_key(key: str) -> str:
    if not key or len(key) > KEY_LIMIT or not key.isprintable():
        raise BadPayload("Idempotency-Key", f"1 to {KEY_LIMIT} printable characters")
    return key


def claim_key(*, session: Session, key: str, now: datetime) -> None:
    """Take the key, first thing in the declaring transaction: a second claim of it fails (IntegrityError; on
    PostgreSQL it waits for the first transaction to end), so one key never makes two incidents, whichever replica
    gets it, and a refused claim has used no incident number."""
    session.execute(
        sa.delete(ApiDeclaration).where(
            col(ApiDeclaration.idempotency_key) == key, col(ApiDeclaration.created_at) <= now - KEY_LIFETIME
        )
    )
    session.add(ApiDeclaration(idempotency_key=key, incident_id=None, created_at=now))
    session.flush()


def key_made(*, session: Session, key: str, incident: Incident) -> None:
    """Record the incident the key made, in the same transaction as `claim_key`."""
    session.execute(
        sa.update(ApiDeclaration).where(col(ApiDeclaration.idempotency_key) == key).values(incident_id=incident.id)
    )


def incident_of_key(*, session: Session, key: str, now: datetime) -> Incident | None:
    """The incident a key made within the last 24 hours, if any."""
    row = session.get(ApiDeclaration, key)
    if row is None or row.incident_id is None or row.created_at <= now - KEY_LIFETIME:
        return None
    return session.get(Incident, row.incident_id)
