"""Settings of SPEC §2: one pydantic-settings class, read from the environment and `.env`."""

from __future__ import annotations

import re
import string
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.alerts import DEFAULT_ALERT_SEVERITY, parse_alert_severity
from core.cadence import DEFAULT_CADENCE_TEXT, parse_cadence, parse_duration
from core.enums import Severity
from core.jira import DEFAULT_PRIORITIES


class SettingsError(Exception):
    """A wrong or missing setting; the message is one line naming the variable."""


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr = Field(alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")
    database_url: str = Field(default="sqlite:///sitrep.db", alias="DATABASE_URL")
    cadence: Annotated[dict[Severity, timedelta | None], NoDecode] = Field(
        default_factory=lambda: parse_cadence(DEFAULT_CADENCE_TEXT), alias="SITREP_CADENCE"
    )
    tick: Annotated[timedelta, NoDecode] = Field(default=timedelta(seconds=10), alias="SITREP_TICK")
    escalate_after: int = Field(default=2, ge=1, alias="SITREP_ESCALATE_AFTER", description="a whole number, 1 or more")
    escalation_targets: Annotated[dict[Severity, str], NoDecode] = Field(
        default_factory=dict, alias="SITREP_ESCALATION_TARGETS"
    )
    timeline_emoji: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["pushpin"], alias="SITREP_TIMELINE_EMOJI"
    )
    channel_prefix: str = Field(default="inc", alias="SITREP_CHANNEL_PREFIX")
    announce_channel: str | None = Field(default=None, alias="SITREP_ANNOUNCE_CHANNEL")
    default_severity: Severity = Field(default=Severity.SEV3, alias="SITREP_DEFAULT_SEVERITY")
    timezone: str = Field(default="UTC", alias="SITREP_TIMEZONE")
    digest_time: str = Field(default="09:00", alias="SITREP_DIGEST_TIME")
    archive_after: Annotated[timedelta | None, NoDecode] = Field(default=None, alias="SITREP_ARCHIVE_AFTER")
    bridge_url: str | None = Field(default=None, alias="SITREP_BRIDGE_URL")
    port: int = Field(default=3000, ge=1, le=65535, alias="PORT", description="a port number from 1 to 65535")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", alias="SITREP_LOG_LEVEL", description="debug, info, warning or error"
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return check_database_url(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value
    # Alerts and scripts declare incidents (SPEC §13.3): each endpoint is off while its token is unset.
    webhook_token: SecretStr | None = Field(default=None, alias="SITREP_WEBHOOK_TOKEN")
    api_token: SecretStr | None = Field(default=None, alias="SITREP_API_TOKEN")
    triage_channel: str | None = Field(default=None, alias="SITREP_TRIAGE_CHANNEL")
    alert_severity: Annotated[dict[str, Severity], NoDecode] = Field(
        default_factory=lambda: parse_alert_severity(DEFAULT_ALERT_SEVERITY), alias="SITREP_ALERT_SEVERITY"
    )

    @field_validator("webhook_token", "api_token")
    @classmethod
    def _bearer(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < 16:
            raise ValueError("use a random token of at least 16 characters")
        return value

    @field_validator("alert_severity", mode="before")
    @classmethod
    def _alert_severity(cls, value: Any) -> Any:
        return parse_alert_severity(value) if isinstance(value, str) else value
    # --- PagerDuty and the outbox (SPEC §13.1, §13.2) ---
    pagerduty_routing_key: SecretStr | None = Field(default=None, alias="PAGERDUTY_ROUTING_KEY")
    pagerduty_events_url: str = Field(default="https://events.pagerduty.com/v2/enqueue", alias="PAGERDUTY_EVENTS_URL")
    page_severities: Annotated[frozenset[Severity], NoDecode] = Field(
        default=frozenset({Severity.SEV1, Severity.SEV2}), alias="SITREP_PAGE_SEVERITIES"
    )
    pagerduty_api_token: SecretStr | None = Field(default=None, alias="PAGERDUTY_API_TOKEN")
    pagerduty_api_url: str = Field(default="https://api.pagerduty.com", alias="PAGERDUTY_API_URL")
    pagerduty_escalation_policy: str | None = Field(default=None, alias="PAGERDUTY_ESCALATION_POLICY")
    pagerduty_webhook_secret: SecretStr | None = Field(default=None, alias="PAGERDUTY_WEBHOOK_SECRET")
    outbox_give_up: Annotated[timedelta, NoDecode] = Field(default=timedelta(hours=24), alias="SITREP_OUTBOX_GIVE_UP")

    @field_validator("pagerduty_routing_key", "pagerduty_api_token", "pagerduty_webhook_secret", "jira_api_token",
                     "jira_pat", "statuspage_api_key")  # fmt: skip
    @classmethod
    def _optional_secret(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator("pagerduty_escalation_policy")
    @classmethod
    def _policy(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[A-Z0-9]+", value.strip()):
            raise ValueError("use an escalation policy id such as PT20YPA")
        return value.strip() if value else None

    @field_validator("pagerduty_events_url", "pagerduty_api_url", "jira_url", "statuspage_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"https?://[^/\s]+", value):
            raise ValueError("use an http(s) URL")
        return value.rstrip("/")

    @field_validator("page_severities", "jira_severities", mode="before")
    @classmethod
    def _page_severities(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(Severity.parse(part) for part in _split(value) if part.lower() != "off")
        return value

    @field_validator("outbox_give_up", mode="before")
    @classmethod
    def _give_up(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("triage_channel")
    @classmethod
    def _triage(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[CG][A-Z0-9]+", value):
            raise ValueError("use a channel id such as C0123ABC (not a #name)")
        return value or None

    # --- Jira and Statuspage (SPEC §13.4, §13.5) ---
    jira_url: str | None = Field(default=None, alias="JIRA_URL")
    jira_email: str | None = Field(default=None, alias="JIRA_EMAIL")
    jira_api_token: SecretStr | None = Field(default=None, alias="JIRA_API_TOKEN")
    jira_pat: SecretStr | None = Field(default=None, alias="JIRA_PAT")
    jira_project: str | None = Field(default=None, alias="JIRA_PROJECT")
    jira_issue_type: str = Field(default="Task", min_length=1, alias="JIRA_ISSUE_TYPE",
                                 description="an issue type name, e.g. Task")
    jira_action_issue_type: str = Field(default="Task", min_length=1, alias="JIRA_ACTION_ISSUE_TYPE",
                                        description="an issue type name, e.g. Task")
    jira_severities: Annotated[frozenset[Severity], NoDecode] = Field(
        default=frozenset({Severity.SEV1, Severity.SEV2}), alias="SITREP_JIRA_SEVERITIES"
    )
    jira_done_transition: str = Field(default="Done", min_length=1, alias="JIRA_DONE_TRANSITION",
                                      description="a transition or status name, e.g. Done")
    jira_priorities: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_PRIORITIES), alias="JIRA_PRIORITIES"
    )
    statuspage_api_key: SecretStr | None = Field(default=None, alias="STATUSPAGE_API_KEY")
    statuspage_page_id: str | None = Field(default=None, alias="STATUSPAGE_PAGE_ID")
    statuspage_api_url: str = Field(default="https://api.statuspage.io/v1", alias="STATUSPAGE_API_URL")

    @field_validator("jira_url", "jira_email", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("jira_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value and "@" not in value:
            raise ValueError("use the email address of the Jira account sitrep acts as")
        return value.strip() if value else None

    @field_validator("jira_project")
    @classmethod
    def _project(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[A-Z][A-Z0-9_]{0,254}", value.strip()):
            raise ValueError("use a project key such as OPS")
        return value.strip() if value else None

    @field_validator("jira_priorities", mode="before")
    @classmethod
    def _priorities(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        priorities = dict(DEFAULT_PRIORITIES)
        for part in _split(value):
            key, sep, name = part.partition("=")
            key = key.strip()
            if re.fullmatch(r"[pP][1-3]", key):
                key = key.upper()
            elif sep:
                key = Severity.parse(key).value
            if not sep or not name.strip():
                raise ValueError(f"{part!r} is not sevN=Name or PN=Name, e.g. sev1=Highest,P1=Highest")
            priorities[key] = name.strip()
        return priorities

    @field_validator("statuspage_page_id")
    @classmethod
    def _page_id(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[a-z0-9]+", value.strip()):
            raise ValueError("use the page id from the Statuspage API page, e.g. kctbh9vrtdwd")
        return value.strip() if value else None

    @model_validator(mode="after")
    def _jira_complete(self) -> Settings:
        if self.jira_url is None:
            return self
        if self.jira_project is None:
            raise ValueError("JIRA_PROJECT: required when JIRA_URL is set")
        if self.jira_pat is None and (not self.jira_email or self.jira_api_token is None):
            raise ValueError("JIRA_API_TOKEN: set JIRA_EMAIL and JIRA_API_TOKEN (Jira Cloud) or JIRA_PAT (Server)")
        return self

    @property
    def jira_on(self) -> bool:
        return self.jira_url is not None

    @property
    def statuspage_on(self) -> bool:
        return self.statuspage_api_key is not None and self.statuspage_page_id is not None

    def secret_values(self) -> list[str]:
        """Every configured secret (each SecretStr setting), for the log scrubber."""
        return [value.get_secret_value() for value in vars(self).values() if isinstance(value, SecretStr)]

    @field_validator("cadence", mode="before")
    @classmethod
    def _cadence(cls, value: Any) -> Any:
        return parse_cadence(value) if isinstance(value, str) else value

    @field_validator("tick", mode="before")
    @classmethod
    def _tick(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("archive_after", mode="before")
    @classmethod
    def _archive_after(cls, value: Any) -> Any:
        if isinstance(value, str):
            return None if value.strip().lower() in ("", "off") else parse_duration(value)
        return value

    @field_validator("bridge_url")
    @classmethod
    def _bridge(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
            value.format(key="INC-1", slug="x")
        except (ValueError, IndexError, KeyError):
            fields = {"?"}
        if not re.match(r"https?://", value) or fields - {"key", "slug"}:
            raise ValueError("use an http(s) URL whose only placeholders are {key} and {slug}")
        return value

    @field_validator("escalation_targets", mode="before")
    @classmethod
    def _targets(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        targets: dict[Severity, str] = {}
        for part in _split(value):
            key, sep, target = part.partition("=")
            if not sep or not re.fullmatch(r"[SUW][A-Z0-9]+", target.strip()):
                raise ValueError(f"{part!r} is not sevN=ID with a user (U…) or user group (S…) id")
            targets[Severity.parse(key)] = target.strip()
        return targets

    @field_validator("timeline_emoji", mode="before")
    @classmethod
    def _emoji(cls, value: Any) -> Any:
        names = [name.strip(":") for name in _split(value)]
        if not names:
            raise ValueError("name at least one reaction, e.g. pushpin")
        return names

    @field_validator("default_severity", mode="before")
    @classmethod
    def _severity(cls, value: Any) -> Any:
        return Severity.parse(value) if isinstance(value, str) else value

    @field_validator("channel_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,20}", value):
            raise ValueError("use 1 to 21 lowercase letters, digits, - or _")
        return value

    @field_validator("announce_channel", "triage_channel")
    @classmethod
    def _announce(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[CG][A-Z0-9]+", value):
            raise ValueError("use a channel id such as C0123ABC (not a #name)")
        return value or None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("use an IANA zone name such as UTC or Europe/Berlin") from None
        return value

    @field_validator("digest_time")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError("use HH:MM on a 24-hour clock, e.g. 09:00")
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("a bot token starts with xoxb-")
        return value

    @field_validator("slack_signing_secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None  # empty is unset

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("an app-level token starts with xapp-")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not re.match(r"https?://", value):
            raise ValueError("use an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _http_needs_secret(self) -> Settings:
        if self.slack_app_token is None and self.slack_signing_secret is None:
            raise ValueError("SLACK_SIGNING_SECRET: required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)")
        if self.webhook_token is not None and self.triage_channel is None:
            raise ValueError("SITREP_TRIAGE_CHANNEL: required when SITREP_WEBHOOK_TOKEN is set (a channel id, C…)")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None


def load_settings(**overrides: Any) -> Settings:
    """Build the settings or raise SettingsError with one line naming the variable and what it accepts."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = error.get("loc") or ()
        field = str(loc[0]) if loc else ""
        alias = _alias_of(field)
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        accepts = _accepts(field)
        if error.get("type") == "missing":
            message = "required"
        elif error.get("type") != "value_error" and accepts:  # pydantic's words say what is wrong, not what is right
            message = f"use {accepts} (not {error.get('input')!r})"
        if message.startswith(("SLACK_", "SITREP_", "JIRA_")):
            raise SettingsError(message) from None
        raise SettingsError(f"{alias}: {message}" if alias else message) from None


def check_database_url(url: str) -> str:
    """The URL if it names a database sitrep can use (SQLite or PostgreSQL), else ValueError saying what can."""
    from core.db import normalise_url  # here: the settings load without the database layer when it is not set

    try:
        backend = make_url(normalise_url(url)).get_backend_name()
    except ArgumentError:
        backend = None
    if backend not in ("sqlite", "postgresql"):
        raise ValueError("use sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    return url


def _accepts(field: str) -> str | None:
    """What a field accepts, where its type alone says it (its description), for fields checked by pydantic."""
    for name, info in Settings.model_fields.items():
        if field in (name, info.alias):
            return info.description
    return None


def _alias_of(field: str) -> str:
    for name, info in Settings.model_fields.items():
        if field in (name, info.alias):
            return info.alias or name.upper()
    return field.upper()
