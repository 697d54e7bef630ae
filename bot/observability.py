"""Structured JSON logs (one line per Slack request, secrets scrubbed) and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

REDACTED = "[redacted]"
_TOKEN = re.compile(r"\b(xox[a-z]|xapp)-[A-Za-z0-9-]+")
log = logging.getLogger("sitrep.requests")
# Attributes of a LogRecord that are not extra fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class Redactor(logging.Filter):
    """Scrubs the configured secrets and anything shaped like a Slack token from every log record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return _TOKEN.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed call (args not matching the format) still gets logged
            message = f"{record.msg} {record.args}"
        record.msg = self.scrub(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        record.exc_info = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.scrub(value))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_text:
            line["error"] = record.exc_text
        return json.dumps(line, default=str)


def configure_logging(*, secrets: Iterable[str], stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """JSON lines on standard error (or `stream`), with the secrets scrubbed, for every logger."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(Redactor(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # Uncaught exceptions would print a bare traceback on standard error: log them, as JSON and scrubbed.
    crash = logging.getLogger("sitrep.crash")
    sys.excepthook = lambda kind, error, trace: crash.critical(
        "uncaught exception", exc_info=(kind, error, trace)
    )  # fmt: skip
    threading.excepthook = lambda hook: crash.error(
        "uncaught exception in thread %s", hook.thread.name if hook.thread else "?",
        exc_info=(hook.exc_type, hook.exc_value or hook.exc_type(), hook.exc_traceback),
    )  # fmt: skip


class OpenIncidents(Collector):
    """Open incidents by severity, read from the database at scrape time."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        import sqlalchemy as sa

        from core.enums import IncidentStatus, Severity
        from core.models import Incident

        family = GaugeMetricFamily("sitrep_open_incidents", "Open incidents by severity", labels=["severity"])
        with self.sessions() as session:
            rows = dict(session.execute(
                sa.select(Incident.severity, sa.func.count()).where(Incident.status == IncidentStatus.OPEN)
                .group_by(Incident.severity)).all())  # type: ignore[arg-type]  # fmt: skip
        for severity in Severity:
            family.add_metric([severity.value], rows.get(severity, 0))
        yield family


class OutboxPending(Collector):
    """Outbox rows not yet delivered nor given up, read from the database at scrape time."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from core.outbox import pending_count

        family = GaugeMetricFamily("sitrep_outbox_pending", "Outbox rows waiting to be delivered")
        with self.sessions() as session:
            family.add_metric([], pending_count(session=session))
        yield family


class Metrics:
    """The process's metrics, in a registry of its own (several apps in one test process never meet)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("sitrep_slack_requests", "Slack requests by type and outcome",
                                ["type", "outcome"], registry=self.registry)  # fmt: skip
        self.ack_seconds = Histogram("sitrep_ack_seconds", "Time to answer (acknowledge) a Slack request",
                                     ["type"], registry=self.registry,
                                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 3, 5))  # fmt: skip
        self.reminders = Counter("sitrep_reminders_sent", "Status-update reminders posted",
                                 ["severity", "escalated"], registry=self.registry)  # fmt: skip
        self.reminders_missed = Counter("sitrep_reminders_missed", "Reminders that could not be posted (retried)",
                                        ["severity"], registry=self.registry)  # fmt: skip
        self.slack_errors = Counter("sitrep_slack_api_errors", "Slack Web API errors by method",
                                    ["method", "error"], registry=self.registry)  # fmt: skip
        self.outbox_failures = Counter("sitrep_outbox_failures", "Failed outbox delivery attempts by integration",
                                       ["integration"], registry=self.registry)  # fmt: skip

    def watch_database(self, sessions: sessionmaker[Session]) -> None:
        self.registry.register(OpenIncidents(sessions))
        self.registry.register(OutboxPending(sessions))

    def exposition(self) -> bytes:
        """The text `/metrics` answers (Prometheus exposition format)."""
        return generate_latest(self.registry)

    def request(self, kind: str, outcome: str, seconds: float) -> None:
        self.requests.labels(kind, outcome).inc()
        self.ack_seconds.labels(kind).observe(seconds)

    def reminder_sent(self, severity: str, *, escalated: bool) -> None:
        self.reminders.labels(severity, "yes" if escalated else "no").inc()

    def reminder_missed(self, severity: str) -> None:
        self.reminders_missed.labels(severity).inc()

    def slack_error(self, method: str, error: str) -> None:
        self.slack_errors.labels(method, error).inc()

    def outbox_failure(self, integration: str) -> None:
        self.outbox_failures.labels(integration).inc()


_KINDS = {"block_actions": "action", "view_submission": "view", "view_closed": "view",
          "message_action": "shortcut", "shortcut": "shortcut"}  # fmt: skip


def describe(body: bytes, content_type: str) -> dict[str, Any]:
    """What an HTTP Slack request is about, for its log line: type, team, channel, user (never its text)."""
    try:
        if "json" in content_type:
            data = json.loads(body or b"{}")
        else:
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            data = json.loads(form["payload"]) if "payload" in form else form
    except (ValueError, KeyError):
        return {"type": "unreadable"}
    return describe_payload(data)


def describe_payload(data: object) -> dict[str, Any]:
    """What a Slack payload (a command's fields, an event callback, an interaction) is about."""
    if not isinstance(data, dict):
        return {"type": "unreadable"}
    event = data.get("event") or {}
    payload_type = str(data.get("type") or "unknown")
    kind = (
        "command" if "command" in data
        else f"event:{event.get('type')}" if payload_type == "event_callback"
        else _KINDS.get(payload_type, payload_type)
    )  # fmt: skip
    channel = (
        data.get("channel_id") or (data.get("channel") or {}).get("id") or event.get("channel")
        or (event.get("item") or {}).get("channel") or event.get("channel_id")
    )  # fmt: skip
    team = data.get("team_id") or (data.get("team") or {}).get("id")
    user = data.get("user_id") or (data.get("user") or {}).get("id") or event.get("user")
    return {"type": kind, "team": team, "channel": channel, "user": user}


class RequestLog:
    """One log line and one count per Slack request, whether it came over HTTP or Socket Mode."""

    def __init__(self, metrics: Metrics, incident_of_channel: Callable[[str | None], int | None]) -> None:
        self.metrics = metrics
        self.incident_of_channel = incident_of_channel

    def record(self, about: dict[str, Any], status: int, seconds: float, *, transport: str) -> None:
        """Never raises: a failure to observe a request must not fail the request."""
        outcome = "ok" if status < 400 else "refused" if status in (401, 403) else "error"
        try:
            self.metrics.request(about["type"], outcome, seconds)
            incident = None
            if status < 400:  # a refused request's channel is not to be trusted
                try:
                    incident = self.incident_of_channel(about.get("channel"))
                except Exception:  # noqa: BLE001 - the log line matters more than its incident key
                    log.warning("incident look-up for a request log line failed", exc_info=True)
            log.info(
                "slack request",
                extra={**about, "incident": f"INC-{incident}" if incident else None, "transport": transport,
                       "status": status, "outcome": outcome, "latency_ms": round(seconds * 1000, 1)},
            )  # fmt: skip
        except Exception:  # noqa: BLE001
            log.exception("could not record a Slack request")
