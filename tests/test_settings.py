"""Settings (SPEC §2): defaults, parsing, and one clear line for a wrong value."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings
from core.enums import Severity

BASE = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret"}
SITREP = str(Path(sys.executable).parent / "sitrep")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in list(__import__("os").environ):
        if name.startswith(("SLACK_", "SITREP_")) or name in ("DATABASE_URL", "PORT"):
            monkeypatch.delenv(name)
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.cadence == {
        Severity.SEV1: timedelta(minutes=15),
        Severity.SEV2: timedelta(minutes=30),
        Severity.SEV3: timedelta(hours=4),
        Severity.SEV4: None,
    }
    assert settings.tick == timedelta(seconds=10)
    assert settings.database_url == "sqlite:///sitrep.db"
    assert settings.timeline_emoji == ["pushpin"]
    assert settings.default_severity == Severity.SEV3
    assert not settings.socket_mode and settings.port == 3000


def test_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITREP_CADENCE", "sev-1=5m,SEV4=1h")
    monkeypatch.setenv("SITREP_ESCALATION_TARGETS", "sev1=S0123ABC,sev2=U0456DEF")
    monkeypatch.setenv("SITREP_TIMELINE_EMOJI", ":pushpin:, memo")
    monkeypatch.setenv("SITREP_TICK", "2s")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    settings = load_settings()
    assert settings.cadence[Severity.SEV1] == timedelta(minutes=5)
    assert settings.cadence[Severity.SEV2] == timedelta(minutes=30)
    assert settings.cadence[Severity.SEV4] == timedelta(hours=1)
    assert settings.escalation_targets == {Severity.SEV1: "S0123ABC", Severity.SEV2: "U0456DEF"}
    assert settings.timeline_emoji == ["pushpin", "memo"]
    assert settings.tick == timedelta(seconds=2) and settings.socket_mode


# Every setting with a wrong value, and the line `sitrep run` prints: the variable, then what it accepts.
BAD = [
    ("SLACK_BOT_TOKEN", "xoxp-user", "SLACK_BOT_TOKEN: a bot token starts with xoxb-"),
    ("SLACK_SIGNING_SECRET", "", "SLACK_SIGNING_SECRET: required in HTTP mode (or set SLACK_APP_TOKEN"),
    ("SLACK_APP_TOKEN", "xoxb-app", "SLACK_APP_TOKEN: an app-level token starts with xapp-"),
    ("SLACK_API_URL", "slack.com/api", "SLACK_API_URL: use an http(s) URL such as https://slack.com/api/"),
    ("DATABASE_URL", "banana", "DATABASE_URL: use sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"),
    ("DATABASE_URL", "mysql://db/sitrep", "DATABASE_URL: use sqlite:///FILE or postgresql://"),
    ("SITREP_CADENCE", "sev1=15x", "SITREP_CADENCE: '15x' is not a duration: use a positive number with s, m, h or d"),
    ("SITREP_CADENCE", "sev9=15m", "SITREP_CADENCE: unknown severity 'sev9': use sev1..sev4"),
    ("SITREP_TICK", "soon", "SITREP_TICK: 'soon' is not a duration: use a positive number with s, m, h or d"),
    ("SITREP_ESCALATE_AFTER", "0", "SITREP_ESCALATE_AFTER: use a whole number, 1 or more (not '0')"),
    ("SITREP_ESCALATE_AFTER", "two", "SITREP_ESCALATE_AFTER: use a whole number, 1 or more (not 'two')"),
    ("SITREP_ESCALATION_TARGETS", "sev1=#oncall", "SITREP_ESCALATION_TARGETS: 'sev1=#oncall' is not sevN=ID with a "
                                                  "user (U…) or user group (S…) id"),
    ("SITREP_TIMELINE_EMOJI", ",", "SITREP_TIMELINE_EMOJI: name at least one reaction, e.g. pushpin"),
    ("SITREP_CHANNEL_PREFIX", "Inc!", "SITREP_CHANNEL_PREFIX: use 1 to 21 lowercase letters, digits, - or _"),
    ("SITREP_ANNOUNCE_CHANNEL", "#incidents", "SITREP_ANNOUNCE_CHANNEL: use a channel id such as C0123ABC"),
    ("SITREP_DEFAULT_SEVERITY", "high", "SITREP_DEFAULT_SEVERITY: unknown severity 'high': use sev1..sev4"),
    ("SITREP_TIMEZONE", "Mars/Base", "SITREP_TIMEZONE: use an IANA zone name such as UTC or Europe/Berlin"),
    ("SITREP_DIGEST_TIME", "9am", "SITREP_DIGEST_TIME: use HH:MM on a 24-hour clock, e.g. 09:00"),
    ("PORT", "abc", "PORT: use a port number from 1 to 65535 (not 'abc')"),
    ("PORT", "70000", "PORT: use a port number from 1 to 65535 (not '70000')"),
    ("SITREP_LOG_LEVEL", "loud", "SITREP_LOG_LEVEL: use debug, info, warning or error (not 'loud')"),
    ("SITREP_ARCHIVE_AFTER", "soon", "SITREP_ARCHIVE_AFTER: 'soon' is not a duration: use a positive number with s, m, "
                                     "h or d"),
    ("SITREP_BRIDGE_URL", "meet/{room}", "SITREP_BRIDGE_URL: use an http(s) URL whose only placeholders are {key} and "
                                         "{slug}"),
    ("SITREP_WEBHOOK_TOKEN", "short", "SITREP_WEBHOOK_TOKEN: use a random token of at least 16 characters"),
    ("SITREP_API_TOKEN", "short", "SITREP_API_TOKEN: use a random token of at least 16 characters"),
    ("SITREP_TRIAGE_CHANNEL", "#alerts", "SITREP_TRIAGE_CHANNEL: use a channel id such as C0123ABC (not a #name)"),
    ("SITREP_ALERT_SEVERITY", "critical=sev9", "SITREP_ALERT_SEVERITY: unknown severity 'sev9': use sev1..sev4"),
    ("PAGERDUTY_EVENTS_URL", "events.pagerduty.com", "PAGERDUTY_EVENTS_URL: use an http(s) URL"),
    ("SITREP_PAGE_SEVERITIES", "sev7", "SITREP_PAGE_SEVERITIES: unknown severity 'sev7': use sev1..sev4"),
    ("PAGERDUTY_API_URL", "api.pagerduty.com", "PAGERDUTY_API_URL: use an http(s) URL"),
    ("PAGERDUTY_ESCALATION_POLICY", "my policy", "PAGERDUTY_ESCALATION_POLICY: use an escalation policy id such as "
                                                 "PT20YPA"),
    ("SITREP_OUTBOX_GIVE_UP", "never", "SITREP_OUTBOX_GIVE_UP: 'never' is not a duration: use a positive number "
                                       "with s, m, h or d"),
]  # fmt: skip
BAD += [
    ("JIRA_URL", "example.atlassian.net", "JIRA_URL: use an http(s) URL"),
    ("JIRA_EMAIL", "sitrep", "JIRA_EMAIL: use the email address of the Jira account sitrep acts as"),
    ("JIRA_PROJECT", "ops project", "JIRA_PROJECT: use a project key such as OPS"),
    ("JIRA_ISSUE_TYPE", "", "JIRA_ISSUE_TYPE: use an issue type name, e.g. Task"),
    ("JIRA_ACTION_ISSUE_TYPE", "", "JIRA_ACTION_ISSUE_TYPE: use an issue type name, e.g. Task"),
    ("SITREP_JIRA_SEVERITIES", "sev9", "SITREP_JIRA_SEVERITIES: unknown severity 'sev9': use sev1..sev4"),
    ("JIRA_DONE_TRANSITION", "", "JIRA_DONE_TRANSITION: use a transition or status name, e.g. Done"),
    ("JIRA_PRIORITIES", "sev9=High", "JIRA_PRIORITIES: unknown severity 'sev9': use sev1..sev4"),
    ("STATUSPAGE_PAGE_ID", "bad id!", "STATUSPAGE_PAGE_ID: use the page id from the Statuspage API page"),
    ("STATUSPAGE_API_URL", "api.statuspage.io", "STATUSPAGE_API_URL: use an http(s) URL"),
]
# Secrets of other systems that sitrep cannot check before using them: any value is taken as it is.
FREE_FORM = {"PAGERDUTY_ROUTING_KEY", "PAGERDUTY_API_TOKEN", "PAGERDUTY_WEBHOOK_SECRET", "JIRA_API_TOKEN", "JIRA_PAT",
             "STATUSPAGE_API_KEY"}  # fmt: skip


def test_the_table_has_every_setting() -> None:
    assert {variable for variable, _, _ in BAD} | FREE_FORM == {info.alias for info in Settings.model_fields.values()}


Run = tuple[subprocess.CompletedProcess[str], Path]  # what the process did, and the folder it ran in


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Run]:
    """`sitrep run` with each wrong setting of the table, a few at a time, each in an empty folder of its own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SITREP_", "DATABASE_URL", "PORT"))}

    def run(variable: str, value: str) -> Run:
        folder = tmp_path_factory.mktemp("run")
        done = subprocess.run([SITREP, "run"], env={**clean, **BASE, variable: value}, cwd=folder,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        return done, folder

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {(variable, value): pool.submit(run, variable, value) for variable, value, _ in BAD}
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize(("variable", "value", "says"), BAD, ids=[f"{v}={x}" for v, x, _ in BAD])
def test_a_wrong_setting_stops_sitrep_run_with_one_line_and_exit_code_2(
    runs: dict[tuple[str, str], Run], variable: str, value: str, says: str
) -> None:
    """Issue 13.2: the real process, as an operator starts it; nothing is created (no database file)."""
    done, folder = runs[variable, value]
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.startswith(f"sitrep: {says}") and done.stderr.count("\n") == 1, done.stderr
    assert list(folder.iterdir()) == []


def test_missing_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    with pytest.raises(SettingsError, match="^SLACK_SIGNING_SECRET: required in HTTP mode"):
        load_settings()
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    with pytest.raises(SettingsError, match="^SLACK_BOT_TOKEN: required"):
        load_settings()


def test_the_cli_stops_with_exit_code_2_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    monkeypatch.setenv("SITREP_TICK", "never")
    with pytest.raises(SystemExit) as stop:
        main(["run"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sitrep: SITREP_TICK:") and "\n" not in err
