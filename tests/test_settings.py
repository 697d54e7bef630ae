"""Settings (SPEC §2): defaults, parsing, and one clear line for a wrong value."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.settings import SettingsError, load_settings
from core.enums import Severity

BASE = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "secret"}


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


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("SITREP_CADENCE", "sev1=15x", "SITREP_CADENCE: '15x' is not a duration"),
        ("SITREP_CADENCE", "sev9=15m", "SITREP_CADENCE: unknown severity"),
        ("SITREP_TICK", "soon", "SITREP_TICK:"),
        ("SITREP_ESCALATE_AFTER", "0", "SITREP_ESCALATE_AFTER:"),
        ("SITREP_ESCALATION_TARGETS", "sev1=#oncall", "SITREP_ESCALATION_TARGETS:"),
        ("SITREP_DEFAULT_SEVERITY", "high", "SITREP_DEFAULT_SEVERITY: unknown severity"),
        ("SITREP_TIMEZONE", "Mars/Base", "SITREP_TIMEZONE: use an IANA zone name"),
        ("SITREP_ANNOUNCE_CHANNEL", "#incidents", "SITREP_ANNOUNCE_CHANNEL: use a channel id"),
        ("SITREP_CHANNEL_PREFIX", "Inc!", "SITREP_CHANNEL_PREFIX:"),
        ("PORT", "http", "PORT:"),
        ("SLACK_BOT_TOKEN", "xoxp-user", "SLACK_BOT_TOKEN: a bot token starts with xoxb-"),
        ("SLACK_API_URL", "slack.com/api", "SLACK_API_URL:"),
    ],
)
def test_a_wrong_value_gives_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert str(error.value).startswith(says) and "\n" not in str(error.value)


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
